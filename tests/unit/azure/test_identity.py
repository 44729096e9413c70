"""ServicePrincipal on Entra ID + Azure RBAC at the HTTP boundary (Graph via httpx, ARM via azure-core)."""

from __future__ import annotations

import pytest
from mldeploy.backends.azure.identity import ROLE_IDS, EntraIdentityStore
from mldeploy.errors import BackendError, NotFound

from .conftest import ACR_ID, LOGIN, SUB, TARGET
from .fakes import arm_error, graph_error
from .replay import pick

APP_OID = "11111111-1111-1111-1111-111111111111"
APP_ID = "22222222-2222-2222-2222-222222222222"
SP_OID = "33333333-3333-3333-3333-333333333333"
KEY1 = "44444444-4444-4444-4444-444444444444"
KEY2 = "55555555-5555-5555-5555-555555555555"
G = "/v1.0"
RA = ACR_ID + "/providers/Microsoft.Authorization/roleAssignments"


RBAC = "azure-cli/test_create_for_rbac_with_password_with_assignment.excerpt.yaml"


def app(name: str = "demo-pull", keys: tuple[str, ...] = (KEY1,), end: str = "2099-01-01T00:00:00Z") -> dict:  # type: ignore[type-arg]
    """The recorded application (azure-cli create-for-rbac) with this test's ids, name, tags and passwords."""
    return {
        **pick(RBAC, "POST", "/v1.0/applications").json,
        "id": APP_OID,
        "appId": APP_ID,
        "displayName": name,
        "createdDateTime": "2025-06-01T10:00:00Z",
        "tags": ["mldeploy", "mldeploy-role:AcrPull"],
        "passwordCredentials": [{"keyId": k, "displayName": f"mldeploy {name}", "endDateTime": end, "hint": "abc"} for k in keys],
    }


def sp() -> dict:  # type: ignore[type-arg]
    """The recorded service principal with this test's ids."""
    return {**pick(RBAC, "POST", "/v1.0/servicePrincipals").json, "id": SP_OID, "appId": APP_ID, "displayName": "demo-pull"}


def password(key: str, secret: str) -> dict:  # type: ignore[type-arg]
    """The recorded addPassword answer with this test's key id and secret."""
    return {**pick(RBAC, "POST", "/addPassword").json, "keyId": key, "secretText": secret, "displayName": "mldeploy demo-pull",
            "endDateTime": "2099-01-01T00:00:00Z", "hint": secret[:3]}


def assignment(role: str = "AcrPull", name: str = "66666666-6666-6666-6666-666666666666", scope: str = ACR_ID) -> dict:  # type: ignore[type-arg]
    """The recorded role assignment (azure-cli create-for-rbac) for this test's principal, role and scope."""
    recorded = pick(RBAC, "PUT", "/roleAssignments/").json
    return {
        **recorded,
        "id": f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}",
        "name": name,
        "properties": {
            **recorded["properties"],
            "roleDefinitionId": f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{ROLE_IDS[role]}",
            "principalId": SP_OID,
            "scope": scope,
        },
    }


@pytest.fixture
def store(azure, graph, cred):  # type: ignore[no-untyped-def]
    # The registry token probe after create is covered by test_recorded_identity.
    return EntraIdentityStore(TARGET, cred, azure.transport(), graph.client, replication_retries=2, replication_delay=0, wait_usable=False)


def _reads(graph, azure, assignments: list) -> None:  # type: ignore[no-untyped-def,type-arg]
    graph.on("GET", f"{G}/applications\\(appId='{APP_ID}'\\)", (200, app(), {}))
    graph.on("GET", f"{G}/servicePrincipals\\(appId='{APP_ID}'\\)", (200, sp(), {}))
    azure.on("GET", RA, (200, {"value": assignments}, {}))


def test_create_makes_app_sp_password_and_scoped_role(store, azure, graph) -> None:  # type: ignore[no-untyped-def]
    graph.on("POST", f"{G}/applications", (201, app(keys=()), {}))
    graph.on("POST", f"{G}/servicePrincipals", (201, sp(), {}))
    graph.on("POST", f"{G}/applications/{APP_OID}/addPassword", (200, password(KEY1, "s3cret-one"), {}))
    azure.on(
        "PUT",
        RA + "/[0-9a-f-]{36}",
        arm_error(400, "PrincipalNotFound", f"Principal {SP_OID} does not exist in the directory"),
        lambda req: (201, assignment(name=req.path.rsplit("/", 1)[-1]), {}),
    )

    ident, secret = store.create("demo-pull", "AcrPull", 30)

    assert secret == "s3cret-one"
    assert (ident.client_id, ident.role, ident.registry_address, ident.display_name) == (APP_ID, "AcrPull", LOGIN, "demo-pull")
    assert ident.created_at == "2025-06-01T10:00:00+00:00" and ident.expires_at == "2099-01-01T00:00:00+00:00"
    posted = graph.calls("POST", "/applications$")[0]
    assert posted.json["displayName"] == "demo-pull" and "mldeploy" in posted.json["tags"]
    assert graph.calls("POST", "/servicePrincipals")[0].json["appId"] == APP_ID
    pw = graph.calls("POST", "addPassword")[0].json["passwordCredential"]
    assert pw["displayName"] == "mldeploy demo-pull" and pw["endDateTime"].startswith("20")
    puts = azure.calls("PUT", "roleAssignments")
    assert len(puts) == 2, "PrincipalNotFound (replication delay) is retried"
    assert puts[0].path == puts[1].path, "the retry reuses the assignment name"
    assert puts[1].api_version and puts[1].json["properties"] == {
        "roleDefinitionId": f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{ROLE_IDS['AcrPull']}",
        "principalId": SP_OID,
        "principalType": "ServicePrincipal",
    }
    assert all(r.headers.get("authorization") == "Bearer fake-token" for r in graph.requests)


def test_create_rolls_back_the_app_when_the_role_fails(store, azure, graph) -> None:  # type: ignore[no-untyped-def]
    graph.on("POST", f"{G}/applications", (201, app(keys=()), {}))
    graph.on("POST", f"{G}/servicePrincipals", (201, sp(), {}))
    graph.on("POST", f"{G}/applications/{APP_OID}/addPassword", (200, password(KEY1, "s"), {}))
    graph.on("DELETE", f"{G}/applications/{APP_OID}", (204, b"", {}))
    azure.on("PUT", RA + "/[0-9a-f-]{36}", arm_error(409, "Conflict", "Another operation is in progress on the scope"))
    with pytest.raises(BackendError, match="409"):
        store.create("demo-pull", "AcrPull", None)
    assert len(graph.calls("DELETE", f"/applications/{APP_OID}")) == 1


def test_get_reads_app_and_role(store, azure, graph) -> None:  # type: ignore[no-untyped-def]
    inherited = assignment("AcrPush", name="77777777-7777-7777-7777-777777777777", scope=f"/subscriptions/{SUB}")
    _reads(graph, azure, [assignment("AcrPull"), inherited])
    ident = store.get(APP_ID)
    assert ident.role == "AcrPull", "an assignment inherited from the subscription does not count"
    lst = azure.calls("GET", "roleAssignments")[0]
    assert lst.query["$filter"] == [f"principalId eq '{SP_OID}'"] and lst.api_version


def test_get_after_out_of_band_delete_is_not_found(store, graph) -> None:  # type: ignore[no-untyped-def]
    graph.on("GET", f"{G}/applications\\(appId='{APP_ID}'\\)", graph_error(404, "Request_ResourceNotFound", f"Resource '{APP_ID}' does not exist"))
    graph.on("GET", f"{G}/servicePrincipals\\(appId='{APP_ID}'\\)", graph_error(404, "Request_ResourceNotFound", "gone"))
    with pytest.raises(NotFound, match="does not exist"):
        store.get(APP_ID)


def test_get_without_role_or_with_expired_passwords_is_not_found(store, azure, graph) -> None:  # type: ignore[no-untyped-def]
    _reads(graph, azure, [])
    with pytest.raises(NotFound, match="no AcrPull/AcrPush role"):
        store.get(APP_ID)
    graph.on("GET", f"{G}/applications\\(appId='{APP_ID}'\\)", (200, app(end="2020-01-01T00:00:00Z"), {}))
    azure.on("GET", RA, (200, {"value": [assignment()]}, {}))
    with pytest.raises(NotFound, match="expired"):
        store.get(APP_ID)


def test_graph_throttling_is_retried(store, azure, graph) -> None:  # type: ignore[no-untyped-def]
    _reads(graph, azure, [assignment()])
    graph.on("GET", f"{G}/applications\\(appId='{APP_ID}'\\)", (429, graph_error(429, "TooManyRequests", "slow")[1], {"Retry-After": "1"}), (200, app(), {}))
    assert store.get(APP_ID).client_id == APP_ID
    assert len(graph.calls("GET", "/applications\\(")) == 2


def test_rotate_adds_new_then_removes_old(store, azure, graph) -> None:  # type: ignore[no-untyped-def]
    _reads(graph, azure, [assignment("AcrPush")])
    graph.on("POST", f"{G}/applications/{APP_OID}/addPassword", (200, password(KEY2, "s3cret-two"), {}))
    graph.on("POST", f"{G}/applications/{APP_OID}/removePassword", (204, b"", {}))
    ident, secret = store.rotate(APP_ID, 7)
    assert secret == "s3cret-two" and ident.role == "AcrPush"
    order = [(r.method, r.path.rsplit("/", 1)[-1]) for r in graph.requests if r.method == "POST"]
    assert order == [("POST", "addPassword"), ("POST", "removePassword")]
    assert graph.calls("POST", "removePassword")[0].json == {"keyId": KEY1}


def test_update_patches_display_name(store, azure, graph) -> None:  # type: ignore[no-untyped-def]
    _reads(graph, azure, [assignment()])
    graph.on("PATCH", f"{G}/applications\\(appId='{APP_ID}'\\)", (204, b"", {}))
    store.update(APP_ID, "renamed")
    assert graph.calls("PATCH")[0].json["displayName"] == "renamed"


def test_delete_removes_assignment_then_app_and_tolerates_missing(store, azure, graph) -> None:  # type: ignore[no-untyped-def]
    _reads(graph, azure, [assignment()])
    azure.on("DELETE", RA + "/66666666-6666-6666-6666-666666666666", (200, assignment(), {}))
    graph.on("DELETE", f"{G}/applications\\(appId='{APP_ID}'\\)", (204, b"", {}))
    store.delete(APP_ID)
    assert len(azure.calls("DELETE", "roleAssignments/6666")) == 1
    assert azure.calls("DELETE")[0].api_version
    assert len(graph.calls("DELETE")) == 1

    graph.on("GET", f"{G}/servicePrincipals\\(appId='{APP_ID}'\\)", graph_error(404, "Request_ResourceNotFound", "gone"))
    graph.on("DELETE", f"{G}/applications\\(appId='{APP_ID}'\\)", graph_error(404, "Request_ResourceNotFound", "gone"))
    store.delete(APP_ID)  # already gone: not an error


def test_rotate_removes_the_old_password_only_once_the_registry_accepts_the_new(azure, graph, cred) -> None:  # type: ignore[no-untyped-def]
    from .test_recorded_identity import registry_accepts, token

    _reads(graph, azure, [assignment("AcrPush")])
    graph.on("POST", f"{G}/applications/{APP_OID}/addPassword", (200, password(KEY2, "s3cret-two"), {}))
    graph.on("POST", f"{G}/applications/{APP_OID}/removePassword", (204, b"", {}))
    waits: list[float] = []
    registry_accepts(azure, token("pull"), token("pull", "push"))  # the AcrPush role reaches the new password on the 2nd probe
    store = EntraIdentityStore(TARGET, cred, azure.transport(), graph.client, sleep=waits.append)
    _, secret = store.rotate(APP_ID, 7)
    assert secret == "s3cret-two" and waits == [2.0]
    probes = azure.calls("GET", "/oauth2/token")
    assert len(probes) == 2 and probes[0].query["scope"] == ["repository:mldeploy-probe:pull,push"]
    remove = graph.calls("POST", "removePassword")[0]
    assert graph.requests.index(remove) == len(graph.requests) - 1, "old password removed last"
