"""The workspace's container registry: the document's
``az ml workspace show -w <ws> -g <rg> --query containerRegistry``, through azure-ai-ml.

``registry_of_workspace`` answers the registry's ARM id; ``registry_info``
adds its login server (``<name>.azurecr.io``) and its ``roleAssignmentMode``
(read at api-version ``REGISTRY_API``: a registry in ABAC mode ignores AcrPull/AcrPush).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...errors import BackendError
from ._common import AzureTarget, call, parse_target
from .credentials import AzureClient, arm_json, default_credential

# The first registry API version that answers ``roleAssignmentMode`` and takes
# ``credentials.sourceRegistry.identity`` on scheduleRun (azure-mgmt-containerregistry 14 models neither).
REGISTRY_API = "2025-03-01-preview"
ABAC = "AbacRepositoryPermissions"


@dataclass(frozen=True)
class RegistryInfo:
    target: AzureTarget  # kind == "registry"
    login_server: str
    role_assignment_mode: str = "LegacyRegistryPermissions"

    @property
    def abac(self) -> bool:
        """A registry in ABAC mode honours only the "Container Registry Repository ..." roles, not AcrPull/AcrPush."""
        return self.role_assignment_mode == ABAC


def ml_client(ws: AzureTarget, credential: Any = None, transport: Any = None) -> Any:
    from azure.ai.ml import MLClient

    kwargs: dict[str, Any] = {"show_progress": False, "enable_telemetry": False}
    if transport is not None:
        kwargs["transport"] = transport
    return MLClient(credential or default_credential(), ws.subscription_id, ws.resource_group, ws.name, **kwargs)


def registry_of_workspace(workspace: AzureTarget | str, credential: Any = None, transport: Any = None) -> AzureTarget:
    """The ARM id of the workspace's container registry, parsed. ``NotFound`` if the workspace does not exist."""
    ws = parse_target(workspace, "workspace") if isinstance(workspace, str) else workspace
    if ws.kind == "registry":
        return ws
    client = ml_client(ws, credential, transport)
    found = call(f"reading workspace {ws.name} in {ws.resource_group}", client.workspaces.get, ws.name)
    arm = getattr(found, "container_registry", None)
    if not arm:
        raise BackendError(
            f"workspace {ws.name} has no container registry yet (Azure creates one on first use unless the workspace names one); "
            "create the workspace with container_registry set"
        )
    return parse_target(arm, "workspace.containerRegistry")


def registry_info(target: AzureTarget | str, credential: Any = None, transport: Any = None) -> RegistryInfo:
    """The registry a workspace or registry target uses, with its login server and role assignment mode."""
    credential = credential or default_credential()
    reg = registry_of_workspace(target, credential, transport)
    found = call(f"reading container registry {reg.name}", arm_json, credential, transport, "GET", reg.arm_id, REGISTRY_API)
    props = found.get("properties") or {}
    return RegistryInfo(reg, props["loginServer"], props.get("roleAssignmentMode") or "LegacyRegistryPermissions")


class RegistryBound(AzureClient):
    """An Azure backend bound to one container registry (a workspace target resolves to its registry)."""

    target: AzureTarget
    _info: RegistryInfo | None = None

    @property
    def info(self) -> RegistryInfo:
        if self._info is None:
            self._info = registry_info(self.target, self.credential, self._transport)
        return self._info


def preflight_registry(target: AzureTarget | str, progress: Callable[[str], None] = lambda m: None, credential: Any = None, transport: Any = None) -> RegistryInfo:
    """Preview-time check of the registry a target uses (reads only): it exists, and how it grants access.

    A registry in ABAC mode (``roleAssignmentMode: AbacRepositoryPermissions``) ignores AcrPull/AcrPush:
    identities get "Container Registry Repository Reader/Writer" instead, and remote builds run as the
    caller, who needs "Container Registry Repository Writer" there. Said through ``progress`` at preview.
    """
    info = registry_info(target, credential, transport)
    if info.abac:
        progress(
            f"registry {info.target.name} uses ABAC repository permissions (roleAssignmentMode {ABAC}): identities get "
            "'Container Registry Repository Reader/Writer' instead of AcrPull/AcrPush, and remote builds run as you, "
            "which needs 'Container Registry Repository Writer' on it"
        )
    return info
