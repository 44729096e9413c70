"""The workspace's registry lookup (``az ml workspace show --query containerRegistry``) at the HTTP boundary."""

from __future__ import annotations

import re

import pytest
from mldeploy.backends.azure import parse_target
from mldeploy.backends.azure.workspace import registry_info, registry_of_workspace
from mldeploy.errors import AuthError, NotFound, ValidationError

from .conftest import ACR, ACR_ID, LOGIN, RG, SUB, TARGET, WS, WS_ID
from .fakes import arm_error


def test_registry_from_workspace_arm_id(azure, cred) -> None:  # type: ignore[no-untyped-def]
    reg = registry_of_workspace(TARGET, cred, azure.transport())
    assert (reg.kind, reg.subscription_id, reg.resource_group, reg.name) == ("registry", SUB, RG, ACR)
    assert reg.arm_id == ACR_ID
    (req,) = azure.requests
    assert req.method == "GET" and req.path == WS_ID and req.api_version
    assert req.headers["Authorization"] == "Bearer fake-token"
    assert ("https://management.azure.com/.default",) in cred.scopes


def test_registry_info_adds_login_server(azure, cred) -> None:  # type: ignore[no-untyped-def]
    info = registry_info(TARGET, cred, azure.transport())
    assert info.login_server == LOGIN
    assert [r.path for r in azure.requests] == [WS_ID, ACR_ID]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", azure.requests[1].api_version or "")


def test_registry_target_needs_no_workspace_call(azure, cred) -> None:  # type: ignore[no-untyped-def]
    assert registry_of_workspace("azure:" + ACR_ID, cred, azure.transport()).arm_id == ACR_ID
    assert azure.requests == []


def test_missing_workspace_is_not_found(azure, cred) -> None:  # type: ignore[no-untyped-def]
    azure.on("GET", WS_ID, arm_error(404, "ResourceNotFound", f"The Resource '{WS}' was not found."))
    with pytest.raises(NotFound, match="was not found"):
        registry_of_workspace(TARGET, cred, azure.transport())


def test_forbidden_is_auth_error_not_gone(azure, cred) -> None:  # type: ignore[no-untyped-def]
    azure.on("GET", WS_ID, arm_error(403, "AuthorizationFailed", "The client does not have authorization to perform action"))
    with pytest.raises(AuthError, match="AuthorizationFailed"):
        registry_of_workspace(TARGET, cred, azure.transport())


def test_throttling_is_retried_after_retry_after(azure, cred) -> None:  # type: ignore[no-untyped-def]
    from .conftest import workspace_body

    azure.on("GET", WS_ID, arm_error(429, "TooManyRequests", "slow down", {"Retry-After": "1"}), (200, workspace_body(), {}))
    assert registry_of_workspace(TARGET, cred, azure.transport()).name == ACR
    assert azure.sleeps == [1.0], "azure-core waited the answer's Retry-After (recorded, not slept)"
    assert len(azure.calls("GET", WS_ID)) == 2


@pytest.mark.parametrize("bad", ["azure:/subscriptions/x/resourceGroups/rg", "azure:" + WS_ID.replace("workspaces", "computes"), "local"])
def test_bad_target_names_the_field(bad: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_target(bad, "target")
    assert err.value.field == "target" and "expected 'azure:/subscriptions/" in err.value.message
