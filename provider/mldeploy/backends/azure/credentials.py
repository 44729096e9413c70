"""Azure credentials: ``DefaultAzureCredential``, built per call, never stored on a provider.

The chain (environment, workload identity, managed identity, Azure CLI,
PowerShell, ...) is azure-identity's. Interactive browser login is excluded: a
``pulumi up`` must never wait for a browser. Tests pass their own
``TokenCredential`` to the backends instead.
"""

from __future__ import annotations

from typing import Any

from ...errors import BackendError

ARM_SCOPE = "https://management.azure.com/.default"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"


def default_credential() -> Any:
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError as exc:  # pragma: no cover - without the extra
        raise BackendError(f"the azure target needs mldeploy's azure extra (pip install 'mldeploy[azure]'): {exc}") from exc
    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


class AzureClient:
    """Base of the Azure backends: the credential given (tests pass their own) or ``DefaultAzureCredential``
    made on first use, and an optional azure-core transport. One instance per provider call."""

    _credential: Any = None
    _transport: Any = None

    @property
    def credential(self) -> Any:
        if self._credential is None:
            self._credential = default_credential()
        return self._credential
