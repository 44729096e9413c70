"""The workspace's container registry: the document's
``az ml workspace show -w <ws> -g <rg> --query containerRegistry``, through azure-ai-ml.

``registry_of_workspace`` answers the registry's ARM id; ``registry_info``
adds its login server (``<name>.azurecr.io``) from azure-mgmt-containerregistry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...errors import BackendError
from ._common import AzureTarget, call, parse_target
from .credentials import AzureClient, default_credential


@dataclass(frozen=True)
class RegistryInfo:
    target: AzureTarget  # kind == "registry"
    login_server: str


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
    """The registry a workspace or registry target uses, with its login server."""
    from azure.mgmt.containerregistry import ContainerRegistryManagementClient

    credential = credential or default_credential()
    reg = registry_of_workspace(target, credential, transport)
    kwargs = {"transport": transport} if transport is not None else {}
    client = ContainerRegistryManagementClient(credential, reg.subscription_id, **kwargs)
    found = call(f"reading container registry {reg.name}", client.registries.get, reg.resource_group, reg.name)
    return RegistryInfo(reg, found.login_server)


class RegistryBound(AzureClient):
    """An Azure backend bound to one container registry (a workspace target resolves to its registry)."""

    target: AzureTarget
    _info: RegistryInfo | None = None

    @property
    def info(self) -> RegistryInfo:
        if self._info is None:
            self._info = registry_info(self.target, self.credential, self._transport)
        return self._info
