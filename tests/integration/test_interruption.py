"""`kill -9` of pulumi, or of its provider process, mid-update; then `pulumi cancel` + `up` converges.

Local target: one stack per module (a ModelVersion, two identities and a local InferenceDeployment on
port 19350); each test is one kill point (build, push, health wait) and kills first `pulumi`, then the
provider, each during an update to a new score.py version. After each kill the recorded version alone
answers (the swap guard removes the new container), and after `pulumi cancel` + `pulumi up` the test
asserts what a user would notice: which version answers, the containers labelled with this service, the
provider processes, the registry's tags, MLflow's versions, and the checkpoint's pending operations.

Kubernetes and swarm targets: the kill point that differs from local is the rollout wait (build and push
are the same code on every target). The platform carries a rollout on by itself once it has the new pod
template / task spec, so right after the kill the old or the new version may answer (neither fails: the
rollout is maxUnavailable 0 / start-first); `pulumi cancel` + `up` then waits for that rollout instead of
starting another (on swarm, an update to the same spec cancelled Swarm's and `up` returned while the last
old task still answered: the swarm test failed so until ``Swarm.finish_update``), and the test asserts the
new version alone answers, the provider died with its engine, the platform holds exactly the recorded
objects (kubernetes: one Deployment on the state's image, its ready pods on that image, older ReplicaSets
at 0, only the recorded Service, pull Secret and front ConfigMap; swarm: the model service and front container once
each, Swarm's update done, the model's tasks meant to run on the state's image), one registry tag, one
MLflow version, no pending operation.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from .conftest import Kubectl, copy_demo, deployment_program, swarm_objects
from .harness import Project
from .test_kubernetes import _pods
from .test_kubernetes import deployment_config as kubernetes_config
from .test_swarm import deployment_config as swarm_config

PORT = 19350
SWARM_PORT = 19360
NODE_PORT = 30061  # test_kubernetes.py uses 30051
REPLICAS = 2
SAMPLE = {"data": [[5.1, 3.5, 1.4, 0.2]]}
# The progress line each kill waits for. "rollout": the kubernetes and swarm targets' rollout wait, printed once the
# platform has the new pod template / task spec ("rolling update (maxSurge 1, ...)" / "rolling update (start-first, ...)").
PHASES = {"build": "building ", "push": "pushing ", "health": "starting mldeploy-", "rollout": "rolling update ("}
EXPORTS = {"image_ref": "dep.image_ref", "pull_id": "pull.client_id", "pull_secret": "pull.client_secret", "model_version": "mv.version"}


class Stack:
    def __init__(self, project: Project, demo: Path, svc: str, port: int) -> None:
        self.project, self.demo, self.svc, self.port, self.version = project, demo, svc, port, 1

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
                seen.add(requests.post(f"http://127.0.0.1:{self.port}/score", json=SAMPLE, timeout=5).json().get("version"))
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


def _providers_gone(providers: list[int], victim: str) -> None:
    """The provider goes with its engine (watchdog) within seconds, or was the victim itself."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(pid) for pid in providers):
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in providers), f"provider outlived the kill of {victim}"


def _recover(stack: Stack, phase: str, victim: str) -> None:
    """The documented recovery: pulumi cancel (the file backend may say no update is in progress), then up."""
    stack.project.pulumi("cancel", "--yes", check=False)
    res = stack.project.up()
    print(f"\n{phase}/{victim}: recovered; up said:\n" + "\n".join(line for line in res.output.splitlines() if "interrupted" in line))
    assert f"the previous run was interrupted while updating InferenceDeployment {stack.svc}" in res.output  # best effort, but here always


def _assert_converged(stack: Stack, settings, providers: list[int]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """What holds on every target after the recovery; returns the stack's outputs for the target's own checks."""
    outs = stack.project.outputs()
    assert stack.answers() == {stack.version}
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
    return outs


def _new_stack(project: Project, root: Path, svc: str, base: str, deployment_config: dict[str, Any] | str, port: int, **kwargs: object) -> Stack:
    """The demo deployed with score.py answering ``version: 1``; ``kwargs`` are further InferenceDeployment arguments."""
    demo = copy_demo(root / "demo")
    (demo / "src" / "score.py.orig").write_text((demo / "src" / "score.py").read_text())
    exports = {**EXPORTS, "container_id": "dep.container_id"}
    project.write(deployment_program(demo, svc, base, deployment_config, exports, **kwargs))
    s = Stack(project, demo, svc, port)
    s.set_version(1)
    project.up()
    return s


def _labelled_containers(docker_client, svc: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [c.id for c in docker_client.containers.list(all=True, filters={"label": f"mldeploy.service={svc}"})]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, settings, demo_base: str) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("interrupt")
    project = Project(root / "proj")
    yield _new_stack(project, root, f"kill-{project.name[-6:]}", demo_base, {"computeType": "local", "port": PORT}, PORT)
    project.cleanup()


def _round(stack: Stack, phase: str, victim: str, docker_client, settings) -> None:  # type: ignore[no-untyped-def]
    before = stack.version
    recorded = stack.project.outputs()["container_id"]
    stack.set_version(before + 1, init_delay=6 if phase == "health" else 0)
    out, providers = _interrupted_up(stack, phase, victim)
    # The provider goes with its engine, and the swap guard leaves the recorded container serving alone.
    _providers_gone(providers, victim)
    time.sleep(8 if phase == "health" else 1)  # past the new version's init(): it would be serving by now
    assert stack.answers() == {before}, out[-3000:]
    assert _labelled_containers(docker_client, stack.svc) == [recorded]
    _recover(stack, phase, victim)
    outs = _assert_converged(stack, settings, providers)
    assert _labelled_containers(docker_client, stack.svc) == [outs["container_id"]]


@pytest.mark.parametrize("phase", ["build", "push", "health"])
def test_kill_during(phase: str, stack: Stack, docker_client, settings) -> None:  # type: ignore[no-untyped-def]
    for victim in ("pulumi", "provider"):
        _round(stack, phase, victim, docker_client, settings)


# -- the kubernetes and swarm targets: a kill during the rollout wait -------------------------------------
def _rollout_rounds(stack: Stack, settings, platform: Callable[[dict[str, Any]], None]) -> None:  # type: ignore[no-untyped-def]
    """Kill `pulumi`, then the provider, each during the rollout of a new score.py version; recover; check."""
    for victim in ("pulumi", "provider"):
        t = time.monotonic()
        before = stack.version
        stack.set_version(before + 1, init_delay=4)  # a rollout long enough to be mid-way at the kill and at the recovery
        out, providers = _interrupted_up(stack, "rollout", victim)
        _providers_gone(providers, victim)
        # The platform goes on rolling out by itself: the old or the new version answers, no request fails.
        during = stack.answers()
        assert during <= {before, stack.version}, (during, out[-3000:])
        killed = time.monotonic() - t
        _recover(stack, "rollout", victim)
        platform(_assert_converged(stack, settings, providers))
        print(f"rollout/{victim}: answered {sorted(map(str, during))} after the kill; killed after {killed:.0f}s, converged after {time.monotonic() - t:.0f}s")


def test_kubernetes_kill_during_rollout(project: Project, tmp_path: Path, demo_base: str, kubectl: Kubectl, namespace: str, settings) -> None:  # type: ignore[no-untyped-def]
    svc = f"killk-{project.name[-6:]}"
    name = f"mldeploy-{svc}"
    stack = _new_stack(project, tmp_path, svc, demo_base, kubernetes_config(namespace, port=NODE_PORT, numReplicas=REPLICAS), NODE_PORT)

    def recorded_objects(outs: dict[str, Any]) -> None:
        """One Deployment on the state's image, its pods all ready on it, older ReplicaSets at 0, nothing unrecorded."""
        items = json.loads(kubectl("get", "deploy,rs,svc,secret,configmap,hpa", "-n", namespace, "-l", f"mldeploy.service={svc}", "-o", "json"))["items"]
        kinds: dict[str, list[dict[str, Any]]] = {}
        for item in items:
            kinds.setdefault(item["kind"], []).append(item)
        [dep] = kinds["Deployment"]
        template = dep["spec"]["template"]["spec"]
        assert dep["metadata"]["name"] == name and template["containers"][0]["image"] == outs["image_ref"]
        pods = _pods(kubectl, namespace, svc)
        ready = [p for p in pods if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])]
        assert len(pods) == len(ready) == REPLICAS, [(p["metadata"]["name"], p["status"].get("phase")) for p in pods]
        assert {p["spec"]["containers"][0]["image"] for p in pods} == {outs["image_ref"]}
        sets = kinds["ReplicaSet"]
        scaled = [rs["spec"]["template"]["spec"]["containers"][0]["image"] for rs in sets if rs["spec"]["replicas"] or rs["status"].get("replicas")]
        assert scaled == [outs["image_ref"]] and len(sets) > 1, scaled  # the older ones kept, at 0
        assert [s["metadata"]["name"] for s in kinds.get("Service", [])] == [name]
        assert [s["metadata"]["name"] for s in kinds.get("Secret", [])] == [f"{name}-pull"]
        assert [c["metadata"]["name"] for c in kinds.get("ConfigMap", [])] == [v["configMap"]["name"] for v in template["volumes"] if "configMap" in v]
        assert kinds.get("HorizontalPodAutoscaler", []) == []

    _rollout_rounds(stack, settings, recorded_objects)


def test_swarm_kill_during_rollout(project: Project, tmp_path: Path, demo_base: str, swarm, cleanup_swarm, docker_client, settings) -> None:  # type: ignore[no-untyped-def]
    svc = f"kills-{project.name[-6:]}"
    cleanup_swarm.append(svc)
    model, front = f"mldeploy-{svc}", f"mldeploy-{svc}-front"
    stack = _new_stack(project, tmp_path, svc, demo_base, swarm_config(port=SWARM_PORT, numReplicas=REPLICAS), SWARM_PORT, target="swarm")

    def recorded_objects(outs: dict[str, Any]) -> None:
        """The model service and the front container once each, Swarm's update done, the model's tasks meant to run all on
        the state's image."""
        services = {s.name: s for s in docker_client.services.list(filters={"label": f"mldeploy.service={svc}"})}
        assert sorted(services) == [model]
        attrs = services[model].attrs
        assert attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] == outs["image_ref"]
        assert (attrs.get("UpdateStatus") or {}).get("State") in (None, "completed"), attrs.get("UpdateStatus")
        # The tasks meant to run; older ones are shut down or stopping (out of Swarm's DNS, "running" for their grace period).
        tasks = services[model].tasks(filters={"desired-state": "running"})
        assert len(tasks) == REPLICAS and {t["Status"]["State"] for t in tasks} == {"running"}, tasks
        assert {t["Spec"]["ContainerSpec"]["Image"] for t in tasks} == {outs["image_ref"]}
        fronts = docker_client.containers.list(all=True, filters={"label": [f"mldeploy.service={svc}", "mldeploy.front-spec"]})
        assert [(c.name, c.status) for c in fronts] == [(front, "running")]
        objs = swarm_objects(svc)
        assert (len(objs["service"]), len(objs["network"]), objs["config"], objs["secret"]) == (1, 1, [], []), objs

    _rollout_rounds(stack, settings, recorded_objects)
    # destroy leaves no version on this node, neither the recorded one nor those the killed runs replaced
    repo = project.outputs()["image_ref"].split("@")[0]
    project.destroy()
    assert [t for img in docker_client.images.list(name=repo) for t in img.tags] == []
