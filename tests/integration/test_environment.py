"""Environments: the conda file resolved on the host into a pinned lock, installed in its own layer."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import requests
from mldeploy.settings import Settings

from .conftest import copy_demo, deployment_program
from .harness import Project
from .recording import record

SAMPLE = {"data": [[5.1, 3.5, 1.4, 0.2]]}
EXPORTS = {"scoring_uri": "dep.scoring_uri", "environment": "dep.environment", "build_log": "dep.build_log", "image_ref": "dep.image_ref"}


def program(demo: Path, svc: str, base: str, **kwargs: object) -> str:
    return deployment_program(demo, svc, base, {"computeType": "local", "port": 19312}, EXPORTS, **kwargs)



def _env_layer(build_log: str) -> tuple[bool, str]:
    """The environment layer (the RUN pip install step) in a build log: (taken from the cache?, its layer id)."""
    text = Path(build_log).read_text()
    m = re.search(r"Step \d+/\d+ : RUN pip install[^\n]*\n(.*?)(?=\nStep \d+/|\Z)", text, re.S)
    assert m, text[-2000:]
    ids = re.findall(r"^ ---> ([0-9a-f]{12})$", m.group(1), re.M)
    assert ids, m.group(1)
    return "Using cache" in m.group(1), ids[-1]


def _run(image_ref: str, *cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint", cmd[0], image_ref, *cmd[1:]], capture_output=True, text=True)


def _pip_check(image_ref: str) -> None:
    """The derived image's Python environment is consistent (what the build itself also checks)."""
    res = _run(image_ref, "pip", "check")
    assert res.returncode == 0 and "No broken requirements found." in res.stdout, res.stdout + res.stderr


def _image_lock(image_ref: str) -> dict[str, tuple[str, str]]:
    """The lock the image was built from (/opt/mldeploy/requirements.lock): name -> (version, sha256)."""
    text = _run(image_ref, "cat", "/opt/mldeploy/requirements.lock").stdout
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(\S+)==(\S+) --hash=sha256:([0-9a-f]{64})$", line)
        assert m, line
        out[m.group(1).lower()] = (m.group(2), m.group(3))
    return out


def test_conda_environment_lock_layers_and_errors(project: Project, tmp_path: Path, demo_base: str) -> None:
    demo = copy_demo(tmp_path / "demo")
    svc = f"env-{project.name[-6:]}"
    project.write(program(demo, svc, demo_base))
    project.up()
    outs = project.outputs()
    _, env_layer = _env_layer(outs["build_log"])
    env = outs["environment"]
    # The conda dependencies (numpy=2.3.1, scikit-learn=1.7.0, scipy=1.16.0) and the pip one, pinned; the full lock has hashes.
    assert env["packages"] == {
        "azureml-inference-server-http": "1.5.1",  # the project's tested default
        "joblib": "1.5.1",
        "numpy": "2.3.1",
        "scikit-learn": "1.7.0",
        "scipy": "1.16.0",
    }
    lock = _image_lock(outs["image_ref"])
    assert lock["numpy"][0] == "2.3.1" and all(len(h) == 64 for _, h in lock.values())
    assert int(env["wheels"]) == len(lock)
    _pip_check(outs["image_ref"])
    r = requests.post(outs["scoring_uri"], json=SAMPLE, timeout=10)
    assert r.json() == {"predictions": ["setosa"]}

    # A no-op preview makes no index query: with pip's index pointed at a dead port it still sees no change.
    project.env["PIP_INDEX_URL"] = "http://127.0.0.1:9/simple"
    assert project.ops() == {}
    del project.env["PIP_INDEX_URL"]

    # A score.py edit rebuilds without reinstalling wheels (the environment layer comes from the cache).
    score = demo / "src" / "score.py"
    score.write_text(score.read_text() + "\n# edited\n")
    t0 = time.monotonic()
    project.up()
    code_edit = time.monotonic() - t0
    assert _env_layer(outs["build_log"]) == (True, env_layer)

    # Bumping one pin changes the lock and rebuilds from the environment layer.
    conda = demo / "src" / "infenv.yml"
    conda.write_text(conda.read_text().replace("joblib==1.5.1", "joblib==1.5.0"))
    preview = project.preview()
    assert project.ops() == {"svc": "update"}
    # One package change, in a few lines: the summary's joblib entry and its digest, not the whole lock.
    inputs_part = preview.output.split("--outputs:--")[0]
    assert re.search(r'~ joblib\s*: "1.5.1" => "1.5.0"', inputs_part), preview.output
    package_changes = [line for line in inputs_part.splitlines() if '" => "' in line and "digest" not in line]
    assert len(package_changes) == 1, package_changes
    assert "push_username" not in inputs_part and len(inputs_part.splitlines()) < 25, inputs_part  # only what changed is listed
    pin_bump = project.preview_json()
    record("env_pin_bump", pin_bump, {str(tmp_path / "demo"): "/home/ci/demo", str(Settings.from_env().home): "/home/ci/.mldeploy"})
    t0 = time.monotonic()
    project.up()
    dep_change = time.monotonic() - t0
    assert project.outputs()["environment"]["packages"]["joblib"] == "1.5.0"
    _pip_check(project.outputs()["image_ref"])
    # A different environment layer (built now, or taken from an earlier identical build's cache).
    assert _env_layer(outs["build_log"])[1] != env_layer
    print(f"\nup after a score.py edit: {code_edit:.1f}s; up after a dependency change: {dep_change:.1f}s")

    # A python pin that differs from the base image's Python: a clear error at preview, nothing built.
    before = project.outputs()
    conda.write_text(conda.read_text().replace("python=3.11", "python=3.9"))
    res = project.preview(check=False)
    assert res.returncode != 0
    assert "pins python=3.9 but the base image has Python 3.11" in res.output
    assert "accept_image_python=True" in res.output
    # ... and the opt-in accepts the image's Python with a warning.
    project.write(program(demo, svc, demo_base, accept_image_python=True))
    res = project.preview()
    assert "warning:" in res.output and "using the image's Python 3.11" in res.output
    conda.write_text(conda.read_text().replace("python=3.9", "python=3.11"))

    # An unknown package fails at preview naming it (and its line in the file).
    conda.write_text(conda.read_text().replace("  - scipy=1.16.0\n", "  - scipy=1.16.0\n  - no-such-package-mldeploy=1.0\n"))
    res = project.preview(check=False)
    assert res.returncode != 0
    assert "no-such-package-mldeploy" in res.output and "line 13" in res.output
    assert project.outputs() == before
