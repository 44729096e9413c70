"""ModelVersion against Azure's recorded answers: datastore listSecrets + keyed/SAS upload, version create,
and a listing with an archived version (azure-ai-ml's test_crud_file and test_model_archive_restore_version)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mldeploy.backends.azure.ml_registry import AzureMlModelRegistry
from mldeploy.errors import AuthError
from mldeploy.hashing import tree_digest

from .conftest import TARGET, WS_ID
from .replay import derived, pick
from .test_ml_registry import BLOB_HOST, CONTAINER, datastore

CRUD = "azure-ai-ml/test_model.pyTestModeltest_crud_file.json"
ARCHIVE = "azure-ai-ml/test_model.pyTestModeltest_model_archive_restore_version.excerpt.json"
NAME = "model_test_938030610549"  # the recorded model: version 1 archived, version 2 active
VERSIONS = WS_ID + f"/models/{NAME}/versions"


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    (d / "model.pkl").write_bytes(b"abcdef")
    return d


@pytest.fixture
def recorded(azure):  # type: ignore[no-untyped-def]
    azure.on("GET", WS_ID + "/datastores", (200, {"value": [datastore()]}, {}))
    azure.play(pick(CRUD, "GET", "/datastores/workspaceblobstore"), pick(CRUD, "HEAD", "/az-ml-artifacts/", status=404))
    azure.on("PUT", f"/{CONTAINER}/mldeploy/models/.*", derived("blob_put_created"), host=BLOB_HOST)
    # listViewType=All: the recorded active version 2 and the recorded archived version 1 (as GET answers it),
    # in one ARM list. ActiveOnly (what azure-ai-ml lists by default) is recorded with version 2 only.
    active = pick(ARCHIVE, "GET", "/versions?").json["value"]
    archived = pick(ARCHIVE, "GET", "/versions/1").json
    azure.on("GET", VERSIONS, lambda r: (200, {"value": active + ([archived] if r.query.get("listViewType") == ["All"] else [])}, {}))
    # The PUT answers the recorded version body with what was sent (ARM echoes a created version; Azure adds flavors {}).
    azure.on("PUT", VERSIONS + "/([0-9]+)", lambda r: (201, {**archived, "id": r.path, "name": r.path.rsplit("/", 1)[-1],
                                                        "properties": {**archived["properties"], **r.json["properties"], "isArchived": False}}, {}))
    return azure


def test_create_numbers_past_archived_versions_and_uploads_with_the_listsecrets_key(recorded, cred, model_dir) -> None:  # type: ignore[no-untyped-def]
    recorded.play(pick(CRUD, "POST", "/listSecrets"))
    digest, _ = tree_digest(model_dir)
    m = AzureMlModelRegistry(TARGET, cred, recorded.transport()).create(NAME, str(model_dir), digest, "d", {}, {})

    assert (m.version, m.model_uri) == (3, f"azureml:{NAME}:3")
    listing = recorded.calls("GET", f"/models/{NAME}/versions$")
    assert listing[0].query["listViewType"] == ["All"], "mldeploy numbers versions from a listing with the archived ones"
    blob = recorded.calls("PUT", f"/{CONTAINER}/mldeploy/models/{NAME}/{digest[7:]}/model/model.pkl")[0]  # the folder keeps its name, as Azure ML stores it
    assert blob.body == b"abcdef"
    assert blob.headers["Authorization"].startswith("SharedKey sagh4dshas62md4:"), "signed with the recorded account key"
    put = recorded.calls("PUT", VERSIONS + "/3")[0].json["properties"]
    assert put["modelUri"].endswith(f"/datastores/workspaceblobstore/paths/mldeploy/models/{NAME}/{digest[7:]}/model") and put["modelType"] == "custom_model"


def test_archived_highest_version_is_not_reused(recorded, cred, model_dir) -> None:  # type: ignore[no-untyped-def]
    """Version 2 archived too (the recorded archived body, renamed): ActiveOnly would list nothing and pick 1."""
    recorded.play(pick(CRUD, "POST", "/listSecrets"))
    archived = pick(ARCHIVE, "GET", "/versions/1").json
    two = {**archived, "id": archived["id"][:-1] + "2", "name": "2"}
    recorded.on("GET", VERSIONS, lambda r: (200, {"value": [two, archived] if r.query.get("listViewType") == ["All"] else []}, {}))
    digest, _ = tree_digest(model_dir)
    m = AzureMlModelRegistry(TARGET, cred, recorded.transport()).create(NAME, str(model_dir), digest, "", {}, {})
    assert m.version == 3


def test_sas_from_listsecrets_authorizes_the_upload(recorded, cred, model_dir) -> None:  # type: ignore[no-untyped-def]
    recorded.on("POST", WS_ID + "/datastores/workspaceblobstore/listSecrets", derived("datastore_list_secrets_sas"))
    digest, _ = tree_digest(model_dir)
    AzureMlModelRegistry(TARGET, cred, recorded.transport()).create(NAME, str(model_dir), digest, "", {}, {})
    blob = recorded.calls("PUT", f"/{CONTAINER}/mldeploy/models/{NAME}/")[0]
    assert blob.query["sig"] == ["fake"] and "Authorization" not in blob.headers


def test_storage_403_names_the_missing_data_role(recorded, cred, model_dir) -> None:  # type: ignore[no-untyped-def]
    """listSecrets refused (a caller without the listsecrets action): uploads fall back to the Entra token,
    which the storage account refuses without a data role; the error names it."""
    refused = (403, {"error": {"code": "AuthorizationFailed", "message": "The client does not have authorization to perform action "
                               "'Microsoft.MachineLearningServices/workspaces/datastores/listsecrets/action'"}}, {})
    recorded.on("POST", WS_ID + "/datastores/workspaceblobstore/listSecrets", refused)
    recorded.on("PUT", f"/{CONTAINER}/mldeploy/models/.*", derived("blob_authorization_permission_mismatch"), host=BLOB_HOST)
    digest, _ = tree_digest(model_dir)
    with pytest.raises(AuthError) as err:
        AzureMlModelRegistry(TARGET, cred, recorded.transport()).create(NAME, str(model_dir), digest, "", {}, {})
    assert "Storage Blob Data Contributor" in str(err.value) and "AuthorizationPermissionMismatch" in str(err.value)
    assert recorded.calls("PUT", "/versions/") == [], "nothing registered"
