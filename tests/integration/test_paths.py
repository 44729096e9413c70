"""Containment of user paths through the real engine: `pulumi preview` fails naming the input and the
offending path, and nothing is created (no MLflow version, no stored file, no stack resource).

Each project here runs with ``MLDEPLOY_ALLOWED_ROOTS`` empty: the project directory is the only root,
exactly as for a user who set nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mldeploy.settings import Settings

from .conftest import DEMO, copy_demo
from .harness import Project

MODEL_PROGRAM = """
import pulumi
from mldeploy.resources.model_version import ModelVersion

mv = ModelVersion("model", model_name={name!r}, path={path!r})
pulumi.export("download", mv.download)
"""


@pytest.fixture
def contained(tmp_path: Path, settings: Settings) -> Iterator[Project]:
    p = Project(tmp_path / "proj", env={**os.environ, "MLDEPLOY_ALLOWED_ROOTS": "", "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true"})
    yield p
    p.cleanup()


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A 0640 file outside the project, standing in for /etc/shadow."""
    d = tmp_path / "outside"
    d.mkdir()
    f = d / "shadow"
    f.write_text("root:$6$not-for-the-registry:19000:0:99999:7:::\n")
    os.chmod(f, 0o640)
    return f


def _versions(settings: Settings, name: str) -> list[str]:
    from mlflow import MlflowClient

    uri = f"sqlite:///{settings.mlflow_dir / 'mlflow.db'}"
    return [v.version for v in MlflowClient(tracking_uri=uri, registry_uri=uri).search_model_versions(f"name = '{name}'")]


def _resources(project: Project) -> list[str]:
    state = json.loads(project.export())
    kinds = [r["type"] for r in state.get("deployment", {}).get("resources") or []]
    return [k for k in kinds if k != "pulumi:pulumi:Stack" and not k.startswith("pulumi:providers:")]


def test_a_symlink_to_a_file_outside_the_project_fails_preview_and_nothing_is_created(
    contained: Project, secret: Path, settings: Settings
) -> None:
    model = contained.dir / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"w" * 100)
    (model / "shadow").symlink_to(secret)
    name = f"it-paths-{uuid.uuid4().hex[:8]}"
    contained.write(MODEL_PROGRAM.format(name=name, path=str(model)))

    res = contained.preview(check=False)
    assert res.returncode != 0
    assert "path" in res.output and f"{model}/shadow" in res.output and str(secret) in res.output, res.output
    res = contained.up(check=False)  # up runs the same check: still nothing registered
    assert res.returncode != 0 and str(secret) in res.output
    assert _versions(settings, name) == []
    assert not (settings.mlflow_dir / "artifacts" / name).exists()
    assert _resources(contained) == []

    # The model path itself a link out of the project: refused the same way.
    shutil.rmtree(model)
    model.symlink_to(secret.parent, target_is_directory=True)
    res = contained.preview(check=False)
    assert res.returncode != 0 and "symlink" in res.output and str(secret.parent) in res.output, res.output


def test_allowed_roots_and_size_guard_from_stack_config(contained: Project, secret: Path, settings: Settings) -> None:
    elsewhere = secret.parent / "model"
    elsewhere.mkdir()
    for i in range(3):
        (elsewhere / f"w{i}.bin").write_bytes(b"w")
    name = f"it-paths-{uuid.uuid4().hex[:8]}"
    contained.write(MODEL_PROGRAM.format(name=name, path=str(elsewhere)))
    res = contained.preview(check=False)
    assert res.returncode != 0 and "outside the project" in res.output and "mldeploy:allowedRoots" in res.output, res.output

    contained.pulumi("config", "set", "--path", "mldeploy:allowedRoots[0]", str(secret.parent))
    contained.preview()  # allowed now

    contained.config("mldeploy:maxTreeFiles", "2")
    res = contained.preview(check=False)
    assert res.returncode != 0 and "more than 2 files" in res.output and "mldeploy:maxTreeFiles" in res.output, res.output
    assert _versions(settings, name) == []


def test_modes_are_kept_in_the_artifact_store(contained: Project, settings: Settings) -> None:
    model = contained.dir / "model"
    model.mkdir()
    (model / "private.bin").write_bytes(b"p")
    os.chmod(model / "private.bin", 0o600)
    (model / "group.bin").write_bytes(b"g")
    os.chmod(model / "group.bin", 0o640)
    name = f"it-paths-{uuid.uuid4().hex[:8]}"
    contained.write(MODEL_PROGRAM.format(name=name, path=str(model)))
    contained.up()
    stored = Path(contained.outputs()["download"].removeprefix("file://"))
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (stored / "model").iterdir()}
    assert modes == {"private.bin": 0o600, "group.bin": 0o640}
    contained.destroy()
    assert _versions(settings, name) == []


def _deployment_program(demo: Path, svc: str) -> str:
    return "\n".join(
        [
            "from mldeploy import InferenceDeployment, ModelVersion, ServicePrincipal",
            f"D = {str(demo)!r}",
            f'mv = ModelVersion("model", model_name="{svc}-iris", path=D + "/model")',
            f'push = ServicePrincipal("push", role="AcrPush", display_name="{svc}-push")',
            f'pull = ServicePrincipal("pull", role="AcrPull", display_name="{svc}-pull")',
            f'InferenceDeployment("svc", service_name="{svc}", inference_config=D + "/inferenceconfig.json",',
            '    deployment_config={"computeType": "local", "port": 19201}, models=[mv], push_identity=push, pull_identity=pull,',
            '    base_image="127.0.0.1:5000/none/base:v1")',
        ]
    ) + "\n"


@pytest.mark.parametrize(
    ("over", "field", "words"),
    [
        ({"sourceDirectory": "../../../../../../../.."}, "sourceDirectory", ["outside the project"]),
        ({"entryScript": "../../../../../../../../../etc/passwd"}, "entryScript", ["'/etc/passwd'", "outside the project"]),
        ({"condaFile": "/etc/passwd"}, "condaFile", ["/etc/passwd", "outside the project"]),
        ({"extraDockerfileSteps": "../../outside/shadow"}, "extraDockerfileSteps", ["outside the project"]),
    ],
)
def test_inference_config_paths_out_of_the_project_fail_preview_fast(
    contained: Project, secret: Path, over: dict[str, str], field: str, words: list[str]
) -> None:
    demo = copy_demo(contained.dir / "demo")
    ic = json.loads((DEMO / "inferenceconfig.json").read_text())
    (demo / "inferenceconfig.json").write_text(json.dumps({**ic, **over}))
    contained.write(_deployment_program(demo, f"paths-{uuid.uuid4().hex[:6]}"))
    started = time.monotonic()
    res = contained.preview(check=False)
    took = time.monotonic() - started
    assert res.returncode != 0
    assert f"inference_config.{field}" in res.output, res.output
    for w in words:
        assert w in res.output, (w, res.output)
    assert took < 60, f"preview took {took:.0f} s"  # nothing outside the project was walked
    assert _resources(contained) == []


def test_a_dockerfile_outside_the_project_fails_preview(contained: Project, secret: Path) -> None:
    ctx = contained.dir / "base"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    contained.write(
        "from mldeploy import BaseImage\n"
        f'BaseImage("img", context={str(ctx)!r}, dockerfile="../../outside/shadow", repository="paths/img", tag="v1")\n'
    )
    res = contained.preview(check=False)
    assert res.returncode != 0 and "dockerfile" in res.output and "outside the project" in res.output, res.output
    assert _resources(contained) == []
