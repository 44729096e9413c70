"""ServicePrincipal on Entra ID against recorded answers (azure-cli's `ad sp create-for-rbac` recording),
with the replication answers Graph and ARM give right after a create (derived.json) in front of them."""

from __future__ import annotations

import json

import pytest
from mldeploy.backends.azure.identity import ABAC_ROLE_IDS, ROLE_IDS, EntraIdentityStore
from mldeploy.errors import AuthError

from .conftest import ACR, ACR_ID, TARGET, rebase
from .replay import derived, pick

RBAC = "azure-cli/test_create_for_rbac_with_password_with_assignment.excerpt.yaml"
ABAC = "azure-cli/test_acr_abac_build.excerpt.yaml"
APP_OID = "2d6ed3d8-af04-474f-84c6-551de38aa3bf"  # recorded application object id
APP_ID = "c62c2d08-8b6d-4213-8556-e92d063ea158"  # recorded appId (the client id)
SP_OID = "2777ed8c-14fe-4861-9f28-f9c54388c4d8"  # recorded service principal object id
RA = ACR_ID + "/providers/Microsoft.Authorization/roleAssignments/[0-9a-f-]+"


def answer(i):  # type: ignore[no-untyped-def]
    return i.status, i.body, i.headers


def token(*actions: str):  # type: ignore[no-untyped-def]
    """The registry token endpoint's 200: a JWT whose ``access`` claim lists the granted actions (the Docker
    registry token format ACR issues; unsigned here: the backend reads the claim, it does not verify it)."""
    import base64

    claims = {"iss": "Azure Container Registry", "access": [{"type": "repository", "name": "mldeploy-probe", "actions": list(actions)}]}
    b64 = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")  # noqa: E731
    return 200, {"access_token": f"{b64({'alg': 'RS256', 'typ': 'JWT'})}.{b64(claims)}.sig"}, {}


def registry_accepts(azure, *answers) -> None:  # type: ignore[no-untyped-def]
    azure.on("GET", "/oauth2/token", *(answers or (token("pull", "push"),)), host=f"{ACR}.azurecr.io")


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def lines() -> list[str]:
    return []


@pytest.fixture
def store(azure, graph, cred, waits, lines):  # type: ignore[no-untyped-def]
    return EntraIdentityStore(TARGET, cred, azure.transport(), graph.client, sleep=waits.append, progress=lines.append)


@pytest.fixture
def recorded(azure, graph):  # type: ignore[no-untyped-def]
    """Graph: the application is created; the service principal POST first answers 400 NoBackingApplicationObject
    and the password POST first answers 404 (replication), then the recorded 201/200. ARM: the role assignment
    first answers 400 PrincipalNotFound, then the recorded 201."""
    graph.play(pick(RBAC, "POST", "/v1.0/applications"))
    graph.on("POST", "/v1.0/servicePrincipals", derived("graph_no_backing_application", app_id=APP_ID), answer(pick(RBAC, "POST", "/v1.0/servicePrincipals")))
    graph.on("POST", f"/v1.0/applications/{APP_OID}/addPassword", derived("graph_object_not_found", object_id=APP_OID), answer(pick(RBAC, "POST", "/addPassword")))
    azure.on("PUT", RA, derived("arm_principal_not_found", principal_id=SP_OID, tenant_id="54826b22-38d6-4fb2-bad9-b7b93a3e9c5a"), answer(pick(RBAC, "PUT", "/roleAssignments/")))
    # The registry: the new password unknown at first (401), then known but the role not there yet (no pull), then usable.
    registry_accepts(azure, derived("acr_token_unauthorized"), token(), token("pull"))
    return azure, graph


def test_create_waits_out_replication_and_keeps_the_application(store, recorded, waits, lines) -> None:  # type: ignore[no-untyped-def]
    azure, graph = recorded
    ident, secret = store.create("demo-pull", "AcrPull", 30)

    # What the user gets: the recorded client id and secret.
    assert ident.client_id == APP_ID and secret == "replaced-microsoft-graph-password"
    assert ident.role == "AcrPull" and ident.registry_address == f"{ACR}.azurecr.io"
    # Each "not yet" was retried, not answered by deleting the new application.
    assert len(graph.calls("POST", "/servicePrincipals$")) == 2
    assert len(graph.calls("POST", "/addPassword$")) == 2
    assert graph.calls("DELETE") == []
    puts = azure.calls("PUT", "/roleAssignments/")
    assert len(puts) == 2 and puts[0].path == puts[1].path, "the retry reuses the assignment name: never two assignments"
    body = puts[-1].json["properties"]
    assert body == {"roleDefinitionId": f"/subscriptions/{ACR_ID.split('/')[2]}/providers/Microsoft.Authorization/roleDefinitions/{ROLE_IDS['AcrPull']}",
                    "principalId": SP_OID, "principalType": "ServicePrincipal"}
    assert graph.calls("POST", "/servicePrincipals$")[-1].json["appId"] == APP_ID
    # Create returned only once the registry granted the role to the new password (a push now gets no 401).
    probes = azure.calls("GET", "/oauth2/token")
    assert len(probes) == 3 and probes[0].query["scope"] == ["repository:mldeploy-probe:pull"]
    assert probes[0].headers["Authorization"] == "Basic " + __import__("base64").b64encode(f"{APP_ID}:replaced-microsoft-graph-password".encode()).decode()
    # Bounded back-off, reported: what is awaited, and how long.
    assert waits == [2.0, 2.0, 2.0, 2.0, 4.0]
    assert any("does not accept the new password yet (HTTP 401)" in m for m in lines)
    assert any("does not grant AcrPull (pull) to it yet" in m for m in lines)
    assert any("NoBackingApplicationObject" in m for m in lines)
    assert any("does not show the new application yet" in m for m in lines)
    assert any("PrincipalNotFound" in m for m in lines)


def test_existing_role_assignment_is_success(store, azure, graph, waits) -> None:  # type: ignore[no-untyped-def]
    graph.play(pick(RBAC, "POST", "/v1.0/applications"), pick(RBAC, "POST", "/v1.0/servicePrincipals"), pick(RBAC, "POST", "/addPassword"))
    azure.on("PUT", RA, derived("arm_role_assignment_exists"))
    registry_accepts(azure)
    ident, _ = store.create("demo-pull", "AcrPull", 30)
    assert ident.client_id == APP_ID and graph.calls("DELETE") == [] and waits == []


def test_replication_that_never_finishes_fails_and_removes_the_application(azure, graph, cred, waits) -> None:  # type: ignore[no-untyped-def]
    graph.play(pick(RBAC, "POST", "/v1.0/applications"))
    graph.on("POST", "/v1.0/servicePrincipals", derived("graph_no_backing_application", app_id=APP_ID))
    graph.on("DELETE", f"/v1.0/applications/{APP_OID}", (204, b"", {}))
    store = EntraIdentityStore(TARGET, cred, azure.transport(), graph.client, replication_retries=3, sleep=waits.append)
    with pytest.raises(Exception, match="NoBackingApplicationObject"):
        store.create("demo-pull", "AcrPull", 30)
    assert len(graph.calls("POST", "/servicePrincipals$")) == 4 and waits == [2.0, 4.0, 8.0]
    assert len(graph.calls("DELETE", f"/applications/{APP_OID}")) == 1, "nothing orphaned"


def test_refused_role_assignment_removes_the_application(store, azure, graph) -> None:  # type: ignore[no-untyped-def]
    graph.play(pick(RBAC, "POST", "/v1.0/applications"), pick(RBAC, "POST", "/v1.0/servicePrincipals"), pick(RBAC, "POST", "/addPassword"))
    azure.on("PUT", RA, (403, {"error": {"code": "AuthorizationFailed", "message": "does not have authorization to perform action 'Microsoft.Authorization/roleAssignments/write'"}}, {}))
    graph.on("DELETE", f"/v1.0/applications/{APP_OID}", (204, b"", {}))
    with pytest.raises(AuthError, match="roleAssignments/write"):
        store.create("demo-pull", "AcrPull", 30)
    assert len(azure.calls("PUT", "/roleAssignments/")) == 1, "a refusal is not retried"
    assert len(graph.calls("DELETE", f"/applications/{APP_OID}")) == 1


def test_abac_registry_gets_the_repository_roles(store, azure, graph) -> None:  # type: ignore[no-untyped-def]
    """The recorded ABAC registry (azure-cli test_acr_abac_build): AcrPull would not be honoured there."""
    abac = pick(ABAC, "GET", "/registries/clireg000002").json
    azure.on("GET", ACR_ID, (200, rebase(abac, ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/cli_test_acrabac_000001/providers/Microsoft.ContainerRegistry/registries/clireg000002", ACR_ID), ("clireg000002", ACR)), {}))
    graph.play(pick(RBAC, "POST", "/v1.0/applications"), pick(RBAC, "POST", "/v1.0/servicePrincipals"), pick(RBAC, "POST", "/addPassword"))
    azure.on("PUT", RA, answer(pick(RBAC, "PUT", "/roleAssignments/")))
    registry_accepts(azure)
    ident, _ = store.create("demo-push", "AcrPush", 30)
    assert azure.calls("GET", "/oauth2/token")[0].query["scope"] == ["repository:mldeploy-probe:pull,push"]
    sent = azure.calls("PUT", "/roleAssignments/")[0].json["properties"]["roleDefinitionId"]
    assert sent.endswith(ABAC_ROLE_IDS["AcrPush"]) and ident.role == "AcrPush"
