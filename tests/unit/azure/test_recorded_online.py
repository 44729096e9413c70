"""Managed online endpoint + deployment against Azure's recorded answers (azure-ai-ml's own e2e recording).

The recording (``recordings/azure-ai-ml/test_online_deployment...excerpt.json``) is what Azure really
answers: the endpoint PUT is ``201 Creating`` with ``scoringUri: null`` and both ``Azure-AsyncOperation``
and ``Location``, its operation polls ``Updating`` then ``Succeeded``; the deployment PUT is ``201
Updating`` and polls ``Updating`` for minutes. The backend must follow all of it and output the scoring
URI Azure assigned.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mldeploy.backends.azure.online import OnlineDeployer, OnlineSpec
from mldeploy.errors import ValidationError
from mldeploy.hashing import source_ignore, tree_digest

from .conftest import TARGET, WS_ID
from .replay import derived, load, pick
from .test_ml_registry import BLOB_HOST, CONTAINER, play_datastore

ONLINE = "azure-ai-ml/test_online_deployment.pyTestOnlineDeploymenttest_online_deployment_skip_script_validation.excerpt.json"
CRUD = "azure-ai-ml/test_model.pyTestModeltest_crud_file.json"
NAME = "online-endp4e07306aec3d482"  # the recorded endpoint's name (a valid one: 26 characters)
EP = WS_ID + f"/onlineEndpoints/{NAME}"
IMAGE = "myregistry.azurecr.io/demo/base@sha256:" + "c" * 64


def answer(i):  # type: ignore[no-untyped-def]
    return i.status, i.body, i.headers


@pytest.fixture
def source(tmp_path: Path) -> Path:
    (tmp_path / "score.py").write_text("def init():\n    pass\n\ndef run(data):\n    return data\n")
    (tmp_path / "infenv.yml").write_text("name: inf\ndependencies:\n- python=3.11\n- pip:\n  - scikit-learn\n")
    return tmp_path


def spec(source: Path, endpoint: str = NAME) -> OnlineSpec:
    return OnlineSpec(
        endpoint=endpoint,
        base_image=IMAGE,
        source_dir=str(source),
        source_digest=tree_digest(source, keep_name=False, ignore=source_ignore)[0],  # as InferenceDeployment computes it
        entry_script="score.py",
        conda_file=str(source / "infenv.yml"),
        models=[{"name": "test_978172339514", "version": 3}],
        instance_type="Standard_F4s_v2",
        instance_count=1,
    )


@pytest.fixture
def recorded(azure):  # type: ignore[no-untyped-def]
    """Azure as recorded: the workspace, the endpoint and deployment lifecycle, the datastore and a model version."""
    azure.play(*load(ONLINE))
    play_datastore(azure)
    azure.play(pick(CRUD, "GET", "/models/test_978172339514/versions/3"), pick(CRUD, "HEAD", "/az-ml-artifacts/", status=404))
    # Not in any public recording (see derived.json): the first GET of a new endpoint, its keys, a blob PUT,
    # and the code/environment registrations (answered with what was sent, as ARM does for these PUTs).
    recorded_get = pick(ONLINE, "GET", "/onlineEndpoints/online-endp4e07306aec3d482")
    azure.on("GET", EP, derived("ml_endpoint_not_found", name=NAME), answer(recorded_get))
    azure.on("POST", EP + "/listKeys", derived("ml_endpoint_keys"))
    azure.on("GET", EP + "/deployments", derived("ml_list_empty"))
    azure.on("PUT", f"/{CONTAINER}/mldeploy/code/.*", derived("blob_put_created"), host=BLOB_HOST)
    azure.on("GET", WS_ID + "/codes/([^/]+)/versions", derived("ml_list_empty"))
    for kind in ("codes", "environments"):
        azure.on("PUT", WS_ID + f"/{kind}/([^/]+)/versions/([^/]+)", lambda r: (200, {**r.json, "id": r.path, "name": r.path.rsplit("/", 1)[-1]}, {}))
    return azure


def test_endpoint_and_deployment_follow_creating_and_updating_to_the_recorded_scoring_uri(recorded, cred, source) -> None:  # type: ignore[no-untyped-def]
    lines: list[str] = []
    out = OnlineDeployer(TARGET, cred, recorded.transport()).deploy(spec(source), lines.append)

    # What the user sees: the scoring URI and swagger URI Azure assigned once provisioning finished.
    assert out["scoring_uri"] == "https://online-endp4e07306aec3d482.eastus2.inference.ml.azure.com/score"
    assert out["swagger_uri"] == "https://online-endp4e07306aec3d482.eastus2.inference.ml.azure.com/swagger.json"
    assert out["state"] == "running" and out["primary_key"] == "fake-primary-key"
    # Every recorded operation status was followed until it said Succeeded (Creating -> Updating -> Succeeded).
    endpoint_op = [r for r in recorded.requests if "mfeOperationsStatus/oe:" in r.path]
    deployment_op = [r for r in recorded.requests if "mfeOperationsStatus/od:" in r.path]
    assert len(endpoint_op) >= 2 and len(deployment_op) >= 2
    assert recorded.sleeps, "the pollers waited between polls (recorded, not slept)"
    # What was sent: a key-auth endpoint in the workspace's recorded region, then the deployment.
    ep_put = recorded.calls("PUT", f"/onlineEndpoints/{NAME}$")
    assert ep_put[0].json["location"] == "eastus2" and ep_put[0].json["properties"]["authMode"] == "Key"
    dep = recorded.calls("PUT", f"/onlineEndpoints/{NAME}/deployments/")[0].json
    assert dep["properties"]["instanceType"] == "Standard_F4s_v2" and dep["sku"]["capacity"] == 1
    assert dep["properties"]["model"].endswith("/models/test_978172339514/versions/3")
    assert dep["properties"]["codeConfiguration"]["scoringScript"] == "score.py"
    assert ep_put[-1].json["properties"]["traffic"] == {out["deployment_name"]: 100}
    # The code went up with the datastore's listSecrets key, never the caller's Entra token.
    blob_puts = recorded.calls("PUT", f"/{CONTAINER}/mldeploy/code/{NAME}/")
    assert blob_puts and all(r.headers["Authorization"].startswith("SharedKey sagh4dshas62md4:") for r in blob_puts)
    assert recorded.calls("POST", "/datastores/workspaceblobstore/listSecrets")
    # Progress lines say what is being waited for.
    assert any("waiting while Azure answers Creating" in m for m in lines)
    assert any("waiting while it is Updating" in m for m in lines)


def test_delete_waits_for_the_recorded_delete_operation(recorded, cred) -> None:  # type: ignore[no-untyped-def]
    # The recording stops while the delete is still Updating; the final Succeeded is derived (derived.json).
    recorded.on("GET", r".*/mfeOperationsStatus/oe:ee8c8c7b-8359-4874-b140-2a13f80fdccd:19e5444d-37a8-4644-8559-2ef491966e59",
                answer(pick(ONLINE, "GET", "19e5444d")), derived("ml_operation_succeeded"))
    OnlineDeployer(TARGET, cred, recorded.transport()).delete(NAME)
    assert recorded.calls("DELETE", f"/onlineEndpoints/{NAME}$")
    assert len(recorded.calls("GET", "mfeOperationsStatus/oe:ee8c8c7b-8359-4874-b140-2a13f80fdccd:19e5444d")) == 2


def test_an_endpoint_name_azure_ml_rejects_fails_before_any_request(azure, cred, source) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError) as err:
        OnlineDeployer(TARGET, cred, azure.transport()).deploy(spec(source, endpoint="9-iris"))
    assert err.value.field == "service_name" and "starting with a letter" in err.value.message
    assert azure.requests == []


def test_a_just_deleted_name_is_waited_for(recorded, cred, source) -> None:  # type: ignore[no-untyped-def]
    """Right after a delete, the name's PUT answers 404 (derived from public reports) before the recorded 201."""
    created = pick(ONLINE, "PUT", "/onlineEndpoints/online-endp4e07306aec3d482?")
    recorded.on("PUT", EP, derived("ml_endpoint_name_not_released"), answer(created))
    waits: list[float] = []
    lines: list[str] = []
    out = OnlineDeployer(TARGET, cred, recorded.transport(), sleep=waits.append).deploy(spec(source), lines.append)
    assert out["scoring_uri"].endswith(".inference.ml.azure.com/score") and waits == [5.0]
    assert any("has not released this endpoint name" in m for m in lines)


def test_a_name_taken_in_the_region_names_the_input(recorded, cred, source) -> None:  # type: ignore[no-untyped-def]
    recorded.on("PUT", EP, derived("ml_endpoint_name_taken"))
    with pytest.raises(ValidationError) as err:
        OnlineDeployer(TARGET, cred, recorded.transport(), sleep=lambda s: None).deploy(spec(source))
    assert err.value.field == "service_name" and "unique per region" in err.value.message
    assert len(recorded.calls("PUT", f"/onlineEndpoints/{NAME}$")) == 1, "not retried"
