"""Remote builds on ACR (``az acr build``) and the token-authenticated registry API, at the HTTP boundary."""

from __future__ import annotations

import gzip
import io
import re
import tarfile
from pathlib import Path

import pytest
from mldeploy.backends.azure.acr import AcrBuilder, AcrImageRegistry
from mldeploy.errors import AuthError, BuildError, NotFound

from .conftest import ACR_ID, LOGIN, TARGET

UPLOAD_HOST = "acrbuildsrc.blob.core.windows.net"
LOG_HOST = "acrlogs.blob.core.windows.net"
DIGEST = "sha256:" + "c" * 64


def run_body(status: str, digest: str | None = None, error: str | None = None) -> dict:  # type: ignore[type-arg]
    props = {
        "runId": "ca1",
        "status": status,
        "runType": "QuickBuild",
        "createTime": "2025-06-01T10:00:00Z",
        "startTime": "2025-06-01T10:00:05Z",
        "provisioningState": "Succeeded",
        "platform": {"os": "linux", "architecture": "amd64"},
    }
    if status in ("Succeeded", "Failed"):
        props["finishTime"] = "2025-06-01T10:01:17Z"
    if digest:
        props["outputImages"] = [{"registry": LOGIN, "repository": "demo/base", "tag": "v1", "digest": digest}]
    if error:
        props["runErrorMessage"] = error
    return {"id": ACR_ID + "/runs/ca1", "name": "ca1", "type": "Microsoft.ContainerRegistry/registries/runs", "properties": props}


def log_blob(text: bytes, grow_at: int):  # type: ignore[no-untyped-def]
    """The run's log as an append blob that grows: the first read sees ``grow_at`` bytes."""
    state = {"reads": 0}

    def answer(req):  # type: ignore[no-untyped-def]
        state["reads"] += 1
        visible = text[:grow_at] if state["reads"] == 1 else text
        rng = req.headers.get("x-ms-range") or req.headers.get("Range") or "bytes=0-"
        start = int(re.match(r"bytes=(\d+)-", rng).group(1))  # type: ignore[union-attr]
        if start >= len(visible):
            return 416, b"", {"x-ms-error-code": "InvalidRange"}
        chunk = visible[start:]
        return 206, chunk, {
            "Content-Range": f"bytes {start}-{len(visible) - 1}/{len(visible)}",
            "x-ms-blob-type": "AppendBlob",
            "Content-Type": "text/plain",
        }

    return answer


@pytest.fixture
def context(tmp_path: Path) -> Path:
    (tmp_path / "Dockerfile").write_text("FROM debian:bookworm\nARG PY=3.11\nRUN echo hi\n")
    (tmp_path / "app.py").write_text("print(1)\n")
    (tmp_path / "secret.env").write_text("X=1\n")
    (tmp_path / ".dockerignore").write_text("secret.env\n")
    return tmp_path


def _routes(azure, final_run):  # type: ignore[no-untyped-def]
    azure.on("POST", ACR_ID + "/listBuildSourceUploadUrl", (200, {"uploadUrl": f"https://{UPLOAD_HOST}/source/202506/ctx.tar.gz?sv=2024&sig=x", "relativePath": "source/202506/ctx.tar.gz"}, {}))
    azure.on("PUT", "/source/202506/ctx.tar.gz", (201, b"", {"ETag": '"1"'}), host=UPLOAD_HOST)
    # On the runs API version scheduleRun answers a plain 200 with the queued Run (recorded in
    # recordings/azure-cli/test_acr_abac_build; see test_recorded_acr), not an operation to poll.
    azure.on("POST", ACR_ID + "/scheduleRun", (200, run_body("Queued"), {}))
    azure.on("GET", ACR_ID + "/runs/ca1", (200, run_body("Queued"), {}), (200, run_body("Running"), {}), (200, final_run, {}))
    azure.on("POST", ACR_ID + "/runs/ca1/listLogSasUrl", (200, {"logLink": f"https://{LOG_HOST}/logs/ca1/rawtext.log?sv=2024&sig=y"}, {}))


def test_remote_build_uploads_context_schedules_run_and_streams_log(azure, cred, context) -> None:  # type: ignore[no-untyped-def]
    _routes(azure, run_body("Succeeded", DIGEST))
    text = b"Step 1/3 : FROM debian:bookworm\nStep 2/3 : ARG PY=3.11\nStep 3/3 : RUN echo hi\nhi\nRun ID: ca1 was successful after 1m12s\n"
    azure.on("GET", "/logs/ca1/rawtext.log", log_blob(text, grow_at=40), host=LOG_HOST)
    lines: list[str] = []

    result = AcrBuilder(TARGET, cred, azure.transport(), poll_interval=0).remote_build(
        str(context), "Dockerfile", "demo/base", ["v1", "ctx-abc"], {"PY": "3.11"}, log=lines.append
    )

    assert (result.run_id, result.status, result.digest, result.duration_seconds) == ("ca1", "Succeeded", DIGEST, 72.0)
    assert result.image_names == ("demo/base:v1", "demo/base:ctx-abc")
    assert lines[0] == f"run ca1 scheduled on {LOGIN}"
    assert lines[1:] == text.decode().splitlines(), "every log line once, in order, across growing reads"
    # the uploaded context honours .dockerignore
    up = azure.calls("PUT", "/source/")[0]
    assert up.headers["x-ms-blob-type"] == "BlockBlob"
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(up.body))) as tar:
        names = tar.getnames()
    assert sorted(names) == [".dockerignore", "Dockerfile", "app.py"]
    body = azure.calls("POST", "/scheduleRun")[0]
    assert body.api_version == "2019-06-01-preview"
    req = body.json
    assert req["type"] == "DockerBuildRequest" and req["sourceLocation"] == "source/202506/ctx.tar.gz"
    assert req["imageNames"] == ["demo/base:v1", "demo/base:ctx-abc"] and req["isPushEnabled"] is True
    assert req["dockerFilePath"] == "Dockerfile" and req["arguments"] == [{"name": "PY", "value": "3.11", "isSecret": False}]
    assert req["platform"] == {"os": "Linux", "architecture": "amd64"}
    assert len(azure.calls("POST", "/scheduleRun")) == 1 and azure.calls("GET", "operationStatuses") == [], "a plain 200: nothing to poll"


def test_failed_run_raises_build_error_with_log_tail(azure, cred, context) -> None:  # type: ignore[no-untyped-def]
    _routes(azure, run_body("Failed", error="failed to build: exit status 1"))
    azure.on("GET", "/logs/ca1/rawtext.log", log_blob(b"Step 3/3 : RUN false\nThe command returned a non-zero code: 1\n", 10**6), host=LOG_HOST)
    with pytest.raises(BuildError) as err:
        AcrBuilder(TARGET, cred, azure.transport(), poll_interval=0).remote_build(str(context), None, "demo/base", ["v1"], {})
    assert "ended Failed: failed to build" in str(err.value) and "non-zero code: 1" in err.value.log_tail


def test_throttled_schedule_is_retried(azure, cred, context) -> None:  # type: ignore[no-untyped-def]
    _routes(azure, run_body("Succeeded", DIGEST))
    azure.on("GET", "/logs/ca1/rawtext.log", (404, b"", {"x-ms-error-code": "BlobNotFound"}), host=LOG_HOST)
    azure.on(
        "POST",
        ACR_ID + "/scheduleRun",
        (429, {"error": {"code": "TooManyRequests", "message": "throttled"}}, {"Retry-After": "1"}),
        (200, run_body("Queued"), {}),
    )
    result = AcrBuilder(TARGET, cred, azure.transport(), poll_interval=0).remote_build(str(context), None, "demo/base", ["v1"], {})
    assert result.digest == DIGEST and len(azure.calls("POST", "/scheduleRun")) == 2


def _token_routes(azure):  # type: ignore[no-untyped-def]
    azure.on("POST", "/oauth2/exchange", (200, {"refresh_token": "rt"}, {}), host=LOGIN)
    azure.on("POST", "/oauth2/token", (200, {"access_token": "at"}, {}), host=LOGIN)


def test_registry_api_with_entra_token(azure, cred) -> None:  # type: ignore[no-untyped-def]
    _token_routes(azure)
    azure.on("HEAD", "/v2/demo/base/manifests/v1", (200, b"", {"Docker-Content-Digest": DIGEST}), host=LOGIN)
    azure.on("DELETE", f"/v2/demo/base/manifests/{DIGEST}", (202, b"", {}), (404, {"errors": [{"code": "MANIFEST_UNKNOWN"}]}, {}), host=LOGIN)
    reg = AcrImageRegistry(LOGIN, cred, azure.transport())
    assert reg.manifest_digest("demo/base", "v1") == DIGEST
    ex = azure.calls("POST", "/oauth2/exchange")[0].body.decode()
    assert "grant_type=access_token" in ex and f"service={LOGIN}" in ex and "access_token=fake-token" in ex
    assert "scope=repository%3Ademo%2Fbase%3Apull" in azure.calls("POST", "/oauth2/token")[0].body.decode()
    assert azure.calls("HEAD")[0].headers["Authorization"] == "Bearer at"
    reg.delete_manifest("demo/base", DIGEST)
    with pytest.raises(NotFound):
        reg.delete_manifest("demo/base", DIGEST)


def test_registry_refusal_is_auth_error(azure, cred) -> None:  # type: ignore[no-untyped-def]
    azure.on("POST", "/oauth2/exchange", (401, {"errors": [{"code": "UNAUTHORIZED"}]}, {}), host=LOGIN)
    with pytest.raises(AuthError):
        AcrImageRegistry(LOGIN, cred, azure.transport()).manifest_digest("demo/base", "v1")
