"""Azure backends: the same interfaces as the local target, on Azure ML, Entra ID and ACR.

Target strings (what ``registry=`` / ``target=`` take, see ``backends/select.py``)::

    azure:/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.MachineLearningServices/workspaces/<ws>
    azure:/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.ContainerRegistry/registries/<acr>

A workspace target finds its container registry from the workspace
(``workspace.registry_of_workspace``, the document's ``az ml workspace show
--query containerRegistry``). Every module here imports its Azure SDK lazily,
takes an optional ``credential`` and azure-core ``transport`` (tests pass
fakes at the HTTP boundary), and never imports pulumi or the resources.
"""

from __future__ import annotations

from ._common import AzureTarget, is_azure_target, parse_target

__all__ = ["AzureTarget", "is_azure_target", "parse_target"]
