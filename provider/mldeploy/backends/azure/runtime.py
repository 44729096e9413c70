"""The azure target: a managed online endpoint on an Azure ML workspace (the work is in ``online.py``).

The endpoint is named after the service; each content change is a new
deployment on it (see ``OnlineDeployer``), so an update never replaces the
endpoint or its scoring URI. Azure ML builds the image from the base image and
the conda file itself (``builds_image = False``), and the workspace's managed
identity pulls from the workspace's registry, so the registry identities are
not used. Keys are the endpoint's own (``listKeys``), returned as
``primary_key``/``secondary_key``. Azure SDK exceptions become mldeploy errors
in ``_common.translate``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...errors import ValidationError
from ..protocols import DeploySpec, LiveState, check_compute_type
from ._common import AzureTarget, parse_target
from .naming import check_endpoint_name
from .online import OnlineDeployer, OnlineSpec, deployment_sizing

COMPUTE_TYPES = ("local", "aci", "aks")


class AzureRuntime:
    """``Runtime`` on one Azure ML workspace. Building it parses the target and does no I/O."""

    builds_image = False

    def __init__(self, target: str, credential: Any = None, transport: Any = None) -> None:
        self.target = target
        self.workspace: AzureTarget = parse_target(target, "target")
        if self.workspace.kind != "workspace":
            raise ValidationError("target", f"an online deployment needs an Azure ML workspace target; {target!r} is a container registry")
        self._credential = credential
        self._transport = transport

    def _deployer(self) -> OnlineDeployer:
        return OnlineDeployer(self.workspace, self._credential, self._transport)

    def validate(self, deployment: dict[str, Any], source: str, warn: Callable[[str], None]) -> None:
        check_compute_type(deployment, source, "azure", COMPUTE_TYPES)
        deployment_sizing(deployment)  # instance sizes: the smallest SKU that fits, or a ValidationError naming the field

    def preflight(self, spec: DeploySpec, progress: Callable[[str], None]) -> None:
        """The endpoint name as azure-ai-ml validates it, the model count and the models' registry (no I/O).
        Azure ML checks the rest when it deploys; identities detect an ABAC-mode registry themselves."""
        check_endpoint_name(spec.service, "service_name")
        models = spec.props.get("models") or []
        if not isinstance(models, list):
            return
        if len(models) != 1:
            raise ValidationError("models", f"a managed online deployment serves exactly one registered model; got {len(models)}")
        for m in models:
            if isinstance(m, dict) and isinstance(m.get("download"), str) and not m["download"].startswith("azureml://"):
                raise ValidationError(
                    "models", f"model {m.get('name')}:{m.get('version')} is not in the workspace's registry; register it with registry=<the azure target>"
                )
        if spec.props.get("regenerate_key"):
            raise ValidationError(
                "regenerate_key", "the azure target's keys are the endpoint's own; rotate them with `az ml online-endpoint regenerate-keys`"
            )

    def deploy(self, spec: DeploySpec, progress: Callable[[str], None]) -> dict[str, Any]:
        props = spec.props
        inference = props["inference"]
        sku, count = deployment_sizing(spec.deployment)
        online = OnlineSpec(
            endpoint=spec.service,
            base_image=props["base_image"],
            source_dir=inference["source_dir"],
            source_digest=props["source_digest"],
            entry_script=spec.entry_script,
            conda_file=inference.get("conda_file"),
            models=[{"name": m["name"], "version": m["version"]} for m in props.get("models") or []],
            instance_type=sku,
            instance_count=count,
            description=spec.deployment.get("description") or "",
            tags=spec.deployment.get("tags") or {},
        )
        out = self._deployer().deploy(online, progress)
        progress(f"serving at {out['scoring_uri']} ({out['deployment_name']})")
        return {**out, "image_ref": props.get("base_image"), "container_id": out["deployment_name"]}

    def read(self, service: str, outputs: dict[str, Any]) -> LiveState:
        return LiveState(state=self._deployer().state(service, outputs.get("deployment_name") or ""))

    def remove(self, service: str, outputs: dict[str, Any], labels: dict[str, str], progress: Callable[[str], None]) -> None:
        self._deployer().delete(service)
        progress("deleted the online endpoint and its deployments")




__all__ = ["AzureRuntime"]
