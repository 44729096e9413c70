"""Managed online endpoints: ``InferenceDeployment`` on an Azure ML workspace (azure-ai-ml).

``OnlineDeployer.deploy`` converges one endpoint (named after the service) to one
deployment of the given content:

1. the endpoint (``ManagedOnlineEndpoint``, key auth) is created if missing;
2. the source directory is uploaded to the default datastore, content addressed
   (``mldeploy/code/<service>/<digest hex>/``, skipped when already there);
3. a deployment named after the content (``mld-<hex12>``) is created or updated
   (``begin_create_or_update``, a long-running operation): environment = the
   base image + the conda file, code configuration = the uploaded code and the
   entry script, the registered model, instance type and count from the
   deployment config (``deployment_sizing``). If provisioning fails, the error
   carries the deployment's container logs (``get_logs``);
4. only when it is healthy: traffic 100% to it, then the endpoint's other
   deployments are deleted (no gap: the old one serves until the switch).

Outputs: ``scoring_uri``, ``swagger_uri``, ``primary_key`` and ``secondary_key`` (secrets), the
endpoint and deployment names and the provisioning state.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import BackendError, NotFound, ValidationError
from ...hashing import source_ignore
from ._common import AzureTarget, Backoff, _message, _root, call, error_code, parse_target, status_of, translate, with_retry
from .credentials import AzureClient
from .ml_registry import default_container, upload_verified
from .naming import check_deployment_name, check_endpoint_name
from .workspace import ml_client

# (cores, memory GB) of the general-purpose SKUs managed online endpoints offer, smallest first.
SKUS = (
    ("Standard_DS2_v2", 2, 7),
    ("Standard_DS3_v2", 4, 14),
    ("Standard_DS4_v2", 8, 28),
    ("Standard_DS5_v2", 16, 56),
)
DEFAULT_SKU = "Standard_DS3_v2"


def deployment_sizing(deployment: dict[str, Any]) -> tuple[str, int]:
    """Instance type and count from the document's deployment config (camelCase, as written).

    ``containerResourceRequirements.cpu``/``memoryInGB`` pick the smallest SKU that
    fits (``Standard_DS3_v2``, Azure's recommended minimum, when not given);
    ``numReplicas`` (or ``autoScaler.minReplicas``) is the instance count (default 1).
    """
    req = deployment.get("containerResourceRequirements") or {}
    cpu, mem = req.get("cpu"), req.get("memoryInGB")
    sku = DEFAULT_SKU
    if cpu or mem:
        fits = [name for name, c, m in SKUS if (cpu or 0) <= c and (mem or 0) <= m]
        if not fits:
            raise ValidationError(
                "deployment_config.containerResourceRequirements",
                f"no managed online SKU has {cpu} cores and {mem} GB; the largest mapped is {SKUS[-1][0]} ({SKUS[-1][1]} cores, {SKUS[-1][2]} GB)",
            )
        sku = fits[0]
    count = deployment.get("numReplicas") or (deployment.get("autoScaler") or {}).get("minReplicas") or 1
    return sku, int(count)


def name_pending(exc: BaseException) -> str | None:
    """A PUT of a just-deleted endpoint's name answers 404 NotFound / InferencingClientCallFailed for a while."""
    if status_of(exc) == 404 and "InferencingClientCallFailed" in error_code(exc):
        return "Azure has not released this endpoint name since its deletion yet (404 InferencingClientCallFailed)"
    return None


def name_taken(exc: BaseException, name: str) -> ValidationError | None:
    """The name is another endpoint's in this region (names are DNS labels, unique across all subscriptions)."""
    text = _message(_root(exc)) + " " + str(exc)
    if "unique within a region" in text or "already exists" in text:
        return ValidationError(
            "service_name",
            f"online endpoint name {name!r} is taken in this region by another endpoint (names are unique per region across all "
            "subscriptions): choose another service_name",
        )
    return None


@dataclass
class OnlineSpec:
    endpoint: str
    base_image: str
    source_dir: str
    source_digest: str
    entry_script: str
    conda_file: str | None
    models: list[dict[str, Any]]
    instance_type: str
    instance_count: int
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def deployment_name(self) -> str:
        key = json.dumps(
            {k: getattr(self, k) for k in ("base_image", "source_digest", "entry_script", "models", "instance_type")}
            | {"conda": Path(self.conda_file).read_text() if self.conda_file else None},
            sort_keys=True,
            default=str,
        )
        return "mld-" + hashlib.sha256(key.encode()).hexdigest()[:12]


class OnlineDeployer(AzureClient):
    """Online endpoints on one workspace. SDK clients are made per call."""

    def __init__(
        self, workspace: AzureTarget | str, credential: Any = None, transport: Any = None, log_lines: int = 60, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.workspace = parse_target(workspace, "target") if isinstance(workspace, str) else workspace
        if self.workspace.kind != "workspace":
            raise ValidationError("target", "an online deployment needs an Azure ML workspace target")
        self._credential = credential
        self._transport = transport
        self.log_lines = log_lines
        self._backoff = Backoff(attempts=10, first=5.0, cap=30.0, sleep=sleep)

    def _ml(self) -> Any:
        return ml_client(self.workspace, self.credential, self._transport)

    def deploy(self, spec: OnlineSpec, log: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
        from azure.ai.ml.entities import CodeConfiguration, Environment, ManagedOnlineDeployment, ManagedOnlineEndpoint

        if len(spec.models) != 1:
            raise ValidationError("models", f"a managed online deployment serves exactly one registered model; got {len(spec.models)}")
        check_endpoint_name(spec.endpoint, "service_name")
        ml = self._ml()
        name = spec.endpoint
        try:
            endpoint = call(f"reading endpoint {name}", ml.online_endpoints.get, name)
        except NotFound:
            log(f"creating online endpoint {name}; waiting while Azure answers Creating, then Updating (usually 1-3 minutes)")
            ep = ManagedOnlineEndpoint(name=name, auth_mode="key", description=spec.description or None, tags=spec.tags or None)
            what = f"creating endpoint {name}"
            try:
                endpoint = with_retry(what, lambda: ml.online_endpoints.begin_create_or_update(ep).result(), name_pending, self._backoff, log)
            except Exception as exc:
                raise name_taken(exc, name) or translate(exc, what) from exc

        container, _datastore = default_container(ml, self.credential, self._transport, log)
        folder = f"mldeploy/code/{name}/{spec.source_digest.split(':', 1)[1]}"
        upload_verified(container, folder, Path(spec.source_dir), spec.source_digest, keep_name=False, ignore=source_ignore)  # as source_digest

        from azure.ai.ml.entities._assets import Code

        code_name, code_version = f"mldeploy-{name}", spec.source_digest.split(":", 1)[1][:16]
        # The blob URL of the uploaded folder: what Azure ML stores as a code version's codeUri.
        code = Code(name=code_name, version=code_version, path=f"{container.url.rstrip('/')}/{folder}/")
        call(f"registering the code of {name}", ml._code.create_or_update, code)  # MLClient keeps code assets private

        dep_name = spec.deployment_name()
        m = spec.models[0]
        deployment = ManagedOnlineDeployment(
            name=dep_name,
            endpoint_name=name,
            model=f"azureml:{m['name']}:{m['version']}",
            environment=Environment(image=spec.base_image, conda_file=spec.conda_file),
            code_configuration=CodeConfiguration(code=f"azureml:{code_name}:{code_version}", scoring_script=spec.entry_script),
            instance_type=spec.instance_type,
            instance_count=spec.instance_count,
        )
        check_deployment_name(dep_name)
        log(f"deploying {dep_name} ({spec.instance_count} x {spec.instance_type}) to {name}; waiting while it is Updating (image build and probes: often 5-15 minutes)")
        try:
            result = call(
                f"deploying {dep_name} to {name}",
                lambda: ml.online_deployments.begin_create_or_update(deployment, skip_script_validation=True).result(),
            )
            state = getattr(result, "provisioning_state", None) or "Succeeded"
            if state != "Succeeded":
                raise BackendError(f"deployment {dep_name} on {name} ended {state}")
        except BackendError as exc:
            raise BackendError(f"{exc}\n{self._logs(ml, dep_name, name)}") from exc

        log(f"{dep_name} is healthy; sending all traffic to it")
        endpoint = call(f"reading endpoint {name}", ml.online_endpoints.get, name)
        old = [d for d in (endpoint.traffic or {}) if d != dep_name]
        endpoint.traffic = {dep_name: 100}
        log(f"waiting for endpoint {name} to take the traffic switch")
        endpoint = call(f"switching traffic of {name}", lambda: ml.online_endpoints.begin_create_or_update(endpoint).result())
        others = {d.name for d in call(f"listing deployments of {name}", lambda: list(ml.online_deployments.list(name)))} | set(old)
        for d in sorted(others - {dep_name}):
            log(f"deleting previous deployment {d}")
            try:
                call(f"deleting deployment {d}", lambda d=d: ml.online_deployments.begin_delete(d, name).result())
            except NotFound:
                pass
        keys = call(f"reading the keys of {name}", ml.online_endpoints.get_keys, name)
        return {
            "endpoint_name": name,
            "deployment_name": dep_name,
            "scoring_uri": endpoint.scoring_uri,
            "swagger_uri": getattr(endpoint, "openapi_uri", None) or "",
            "primary_key": keys.primary_key,
            "secondary_key": keys.secondary_key,
            "state": "running",
            "instance_type": spec.instance_type,
            "instance_count": spec.instance_count,
            "deployed_at": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        }

    def _logs(self, ml: Any, dep_name: str, endpoint: str) -> str:
        try:
            text = ml.online_deployments.get_logs(dep_name, endpoint, lines=self.log_lines)
        except Exception as exc:  # the logs are a courtesy; never hide the real error
            return f"(deployment logs unavailable: {type(exc).__name__}: {exc})"
        return f"last {self.log_lines} lines of the deployment's logs:\n{text}"

    def state(self, endpoint: str, deployment: str) -> str:
        """``running`` when the deployment is provisioned and takes the traffic; its state otherwise. ``NotFound`` if gone."""
        ml = self._ml()
        ep = call(f"reading endpoint {endpoint}", ml.online_endpoints.get, endpoint)
        dep = call(f"reading deployment {deployment}", ml.online_deployments.get, deployment, endpoint)
        state = getattr(dep, "provisioning_state", None) or "Unknown"
        if state == "Succeeded" and (ep.traffic or {}).get(deployment, 0) > 0:
            return "running"
        return state.lower()

    def delete(self, endpoint: str) -> None:
        ml = self._ml()
        try:
            call(f"deleting endpoint {endpoint}", lambda: ml.online_endpoints.begin_delete(endpoint).result())
        except NotFound:
            pass


__all__ = ["OnlineDeployer", "OnlineSpec", "deployment_sizing"]
