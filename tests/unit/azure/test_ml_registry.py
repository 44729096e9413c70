"""ModelVersion on Azure ML: datastore upload + model version REST, at the HTTP boundary."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from mldeploy.backends.azure.ml_registry import AzureMlModelRegistry
from mldeploy.errors import NotFound, ValidationError
from mldeploy.hashing import tree_digest

from .conftest import RG, SUB, TARGET, WS, WS_ID
from .fakes import arm_error
from .replay import pick

MODELS = WS_ID + "/models/iris"
CRUD = "azure-ai-ml/test_model.pyTestModeltest_crud_file.json"
# The recorded default datastore (azure-ai-ml's test_crud_file): its storage account and container.
BLOB_HOST = "sagh4dshas62md4.blob.core.windows.net"
CONTAINER = "azureml-blobstore-a6d5a3b8-8717-4928-b8f7-4c9f36d21085"


def datastore() -> dict:  # type: ignore[type-arg]
    """The recorded default datastore (AccountKey credentials)."""
    return pick(CRUD, "GET", "/datastores/workspaceblobstore").json  # type: ignore[no-any-return]


def play_datastore(azure) -> None:  # type: ignore[no-untyped-def]
    """The recorded datastore GET and its listSecrets (an account key) answer; the default-datastore query
    (``GET .../datastores?isDefault=true``) answers the recorded datastore in an ARM list."""
    azure.on("GET", WS_ID + "/datastores", (200, {"value": [datastore()]}, {}))
    azure.play(pick(CRUD, "GET", "/datastores/workspaceblobstore"), pick(CRUD, "POST", "/listSecrets"))


def version_body(version: str, digest: str, path: str, description: str = "d", tags: dict | None = None) -> dict:  # type: ignore[type-arg]
    """The recorded model version (test_crud_file's GET) with this test's name, version, metadata and path."""
    recorded = pick(CRUD, "GET", "/models/test_978172339514/versions/3").json
    return {
        **recorded,
        "id": f"{MODELS}/versions/{version}",
        "name": version,
        "systemData": {**recorded["systemData"], "createdAt": "2025-06-01T10:00:00Z"},
        "properties": {
            **recorded["properties"],
            "description": description,
            "tags": tags or {},
            "properties": {"framework": "sklearn", "mldeploy.digest": digest, "mldeploy.size_bytes": "6"},
            "modelType": "custom_model",
            "modelUri": path,
            "flavors": {},
        },
    }


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    (d / "model.pkl").write_bytes(b"abcdef")
    return d


@pytest.fixture
def registry(azure, cred):  # type: ignore[no-untyped-def]
    play_datastore(azure)
    return AzureMlModelRegistry(TARGET, cred, azure.transport())


def _echo_version(req):  # type: ignore[no-untyped-def]
    body = req.json
    body["id"] = req.path
    body["name"] = req.path.rsplit("/", 1)[-1]
    body["systemData"] = {"createdAt": "2025-06-01T10:00:00Z"}
    body["properties"].setdefault("flavors", {})
    return 200, body, {}


def test_create_uploads_content_addressed_and_registers_next_version(registry, azure, model_dir) -> None:  # type: ignore[no-untyped-def]
    digest, _ = tree_digest(model_dir)
    hexd = digest.split(":")[1]
    folder = f"/{CONTAINER}/mldeploy/models/iris/{hexd}"
    azure.on("HEAD", folder + r"\.complete", (404, b"", {"x-ms-error-code": "BlobNotFound"}), host=BLOB_HOST)
    azure.on("PUT", folder + r"(/.*|\.complete)", (201, b"", {"ETag": '"0x1"', "Content-MD5": ""}), host=BLOB_HOST)
    azure.on("GET", MODELS + "/versions", (200, {"value": [version_body("1", "sha256:" + "0" * 64, "x"), version_body("2", "sha256:" + "1" * 64, "y")]}, {}))
    azure.on("PUT", MODELS + "/versions/3", _echo_version)

    m = registry.create("iris", str(model_dir), digest, "d", {"stage": "dev"}, {"framework": "sklearn"})

    assert (m.name, m.version, m.model_uri, m.digest, m.size_bytes) == ("iris", 3, "azureml:iris:3", digest, 6)
    assert m.tags == {"stage": "dev"} and m.properties == {"framework": "sklearn"}
    blob = azure.calls("PUT", folder + "/model/model.pkl")[0]  # the folder keeps its name, as Azure ML stores it
    assert blob.body == b"abcdef" and blob.headers["x-ms-blob-type"] == "BlockBlob"
    assert azure.calls("PUT", folder + r"\.complete")[0].body == b"6"
    put = azure.calls("PUT", MODELS + "/versions/3")[0]
    assert put.api_version
    props = put.json["properties"]
    assert props["modelType"] == "custom_model"
    assert props["modelUri"].endswith(f"/datastores/workspaceblobstore/paths/mldeploy/models/iris/{hexd}/model")
    assert props["properties"] == {"framework": "sklearn", "mldeploy.digest": digest, "mldeploy.size_bytes": "6"}
    assert props["tags"] == {"stage": "dev"} and props["description"] == "d"
    assert m.download == props["modelUri"]


def test_same_content_is_not_uploaded_again(registry, azure, model_dir) -> None:  # type: ignore[no-untyped-def]
    digest, _ = tree_digest(model_dir)
    hexd = digest.split(":")[1]
    azure.on("HEAD", f"/{CONTAINER}/mldeploy/models/iris/{hexd}.complete", (200, b"", {"Content-Length": "1", "x-ms-blob-type": "BlockBlob"}), host=BLOB_HOST)
    azure.on("GET", f"/{CONTAINER}/mldeploy/models/iris/{hexd}.complete", (200, b"6", {"x-ms-blob-type": "BlockBlob", "Content-Range": "bytes 0-0/1"}), host=BLOB_HOST)
    azure.on("GET", MODELS + "/versions", arm_error(404, "UserError", "Could not find asset with name iris"))
    azure.on("PUT", MODELS + "/versions/1", _echo_version)
    m = registry.create("iris", str(model_dir), digest, "", {}, {})
    assert m.version == 1 and m.size_bytes == 6
    assert azure.calls("PUT", CONTAINER) == []


def test_changed_files_fail_and_leave_nothing(registry, azure, model_dir) -> None:  # type: ignore[no-untyped-def]
    stale = "sha256:" + hashlib.sha256(b"other").hexdigest()
    folder = f"/{CONTAINER}/mldeploy/models/iris/{stale.split(':')[1]}"
    azure.on("HEAD", folder + r"\.complete", (404, b"", {"x-ms-error-code": "BlobNotFound"}), host=BLOB_HOST)
    azure.on("PUT", folder + "/.*", (201, b"", {"ETag": '"0x1"'}), host=BLOB_HOST)
    listing = f'<?xml version="1.0" encoding="utf-8"?><EnumerationResults><Blobs><Blob><Name>mldeploy/models/iris/{stale[7:]}/model.pkl</Name><Properties><BlobType>BlockBlob</BlobType><Content-Length>6</Content-Length></Properties></Blob></Blobs><NextMarker /></EnumerationResults>'
    azure.on("GET", f"/{CONTAINER}", (200, listing, {"Content-Type": "application/xml"}), host=BLOB_HOST)
    azure.on("DELETE", folder + "/model.pkl", (202, b"", {}), host=BLOB_HOST)
    with pytest.raises(ValidationError) as err:
        registry.create("iris", str(model_dir), stale, "", {}, {})
    assert err.value.field == "path" and "changed while being uploaded" in err.value.message
    assert azure.calls("PUT", "/versions/") == [], "nothing registered"
    assert len(azure.calls("DELETE", folder + "/model.pkl")) == 1


def test_get_and_404_after_out_of_band_delete(registry, azure) -> None:  # type: ignore[no-untyped-def]
    azure.on("GET", MODELS + "/versions/3", (200, version_body("3", "sha256:" + "a" * 64, "azureml://x/"), {}), arm_error(404, "UserError", "Could not find asset with name iris and version 3"))
    m = registry.get("iris", 3)
    assert (m.version, m.digest, m.size_bytes, m.properties) == (3, "sha256:" + "a" * 64, 6, {"framework": "sklearn"})
    assert m.created_at.startswith("2025-06-01T10:00:00")
    with pytest.raises(NotFound):
        registry.get("iris", 3)


def test_update_puts_description_and_tags_only(registry, azure) -> None:  # type: ignore[no-untyped-def]
    digest = "sha256:" + "a" * 64
    azure.on("GET", MODELS + "/versions/3", (200, version_body("3", digest, "azureml://x/", tags={"old": "1"}), {}))
    azure.on("GET", MODELS + "/versions", (200, {"value": [version_body("3", digest, "azureml://x/")]}, {}))
    azure.on("PUT", MODELS + "/versions/3", _echo_version)
    m = registry.update("iris", 3, "new", {"stage": "prod"})
    body = azure.calls("PUT", MODELS + "/versions/3")[0].json["properties"]
    assert body["description"] == "new" and body["tags"] == {"stage": "prod"}
    assert body["properties"]["mldeploy.digest"] == digest and body["modelUri"] == "azureml://x/"
    assert m.tags == {"stage": "prod"}


def test_update_conflict_is_a_backend_error(registry, azure) -> None:  # type: ignore[no-untyped-def]
    from mldeploy.errors import BackendError

    azure.on("GET", MODELS + "/versions", (200, {"value": []}, {}))
    azure.on("GET", MODELS + "/versions/3", (200, version_body("3", "sha256:" + "a" * 64, "azureml://x/"), {}))
    azure.on("PUT", MODELS + "/versions/3", arm_error(409, "Conflict", "Model version properties are immutable"))
    with pytest.raises(BackendError, match="409"):
        registry.update("iris", 3, "new", {})


def test_delete_removes_version_and_unshared_blobs(registry, azure) -> None:  # type: ignore[no-untyped-def]
    digest = "sha256:" + "a" * 64
    azure.on("GET", MODELS + "/versions/3", (200, version_body("3", digest, "azureml://x/"), {}))
    azure.on("DELETE", MODELS + "/versions/3", (200, b"", {}))
    azure.on("GET", MODELS + "/versions", (200, {"value": [version_body("2", "sha256:" + "b" * 64, "y")]}, {}))
    folder = f"/{CONTAINER}/mldeploy/models/iris/{'a' * 64}"
    listing = f'<?xml version="1.0" encoding="utf-8"?><EnumerationResults><Blobs><Blob><Name>mldeploy/models/iris/{"a" * 64}/model.pkl</Name><Properties><BlobType>BlockBlob</BlobType><Content-Length>6</Content-Length></Properties></Blob></Blobs><NextMarker /></EnumerationResults>'
    azure.on("GET", f"/{CONTAINER}", (200, listing, {"Content-Type": "application/xml"}), host=BLOB_HOST)
    azure.on("DELETE", folder + "/model.pkl", (202, b"", {}), host=BLOB_HOST)
    azure.on("HEAD", folder + r"\.complete", (200, b"", {"Content-Length": "1"}), host=BLOB_HOST)
    azure.on("DELETE", folder + r"\.complete", (202, b"", {}), host=BLOB_HOST)
    registry.delete("iris", 3)
    d = azure.calls("DELETE", MODELS + "/versions/3")[0]
    assert d.api_version and d.path == f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.MachineLearningServices/workspaces/{WS}/models/iris/versions/3"
    assert azure.calls("GET", CONTAINER)[0].query["prefix"] == [f"mldeploy/models/iris/{'a' * 64}/"]
    assert len(azure.calls("DELETE", folder)) == 2


def test_delete_keeps_blobs_shared_with_another_version_and_tolerates_missing(registry, azure) -> None:  # type: ignore[no-untyped-def]
    digest = "sha256:" + "a" * 64
    azure.on("GET", MODELS + "/versions/3", (200, version_body("3", digest, "azureml://x/"), {}), arm_error(404, "UserError", "not found"))
    azure.on("DELETE", MODELS + "/versions/3", (200, b"", {}))
    azure.on("GET", MODELS + "/versions", (200, {"value": [version_body("2", digest, "y")]}, {}))
    registry.delete("iris", 3)
    assert [r for r in azure.requests if BLOB_HOST in r.url] == []
    registry.delete("iris", 3)  # gone: not an error
    assert len(azure.calls("DELETE")) == 1


def test_name_validation_needs_no_io(cred) -> None:  # type: ignore[no-untyped-def]
    reg = AzureMlModelRegistry(TARGET, cred, transport=None)
    with pytest.raises(ValidationError):
        reg.validate_name("bad/name")
    assert cred.scopes == []
