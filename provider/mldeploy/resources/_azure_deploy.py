"""InferenceDeployment on the azure target: props in, outputs out; the work is in ``backends/azure/online.py``.

The endpoint is named after ``service_name``; each content change is a new
deployment on it (see ``OnlineDeployer``), so an update never replaces the
endpoint or its scoring URI. The registry identities are not used: the
workspace's managed identity pulls from the workspace's registry.
"""

from __future__ import annotations

from typing import Any

from pulumi import dynamic

from ..errors import NotFound, ValidationError
from ._common import progress

KIND = "InferenceDeployment"


def is_azure(props: dict[str, Any]) -> bool:
    target = props.get("target")
    return isinstance(target, str) and target.startswith("azure:")


def _deployer(props: dict[str, Any]) -> Any:
    from ..backends.azure.online import OnlineDeployer

    return OnlineDeployer(props["target"])


def _spec(props: dict[str, Any]) -> Any:
    from ..backends.azure.online import OnlineSpec, deployment_sizing

    inference = props["inference"]
    sku, count = deployment_sizing(props.get("deployment") or {})
    models = [{"name": m["name"], "version": m["version"]} for m in props.get("models") or []]
    for m in props.get("models") or []:
        if not str(m.get("download", "")).startswith("azureml://"):
            raise ValidationError("models", f"model {m.get('name')}:{m.get('version')} is not in the workspace's registry; register it with registry=<the azure target>")
    return OnlineSpec(
        endpoint=props["service_name"],
        base_image=props["base_image"],
        source_dir=inference["source_dir"],
        source_digest=props["source_digest"],
        entry_script=inference["entry_script"],
        conda_file=inference.get("conda_file"),
        models=models,
        instance_type=sku,
        instance_count=count,
        description=(props.get("deployment") or {}).get("description") or "",
        tags=(props.get("deployment") or {}).get("tags") or {},
    )


def deploy(props: dict[str, Any]) -> dict[str, Any]:
    label = f"{KIND} {props['service_name']}"
    out = _deployer(props).deploy(_spec(props), lambda m: progress(label, m))
    progress(label, f"serving at {out['scoring_uri']} ({out['deployment_name']})")
    return {**props, **out, "image_ref": props.get("base_image"), "container_id": out["deployment_name"]}


def create(props: dict[str, Any]) -> dynamic.CreateResult:
    return dynamic.CreateResult(props["service_name"], deploy(props))


def update(olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
    return dynamic.UpdateResult(deploy(news))


def read(id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
    try:
        state = _deployer(props).state(props.get("service_name", id_), props.get("deployment_name") or "")
    except NotFound:
        return dynamic.ReadResult(None, {})
    return dynamic.ReadResult(id_, {**props, "state": state})


def delete(props: dict[str, Any]) -> None:
    _deployer(props).delete(props["service_name"])
    progress(f"{KIND} {props['service_name']}", "deleted the online endpoint and its deployments")
