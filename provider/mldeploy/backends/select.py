"""Choose the backend for a target. The only module that knows every implementation.

``runtime(target)``: where an ``InferenceDeployment`` runs (``local``, ``swarm``,
``kubernetes``, ``azure:<workspace ARM id>``); ``resolve_target`` picks the
default by computeType (``DEFAULT_TARGET_BY_COMPUTE_TYPE``).

``registry`` values accepted by the local target: ``"local"`` (the embedded
default) or the local registry's address (``127.0.0.1:5000``). The azure
target: ``azure:<ARM id of an Azure ML workspace>`` (or, for identities, of a
container registry); see ``backends/azure``. Building an Azure backend does no I/O.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ValidationError
from ..settings import Settings
from .protocols import IdentityStore, ModelRegistry, Runtime

LOCAL_NAMES = ("local",)


def is_local_registry(registry: str | None, settings: Settings) -> bool:
    return registry in (None, "", *LOCAL_NAMES, settings.registry)


def is_azure(value: object) -> bool:
    """Whether a registry/target value names the azure target (``azure:/subscriptions/...``)."""
    return isinstance(value, str) and value.startswith("azure:")


def identity_store(registry: str | None, field: str = "registry", progress: Callable[[str], None] | None = None) -> IdentityStore:
    settings = Settings.from_env()
    if is_azure(registry):
        from .azure._common import parse_target
        from .azure.identity import EntraIdentityStore

        return EntraIdentityStore(parse_target(str(registry), field), progress=progress)  # progress: what replication it waits for
    if is_local_registry(registry, settings):
        from .htpasswd import HtpasswdIdentityStore

        return HtpasswdIdentityStore(settings.registry_dir, settings.registry)
    raise ValidationError(
        field,
        f"unknown registry {registry!r}; use 'local' (the embedded registry at {settings.registry}), "
        "or 'azure:<ARM id of an Azure ML workspace or container registry>'.",
    )


MODEL_REGISTRIES = ("local", "azure:<workspace ARM id>")


def model_registry(registry: str | None, field: str = "registry") -> ModelRegistry:
    """The model registry for ``registry``: ``"local"`` (the default) is the embedded MLflow registry."""
    settings = Settings.from_env()
    if is_azure(registry):
        from .azure._common import parse_target
        from .azure.ml_registry import AzureMlModelRegistry

        target = parse_target(str(registry), field)
        if target.kind != "workspace":
            raise ValidationError(field, f"the azure model registry is a workspace's; {registry!r} is a container registry")
        return AzureMlModelRegistry(target)
    if registry in (None, "", "local"):
        from .mlflow_registry import MlflowModelRegistry

        return MlflowModelRegistry(settings.mlflow_dir)
    raise ValidationError(
        field,
        f"unknown model registry {registry!r}; valid values: {', '.join(repr(r) for r in MODEL_REGISTRIES)} "
        f"(the embedded MLflow registry under {settings.mlflow_dir}). The Azure ML registry comes with the azure target.",
    )


# -- runtimes: where an InferenceDeployment runs ------------------------------------------------------
TARGETS = ("local", "swarm", "kubernetes")  # and "azure:<workspace ARM id>"
#: The target a deployment runs on when neither ``target=`` nor the stack config ``mldeploy:target`` names one,
#: by the deployment config's computeType (the document's ``aks`` is a cluster; anything else runs here).
DEFAULT_TARGET_BY_COMPUTE_TYPE = {"aks": "kubernetes"}
DEFAULT_TARGET = "local"


def resolve_target(given: str | None, compute_type: str | None) -> str:
    """The target: ``given`` (the ``target=`` argument, else the stack config), else by computeType."""
    if given:
        return given
    return DEFAULT_TARGET_BY_COMPUTE_TYPE.get(compute_type or "", DEFAULT_TARGET)


def runtime(target: str, field: str = "target") -> Runtime:
    """The runtime for ``target``; ``ValidationError(field)`` for an unknown one. No I/O."""
    if is_azure(target):
        from .azure.runtime import AzureRuntime

        return AzureRuntime(target)
    if target == "local":
        from .local_runtime import LocalRuntime

        return LocalRuntime()
    if target == "swarm":
        from .swarm_runtime import SwarmRuntime

        return SwarmRuntime()
    if target == "kubernetes":
        from .kubernetes import KubernetesRuntime

        return KubernetesRuntime()
    raise ValidationError(
        field, f"unknown target {target!r}; valid targets: {', '.join(TARGETS)}, or 'azure:<ARM id of an Azure ML workspace>'"
    )
