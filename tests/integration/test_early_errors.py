"""Clear, early errors through the real engine: a locked MLflow database; a Dockerfile typo, a Python outside the requirements on a fresh stack."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from mldeploy.settings import Settings

from .conftest import DEMO
from .harness import Project


def _hold_lock(db: Path, seconds: float) -> subprocess.Popen[str]:
    code = (
        f"import sqlite3, time; c = sqlite3.connect({str(db)!r}, isolation_level=None); c.execute('BEGIN EXCLUSIVE');"
        f" print('locked', flush=True); time.sleep({seconds}); c.execute('COMMIT')"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


@pytest.fixture
def private_home(tmp_path: Path, project: Project) -> Path:
    """An MLDEPLOY_HOME of the test's own: its MLflow database is locked here, never the shared one."""
    home = tmp_path / "home"
    home.mkdir()
    project.env["MLDEPLOY_HOME"] = str(home)
    return home


MODEL_PROGRAM = """
import pulumi
from mldeploy import ModelVersion
mv = ModelVersion("m", model_name="locked-model", path={path!r})
pulumi.export("version", mv.version)
"""


def test_a_locked_mlflow_database_is_waited_for_then_named_with_its_holder(project: Project, private_home: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "w.txt").write_text("1")
    project.write(MODEL_PROGRAM.format(path=str(model)))
    project.up()
    db = private_home / "mlflow" / "mlflow.db"
    assert db.exists()

    # Held 20 s, then released: up waits and succeeds.
    (model / "w.txt").write_text("2")
    holder = _hold_lock(db, 20)
    start = time.monotonic()
    project.up()
    waited = time.monotonic() - start
    holder.wait()
    print(f"\nup with the MLflow database locked for 20 s: succeeded after {waited:.1f} s")
    assert waited >= 15 and project.outputs()["version"] == 2

    # Held longer than the busy timeout: one line naming the database and the holder, no traceback.
    (model / "w.txt").write_text("3")
    project.env["MLDEPLOY_SQLITE_BUSY_TIMEOUT"] = "3"
    holder = _hold_lock(db, 30)
    try:
        res = project.up(check=False)
    finally:
        holder.kill()
        holder.wait()
    assert res.returncode != 0
    assert f"{db} stayed locked by pid {holder.pid}" in res.output, res.output[-3000:]
    assert "Traceback" not in res.output and "[SQL:" not in res.output


BASE_PROGRAM = """
import pulumi
from mldeploy import BaseImage, ModelVersion, ServicePrincipal
push = ServicePrincipal("push", role="AcrPush", display_name="early-push")
mv = ModelVersion("m", model_name="early-model", path={model!r})
base = BaseImage("base", context={context!r}, repository="pytest/early-{suffix}", tag="v1", service_principal=push)
pulumi.export("ref", base.image_ref)
"""


def test_a_dockerfile_syntax_error_fails_preview_on_a_fresh_stack_with_nothing_created(project: Project, tmp_path: Path) -> None:
    context, model = tmp_path / "ctx", tmp_path / "model"
    context.mkdir()
    model.mkdir()
    (model / "w.txt").write_text("1")
    (context / "Dockerfile").write_text("FROM mldeploy/debian:bookworm\nRUN echo one \\\n    two\nCOPPY a.txt /a.txt\n")
    project.write(BASE_PROGRAM.format(model=str(model), context=str(context), suffix=project.name[-6:]))
    res = project.preview(check=False)
    assert res.returncode != 0
    assert f"dockerfile parse error in {context / 'Dockerfile'} on line 4: unknown instruction: COPPY" in res.output, res.output[-3000:]
    res = project.pulumi("up", "--yes", check=False)  # up previews first: fails there, before anything is created
    assert res.returncode != 0
    resources = json.loads(project.export()).get("deployment", {}).get("resources") or []
    assert [r["type"] for r in resources if not r["type"].startswith("pulumi:")] == []


ARGS_PROGRAM = """
import pulumi
from mldeploy import BaseImage, ModelVersion, ServicePrincipal
push = ServicePrincipal("push", role="AcrPush", display_name="early-push")
mv = ModelVersion("m", model_name="early-model", path={model!r})
base = BaseImage("base", context={context!r}, repository={repository!r}, tag="v1", service_principal=push,
                 build_args={{"PYTHON_VERSION": "3.8"}})
pulumi.export("ref", base.image_ref)
"""


def test_a_python_version_build_arg_outside_the_requirements_fails_preview_with_nothing_built(
    project: Project, tmp_path: Path, settings: Settings, docker_client: Any
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "w.txt").write_text("1")
    repository = f"pytest/early-py-{project.name[-6:]}"
    context = DEMO / "base"  # the demo base: ARG PYTHON_VERSION=3.11, here given as 3.8
    project.write(ARGS_PROGRAM.format(model=str(model), context=str(context), repository=repository))
    start = time.monotonic()
    res = project.preview(check=False)
    took = time.monotonic() - start
    print(f"\npreview with build_args PYTHON_VERSION=3.8 failed in {took:.1f} s")
    assert res.returncode != 0
    assert "build_args.PYTHON_VERSION: the image's Python would be 3.8 (build_args PYTHON_VERSION='3.8'" in res.output, res.output[-3000:]
    assert "outside requirements.python '>=3.9,<3.14'" in res.output
    assert "Fix: pass build_args={'PYTHON_VERSION': '3.11'}" in res.output
    res = project.pulumi("up", "--yes", check=False)  # up previews first: fails there, before anything is created or built
    assert res.returncode != 0 and "build_args.PYTHON_VERSION" in res.output, res.output[-3000:]
    resources = json.loads(project.export()).get("deployment", {}).get("resources") or []
    assert [r["type"] for r in resources if not r["type"].startswith("pulumi:")] == []
    assert docker_client.images.list(name=f"{settings.registry}/{repository}") == []
    assert list((settings.logs_dir / "builds").glob(f"{repository.replace('/', '-')}-*")) == []
