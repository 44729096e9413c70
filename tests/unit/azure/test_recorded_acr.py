"""Remote builds (BaseImage build_on) against recorded answers: the runs API's examples (azure-rest-api-specs,
2019-06-01-preview, the version the backend uses), azure-cli's ABAC quick build recording, and the
TasksOperationsNotAllowed refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
from mldeploy.backends.azure.acr import AcrBuilder
from mldeploy.errors import BuildError

from .conftest import ACR, ACR_ID, SUB, TARGET, rebase
from .replay import derived, example, pick
from .test_acr import log_blob

SPECS = "azure-rest-api-specs/"
ABAC = "azure-cli/test_acr_abac_build.excerpt.yaml"
UPLOAD_HOST = "registrystorageaccount.blob.core.windows.net"  # from the examples' uploadUrl and logLink
RUN_ID = "0accec26-d6de-4757-8e74-d080f38eaaab"
LOG = b"2018/01/25 05:50:52 Downloading source code...\n2018/01/25 05:51:02 Successfully pushed image: myregistry.azurecr.io/myimage:latest\n"


@pytest.fixture
def context(tmp_path: Path) -> Path:
    (tmp_path / "Dockerfile").write_text("FROM debian:bookworm\nARG PY=3.11\nRUN echo hi\n")
    (tmp_path / "app.py").write_text("print(1)\n")
    return tmp_path


def _runs_api(azure, run_id: str = RUN_ID) -> None:  # type: ignore[no-untyped-def]
    azure.on("POST", ACR_ID + "/listBuildSourceUploadUrl", example(SPECS + "RegistriesGetBuildSourceUploadUrl.json"))
    azure.on("PUT", "/registrycontainer/source/.*", derived("blob_put_created"), host=UPLOAD_HOST)
    azure.on("GET", ACR_ID + f"/runs/{run_id}", example(SPECS + "RunsGet.json"))
    azure.on("POST", ACR_ID + f"/runs/{run_id}/listLogSasUrl", example(SPECS + "RunsGetLogSasUrl.json"))
    azure.on("GET", f"/sascontainer/logs/{RUN_ID}/rawtext.log", log_blob(LOG, len(LOG)), host=UPLOAD_HOST)


def test_schedule_run_answers_the_run_with_a_plain_200(azure, cred, context) -> None:  # type: ignore[no-untyped-def]
    _runs_api(azure)
    azure.on("POST", ACR_ID + "/scheduleRun", example(SPECS + "RegistriesScheduleRun.json"))
    lines: list[str] = []
    run = AcrBuilder(TARGET, cred, azure.transport(), poll_interval=0).remote_build(str(context), None, "demo/base", ["v1"], {"PY": "3.11"}, log=lines.append)

    # What the resource outputs: the run id and the digest the run reported (the examples' values).
    assert run.run_id == RUN_ID and run.status == "Succeeded"
    assert run.digest == "sha256:cbbf2f9a99b47fc460d422812b6a5adff7dfee951d8fa2e4a98caa0"
    assert run.duration_seconds == 23 * 60  # startTime 05:50:51.618 -> finishTime 06:13:51.618
    assert "Successfully pushed image" in run.log_tail and any("Downloading source code" in m for m in lines)
    # What was sent: one scheduleRun (no operation to poll), a DockerBuildRequest on the uploaded source.
    sched = azure.calls("POST", "/scheduleRun")
    assert len(sched) == 1 and sched[0].api_version == "2019-06-01-preview"
    body = sched[0].json
    assert body["type"] == "DockerBuildRequest" and body["sourceLocation"] == "source/201802130000/b52f12d8-c3d6-4d75-9107-220f0bfc681d.tar.gz"
    assert body["imageNames"] == ["demo/base:v1"] and body["isPushEnabled"] is True and body["dockerFilePath"] == "Dockerfile"
    assert body["platform"] == {"os": "Linux", "architecture": "amd64"}
    assert body["arguments"] == [{"name": "PY", "value": "3.11", "isSecret": False}]
    assert "credentials" not in body
    assert azure.calls("GET", "operationStatuses") == []


def test_abac_registry_schedules_the_quick_build_as_the_caller(azure, cred, context) -> None:  # type: ignore[no-untyped-def]
    abac = pick(ABAC, "GET", "/registries/clireg000002")
    azure.on("GET", ACR_ID, (200, rebase(abac.json, (abac.json["id"], ACR_ID), ("clireg000002", ACR)), {}))
    azure.play(pick(ABAC, "POST", "/scheduleRun"))  # 200: run cf1 Queued
    _runs_api(azure, run_id="cf1")
    lines: list[str] = []
    run = AcrBuilder(TARGET, cred, azure.transport(), poll_interval=0).remote_build(str(context), None, "demo/base", ["v1"], {}, log=lines.append)

    assert run.run_id == "cf1"
    sched = azure.calls("POST", "/scheduleRun")
    assert len(sched) == 1 and sched[0].api_version == "2025-03-01-preview"
    sent, az_cli = sched[0].json, pick(ABAC, "POST", "/scheduleRun").request_body
    import json

    recorded = json.loads(az_cli)
    assert sent["credentials"] == recorded["credentials"] == {"sourceRegistry": {"identity": "[caller]"}}
    assert sent["type"] == recorded["type"] == "DockerBuildRequest"
    assert set(recorded) - {"sourceLocation"} <= set(sent), "every field az acr build sends"
    assert any("ABAC" in m and "Container Registry Repository Writer" in m for m in lines)


def test_tasks_not_allowed_says_to_build_locally(azure, cred, context) -> None:  # type: ignore[no-untyped-def]
    _runs_api(azure)
    azure.on("POST", ACR_ID + "/scheduleRun", derived("acr_tasks_not_allowed", registry=ACR, subscription_id=SUB))
    with pytest.raises(BuildError) as err:
        AcrBuilder(TARGET, cred, azure.transport(), poll_interval=0).remote_build(str(context), None, "demo/base", ["v1"], {})
    msg = str(err.value)
    assert "TasksOperationsNotAllowed" in msg and "Build locally and push" in msg and "build_on" in msg
    assert len(azure.calls("POST", "/scheduleRun")) == 1, "a refusal is not retried"


def test_preview_reports_an_abac_registry(azure, cred) -> None:  # type: ignore[no-untyped-def]
    from mldeploy.backends.azure.workspace import preflight_registry

    abac = pick(ABAC, "GET", "/registries/clireg000002").json
    azure.on("GET", ACR_ID, (200, rebase(abac, (abac["id"], ACR_ID), ("clireg000002", ACR)), {}))
    lines: list[str] = []
    info = preflight_registry(TARGET, lines.append, cred, azure.transport())
    assert info.abac and info.login_server == f"{ACR}.azurecr.io"
    assert len(lines) == 1 and "Container Registry Repository Writer" in lines[0]
    assert [r.method for r in azure.requests] == ["GET", "GET"], "preview only reads (workspace, registry)"


def test_preview_of_a_legacy_registry_says_nothing(azure, cred) -> None:  # type: ignore[no-untyped-def]
    from mldeploy.backends.azure.workspace import preflight_registry

    lines: list[str] = []
    assert not preflight_registry(TARGET, lines.append, cred, azure.transport()).abac and lines == []
