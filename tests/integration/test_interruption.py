"""`kill -9` of pulumi, or of its provider process, at build, push and health wait; then `pulumi cancel` + `up` converges.

One stack per module (a ModelVersion, two identities and a local InferenceDeployment on
port 19350); each test is one kill point and kills first `pulumi`, then the provider, each
during an update to a new score.py version. After each kill, and again after `pulumi cancel`
and `pulumi up`, it asserts what a user would notice: which version answers, the containers
labelled with this service, the provider processes, the registry's tags, MLflow's versions,
and the checkpoint's pending operations.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from .conftest import copy_demo, deployment_program
from .harness import Project

PORT = 19350
SAMPLE = {"data": [[5.1, 3.5, 1.4, 0.2]]}
PHASES = {"build": "building ", "push": "pushing ", "health": "starting mldeploy-"}


class Stack:
    def __init__(self, project: Project, demo: Path, svc: str) -> None:
        self.project, self.demo, self.svc, self.version = project, demo, svc, 1

    def set_version(self, n: int, init_delay: float = 0) -> None:
        """score.py answering with ``version: n``; its init() sleeps ``init_delay`` (a longer health wait)."""
        score = self.demo / "src" / "score.py"
        text = (self.demo / "src" / "score.py.orig").read_text()
        text = text.replace('return {"predictions"', f'return {{"version": {n}, "predictions"')
        if init_delay:
            text = text.replace("def init():\n", f"def init():\n    import time\n    time.sleep({init_delay})\n", 1)
        score.write_text(text)
        self.version = n

    def answers(self, n: int = 10) -> set[object]:
        seen = set()
        for _ in range(n):
            try:
                seen.add(requests.post(f"http://127.0.0.1:{PORT}/score", json=SAMPLE, timeout=5).json().get("version"))
            except requests.RequestException as exc:
                seen.add(type(exc).__name__)
        return seen


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            tree.setdefault(ppid, []).append(int(d.name))
    return tree


def _descendants(pid: int) -> list[int]:
    tree, out, todo = _children(), [], [pid]
    while todo:
        for c in tree.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def _interrupted_up(stack: Stack, phase: str, victim: str) -> tuple[str, list[int]]:
    """Start `pulumi up`, kill -9 ``victim`` once the ``phase`` progress line shows; returns (output, provider pids)."""
    p = stack.project
    cmd = ["pulumi", "up", "--yes", "--skip-preview", "--non-interactive", "--cwd", str(p.dir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=p.env)
    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if PHASES[phase] in line:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert seen.wait(300), f"never saw the {phase} phase:\n{''.join(lines)[-4000:]}"
    providers = [pid for pid in _descendants(proc.pid) if "pulumi.dynamic" in _cmdline(pid)]
    assert providers, "found no provider process"
    os.kill(proc.pid if victim == "pulumi" else providers[0], signal.SIGKILL)
    proc.wait(120)
    reader.join(10)
    return "".join(lines), providers


def _assert_converged(stack: Stack, docker_client, settings, providers: list[int]) -> None:  # type: ignore[no-untyped-def]
    outs = stack.project.outputs()
    assert stack.answers() == {stack.version}
    labelled = docker_client.containers.list(all=True, filters={"label": f"mldeploy.service={stack.svc}"})
    assert [c.id for c in labelled] == [outs["container_id"]]
    assert not any(_alive(pid) for pid in providers)

    # No process of this project or of its swaps is left: no language host, program, provider or guard.
    def left() -> list[str]:
        mine = (str(stack.project.dir), f"mldeploy-{stack.svc}-")
        found = []
        for d in Path("/proc").iterdir():
            cmd = _cmdline(int(d.name)) if d.name.isdigit() else ""
            if any(m in cmd for m in mine) and _alive(int(d.name)):
                found.append(cmd)
        return found

    deadline = time.monotonic() + 10  # a finished swap's guard exits within 0.2 s of reading "done"
    while left() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left() == [], left()
    export = json.loads(stack.project.export())
    assert not export["deployment"].get("pending_operations"), export["deployment"].get("pending_operations")
    # The registry: the recorded image is the only tag of this deployment's repository.
    repo = outs["image_ref"].split("@")[0].split("/", 1)[1]
    r = requests.get(f"http://{settings.registry}/v2/{repo}/tags/list", auth=(outs["pull_id"], outs["pull_secret"]), timeout=10)
    assert r.status_code == 200 and len(r.json()["tags"]) == 1, r.text
    # MLflow: one version of the model.
    from mlflow import MlflowClient

    uri = f"sqlite:///{settings.mlflow_dir / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert [int(v.version) for v in client.search_model_versions(f"name='{stack.svc}-iris'")] == [outs["model_version"]]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, settings, demo_base: str) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("interrupt")
    demo = copy_demo(root / "demo")
    (demo / "src" / "score.py.orig").write_text((demo / "src" / "score.py").read_text())
    project = Project(root / "proj")
    svc = f"kill-{project.name[-6:]}"
    exports = {
        "container_id": "dep.container_id",
        "image_ref": "dep.image_ref",
        "pull_id": "pull.client_id",
        "pull_secret": "pull.client_secret",
        "model_version": "mv.version",
    }
    project.write(deployment_program(demo, svc, base=demo_base, deployment_config={"computeType": "local", "port": PORT}, exports=exports))
    s = Stack(project, demo, svc)
    s.set_version(1)
    project.up()
    yield s
    project.cleanup()


def _round(stack: Stack, phase: str, victim: str, docker_client, settings) -> None:  # type: ignore[no-untyped-def]
    before = stack.version
    recorded = stack.project.outputs()["container_id"]
    stack.set_version(before + 1, init_delay=6 if phase == "health" else 0)
    out, providers = _interrupted_up(stack, phase, victim)
    # The provider goes with its engine (watchdog), and the swap guard leaves the recorded container serving alone.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(pid) for pid in providers):
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in providers), f"provider outlived the kill of {victim}"
    time.sleep(8 if phase == "health" else 1)  # past the new version's init(): it would be serving by now
    assert stack.answers() == {before}, out[-3000:]
    labelled = docker_client.containers.list(all=True, filters={"label": f"mldeploy.service={stack.svc}"})
    assert [c.id for c in labelled] == [recorded]
    # The documented recovery: pulumi cancel (the file backend may say no update is in progress), then up.
    stack.project.pulumi("cancel", "--yes", check=False)
    res = stack.project.up()
    print(f"\n{phase}/{victim}: recovered; up said:\n" + "\n".join(line for line in res.output.splitlines() if "interrupted" in line))
    assert f"the previous run was interrupted while updating InferenceDeployment {stack.svc}" in res.output  # best effort, but here always
    _assert_converged(stack, docker_client, settings, providers)


@pytest.mark.parametrize("phase", ["build", "push", "health"])
def test_kill_during(phase: str, stack: Stack, docker_client, settings) -> None:  # type: ignore[no-untyped-def]
    for victim in ("pulumi", "provider"):
        _round(stack, phase, victim, docker_client, settings)
