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


ARM = "https://management.azure.com"


def arm_json(credential: Any, transport: Any, method: str, path: str, api_version: str, body: Any = None) -> Any:
    """One ARM REST call at an API version the installed SDK does not model (e.g. a registry's
    ``roleAssignmentMode``); the answer's JSON. Failures raise azure-core's ``HttpResponseError`` with the
    ARM error (``.error.code``), to be translated by the caller like any SDK error."""
    from azure.core import PipelineClient
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
    from azure.core.pipeline.policies import BearerTokenCredentialPolicy, HeadersPolicy, RetryPolicy, UserAgentPolicy
    from azure.core.rest import HttpRequest
    from azure.mgmt.core.exceptions import ARMErrorFormat

    policies = [HeadersPolicy(), UserAgentPolicy("mldeploy"), RetryPolicy(), BearerTokenCredentialPolicy(credential, ARM_SCOPE)]
    kwargs = {"transport": transport} if transport is not None else {}
    client = PipelineClient(ARM, policies=policies, **kwargs)
    resp = client.send_request(HttpRequest(method, f"{ARM}{path}", params={"api-version": api_version}, json=body))
    if resp.status_code == 404:
        raise ResourceNotFoundError(response=resp, error_format=ARMErrorFormat)
    if resp.status_code >= 400:
        raise HttpResponseError(response=resp, error_format=ARMErrorFormat)
    return resp.json() if resp.content else None
