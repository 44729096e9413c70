"""InferenceDeployment on the swarm target, through the real engine and this machine's single-node swarm.

3 replicas serve behind the front; a score.py edit rolls out under load with no failed request; an
init() that raises is rolled back by Swarm while the old replicas keep answering; refresh + up repair
an out-of-band `docker service rm` and `docker service scale`; keys are enforced, and rotating the
primary refuses the old one (the front reloads in place: no request fails); the front listens on 127.0.0.1
only; destroy leaves no service, container, network, config or secret.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from .conftest import Load, deployment_program, docker_cli, push, swarm_objects
from .conftest import copy_demo as _copy_demo
from .harness import Project

PORT = 18893
MODES_PORT = 18896
SAMPLE = {"data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}
EXPORTS = {
    "scoring_uri": "dep.scoring_uri",
    "image_ref": "dep.image_ref",
    "replicas": "dep.replicas",
    "primary_key": "dep.primary_key",
    "secondary_key": "dep.secondary_key",
}


def program(demo: Path, svc: str, base: str, dc: str, regen: str | None, target: str | None = "swarm") -> str:
    # computeType aks alone selects the kubernetes target: these programs name swarm.
    return deployment_program(demo, svc, base, dc, EXPORTS, regenerate_key=regen, target=target)


def deployment_config(**extra: Any) -> str:
    dc = {
        "computeType": "aks",
        "port": PORT,
        "numReplicas": 3,
        "containerResourceRequirements": {"cpu": 0.5, "memoryInGB": 0.5},
        "livenessProbeRequirements": {"periodSeconds": 1, "initialDelaySeconds": 60, "timeoutSeconds": 2, "failureThreshold": 2},
        "scoringTimeoutMs": 20000,
        "maxConcurrentRequestsPerContainer": 2,
        "tags": {"team": "it"},
    }
    dc.update(extra)
    return json.dumps(dc)


def host_addresses() -> list[str]:
    """This machine's global IPv4 addresses (not loopback)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True, check=True).stdout
    found = [f.split("/")[0] for f in out.split() if "/" in f and f[0].isdigit()]
    assert found, out
    return found


def _score(uri: str, key: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.post(uri, json=SAMPLE, headers=headers, timeout=15)


def test_swarm_lifecycle(project: Project, tmp_path: Path, demo_base: str, swarm, cleanup_swarm, settings) -> None:  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    demo = _copy_demo(tmp_path / "demo")
    svc = f"sw-{project.name[-6:]}"
    cleanup_swarm.append(svc)
    model = f"mldeploy-{svc}"

    def write(dc: str, regen: str | None = None) -> None:
        project.write(program(demo, svc, demo_base, dc, regen))

    write(deployment_config())
    project.up()
    timings["create"] = time.monotonic() - t0
    outs = project.outputs()
    uri = outs["scoring_uri"]
    assert uri == f"http://127.0.0.1:{PORT}/score"
    assert outs["replicas"] == 3
    spec = json.loads(docker_cli("service", "inspect", model))[0]["Spec"]
    assert spec["Mode"]["Replicated"]["Replicas"] == 3
    assert spec["TaskTemplate"]["ContainerSpec"]["Image"] == outs["image_ref"]
    assert spec["TaskTemplate"]["Resources"]["Limits"] == {"NanoCPUs": 500_000_000, "MemoryBytes": 512 * 1024**2}
    hc = spec["TaskTemplate"]["ContainerSpec"]["Healthcheck"]
    assert (hc["Interval"], hc["Timeout"], hc["Retries"]) == (1_000_000_000, 2_000_000_000, 2)
    assert spec["UpdateConfig"]["Order"] == "start-first" and spec["UpdateConfig"]["FailureAction"] == "rollback"
    assert spec["UpdateConfig"]["Parallelism"] == 1
    assert spec["Labels"]["mldeploy.stack"] == "test" and spec["Labels"]["mldeploy.urn"].endswith("::svc")
    assert spec["Labels"]["mldeploy.tag.team"] == "it"
    env = dict(e.split("=", 1) for e in spec["TaskTemplate"]["ContainerSpec"]["Env"])
    assert env["SCORING_TIMEOUT_MS"] == "20000" and env["WORKER_COUNT"] == "2"
    # The front listens on 127.0.0.1 only: not on the host's other addresses (every global IPv4 address it has).
    assert docker_cli("port", f"{model}-front").split() == ["8080/tcp", "->", f"127.0.0.1:{PORT}"]
    for address in host_addresses():
        with pytest.raises(requests.ConnectionError):
            requests.post(f"http://{address}:{PORT}/score", json=SAMPLE, timeout=5)
    running = docker_cli("service", "ps", model, "--filter", "desired-state=running", "--format", "{{.CurrentState}}").splitlines()
    assert len(running) == 3 and all(s.startswith("Running") for s in running), running
    # Requests are spread over the replicas: each task's access log shows scoring requests.
    for _ in range(30):
        assert _score(uri).json() == {"predictions": ["setosa", "virginica"]}
    logs = subprocess.run(["docker", "service", "logs", "--raw", "--no-task-ids", model], capture_output=True, text=True).stdout
    assert logs.count("POST /score") >= 30
    served_by = {
        line.split()[0]
        for line in subprocess.run(["docker", "service", "logs", model], capture_output=True, text=True).stdout.splitlines()
        if "POST /score" in line
    }
    assert len(served_by) == 3, served_by

    # A second up changes nothing.
    assert project.ops() == {}

    # score.py edit: Swarm rolls it out one task at a time, start-first; no request fails.
    score = demo / "src" / "score.py"
    good = score.read_text()
    v2 = good.replace('return {"predictions"', 'return {"version": 2, "predictions"')
    score.write_text(v2)
    assert project.ops() == {"svc": "update"}
    t = time.monotonic()
    with Load(uri, SAMPLE, timeout=10, pause=0.02, limit=400) as load:
        rolled = project.up()
        time.sleep(1)
    timings["rollout"] = time.monotonic() - t
    print(f"\nrollout under load: {load.ok} ok, {load.failed} failed in {timings['rollout']:.0f}s; answers: {dict(load.answers)}")
    assert load.ok > 50 and load.failed == 0, (load.ok, load.failed, load.answers, load.failures, rolled.output[-3000:])
    assert any('"version": 2' in a for a in load.answers)
    assert _score(uri).json()["version"] == 2
    v2_image = project.outputs()["image_ref"]
    assert v2_image != outs["image_ref"]

    # init() raises: Swarm rolls back, up fails with the traceback, the old replicas answer throughout.
    score.write_text(v2.replace("def init():\n", "def init():\n    raise RuntimeError('model store offline')\n"))
    t = time.monotonic()
    with Load(uri, SAMPLE, timeout=10, pause=0.02, limit=400) as load:
        failed = project.up(check=False)
    timings["rollback"] = time.monotonic() - t
    print(f"failed rollout under load: {load.ok} ok, {load.failed} failed in {timings['rollback']:.0f}s")
    assert failed.returncode != 0
    assert "rolled back" in failed.output and "RuntimeError: model store offline" in failed.output, failed.output[-3000:]
    assert load.ok > 20 and load.failed == 0, (load.ok, load.failed, load.answers, load.failures)
    assert set(load.answers) == {json.dumps({"predictions": ["setosa", "virginica"], "version": 2}, sort_keys=True)}
    spec = json.loads(docker_cli("service", "inspect", model))[0]
    assert spec["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] == v2_image
    assert spec["UpdateStatus"]["State"] == "rollback_completed"
    score.write_text(v2)
    assert project.ops() == {}

    # Out of band: docker service rm -> refresh finds it gone -> up recreates it.
    docker_cli("service", "rm", model)
    project.refresh()
    assert project.ops() == {"svc": "create"}
    project.up()
    assert _score(uri).json()["version"] == 2

    # Out of band: docker service scale -> refresh reads 1 replica -> up restores 3.
    docker_cli("service", "scale", "--detach", f"{model}=1")
    project.refresh()
    assert project.ops() == {"svc": "update"}
    project.up()
    assert json.loads(docker_cli("service", "inspect", model))[0]["Spec"]["Mode"]["Replicated"]["Replicas"] == 3
    assert project.outputs()["replicas"] == 3

    # authEnabled: keys generated by the provider, secrets in state, enforced by the nginx front.
    t = time.monotonic()
    write(deployment_config(authEnabled=True))
    project.up()
    keys = project.outputs()
    k1, k2 = keys["primary_key"], keys["secondary_key"]
    assert k1 and k2 and k1 != k2
    state = project.export()
    assert k1 not in state and k2 not in state  # encrypted in the state file
    r = _score(uri)
    assert r.status_code == 401 and "Bearer" in r.headers.get("WWW-Authenticate", "")
    assert _score(uri, "not-a-key").status_code == 401
    assert _score(uri, k1).status_code == 200 and _score(uri, k2).status_code == 200
    assert requests.get(f"http://127.0.0.1:{PORT}/", timeout=5).status_code == 200  # the liveness route stays open

    # Rotate the primary: the old primary is refused, the new one and the secondary work. The front reloads its
    # configuration in place: a client using the secondary key sees no failed request meanwhile.
    write(deployment_config(authEnabled=True), regen="primary:1")
    assert project.ops() == {"svc": "update"}
    front_id = docker_cli("container", "inspect", "-f", "{{.Id}}", f"{model}-front").strip()
    with Load(uri, SAMPLE, timeout=10, pause=0.01, limit=300, headers={"Authorization": f"Bearer {k2}"}) as load:
        project.up()
    print(f"primary key rotation under load: {load.ok} ok, {load.failed} failed; answers: {dict(load.answers)}")
    assert load.ok > 10 and load.failed == 0, (load.ok, load.failed, load.answers, load.failures)
    assert docker_cli("container", "inspect", "-f", "{{.Id}}", f"{model}-front").strip() == front_id  # reloaded, not replaced
    keys = project.outputs()
    assert keys["secondary_key"] == k2 and keys["primary_key"] != k1
    assert _score(uri, k1).status_code == 401
    assert _score(uri, keys["primary_key"]).status_code == 200 and _score(uri, k2).status_code == 200
    timings["auth"] = time.monotonic() - t

    # Destroy: no service, network, config or secret left.
    t = time.monotonic()
    project.destroy()
    timings["destroy"] = time.monotonic() - t
    assert swarm_objects(svc) == {"service": [], "config": [], "secret": [], "network": [], "container": []}
    # ... and frees the space: no task container keeps a derived image on this node.
    assert docker_cli("ps", "-aq", "--filter", f"label=com.docker.swarm.service.name={model}") == ""
    assert docker_cli("images", "-q", outs["image_ref"].split("@")[0]) == "", "derived images left on this node"
    print(f"timings: { {k: round(v) for k, v in timings.items()} }, total {time.monotonic() - t0:.0f}s")


def test_swarm_publish_modes(project: Project, tmp_path: Path, demo_base: str, swarm, cleanup_swarm) -> None:  # type: ignore[no-untyped-def]
    """``host`` mode (an opt-in) publishes on every interface; returning to the default ``loopback`` mode is an update that
    moves the front to a container on 127.0.0.1. A deployment whose overlay network predates the loopback front (not
    attachable, as mldeploy made them before it) is recreated on that update."""
    demo = _copy_demo(tmp_path / "demo")
    svc = f"swm-{project.name[-6:]}"
    cleanup_swarm.append(svc)
    model = f"mldeploy-{svc}"
    docker_cli("network", "create", "--driver", "overlay", "--label", f"mldeploy.service={svc}", model)
    project.write(program(demo, svc, demo_base, deployment_config(port=MODES_PORT, numReplicas=1), None))
    project.env["MLDEPLOY_SWARM_PUBLISH_MODE"] = "host"
    project.up()
    uri = project.outputs()["scoring_uri"]
    outside = f"http://{host_addresses()[0]}:{MODES_PORT}/score"
    assert _score(uri).status_code == 200
    assert requests.post(outside, json=SAMPLE, timeout=10).status_code == 200  # every interface, as documented
    objs = swarm_objects(svc)
    assert (len(objs["service"]), len(objs["config"]), objs["container"]) == (2, 1, []), objs

    del project.env["MLDEPLOY_SWARM_PUBLISH_MODE"]
    assert project.ops() == {"svc": "update"}
    res = project.up()
    assert "predates the loopback front" in res.output, res.output
    assert _score(uri).status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.post(outside, json=SAMPLE, timeout=5)
    objs = swarm_objects(svc)
    assert (len(objs["service"]), objs["config"], len(objs["container"])) == (1, [], 1), objs
    assert json.loads(docker_cli("network", "inspect", model))[0]["Attachable"] is True
    assert project.ops() == {}
    project.destroy()
    assert swarm_objects(svc) == {"service": [], "config": [], "secret": [], "network": [], "container": []}


def test_swarm_fields_checked_at_preview(project: Project, tmp_path: Path, demo_base: str) -> None:
    demo = _copy_demo(tmp_path / "demo")
    auto = deployment_config(autoScaler={"autoscaleEnabled": True, "minReplicas": 1, "maxReplicas": 4})
    project.write(program(demo, "sw-bad", demo_base, auto, None))
    res = project.preview(check=False)
    assert res.returncode != 0
    assert "deployment_config.autoScaler" in res.output and "Swarm has no autoscaler" in res.output

    # computeType aci alone selects the local target; the stack config mldeploy:target selects swarm.
    project.write(program(demo, "sw-bad", demo_base, deployment_config(computeType="aci"), None, target=None))
    res = project.preview(check=False)
    assert "computeType 'aci'" in res.output and "not run by the local target" in res.output
    project.config("mldeploy:target", "swarm")
    res = project.preview(check=False)
    assert "computeType 'aci'" in res.output and "not run by the swarm target" in res.output and "use 'aks' or 'local'" in res.output

    project.write(program(demo, "sw-bad", demo_base, deployment_config(), "tertiary:1"))
    res = project.preview(check=False)
    assert "regenerate_key" in res.output and "'tertiary:1'" in res.output

    # Fields that name an Azure place are ignored with a warning, and the preview succeeds.
    project.write(program(demo, "sw-ok", demo_base, deployment_config(location="westeurope"), None))
    res = project.preview()
    assert "deployment_config.location is ignored by the swarm target" in res.output


def test_nodes_pull_with_the_pull_identity(settings, push_creds, docker_client, cleanup_swarm) -> None:  # type: ignore[no-untyped-def]
    """Registry auth goes with the service (X-Registry-Auth), not into an image: a node that lacks the image
    pulls it with the AcrPull identity; without credentials Swarm rejects the task and the error says why."""
    import io
    import uuid

    from mldeploy.backends import docker_swarm as sw
    from mldeploy.backends.htpasswd import HtpasswdIdentityStore
    from mldeploy.errors import BackendError

    svc = f"pull-{uuid.uuid4().hex[:6]}"
    cleanup_swarm.append(svc)
    repo = f"{settings.registry}/pytest/{svc}"
    docker_client.images.build(fileobj=io.BytesIO(f"FROM {settings.base_os_image}\nRUN echo {svc} > /id\n".encode()), tag=f"{repo}:v1", rm=True)
    events = push(docker_client, repo, "v1", push_creds.auth_config)
    assert not [e for e in events if "error" in e], events
    digest = docker_client.images.get_registry_data(f"{repo}:v1", auth_config=push_creds.auth_config).id
    image = f"{repo}@{digest}"
    docker_client.images.remove(f"{repo}:v1", force=True)  # this node must pull it
    store = HtpasswdIdentityStore(settings.registry_dir, settings.registry)
    ident, secret = store.create(f"{svc}-pull", "AcrPull", None)
    labels = {"mldeploy.service": svc}

    def spec(name: str) -> dict:  # type: ignore[type-arg]
        from docker import types as dt

        return {
            "name": name,
            "labels": labels,
            "task_template": dt.TaskTemplate(container_spec=dt.ContainerSpec(image, command=["sleep", "600"], labels=labels)),
            "mode": dt.ServiceMode("replicated", replicas=1),
        }

    try:
        anonymous = sw.Swarm(print)
        rollout, since = anonymous.apply(spec(f"{svc}-anon"))
        with pytest.raises(BackendError) as exc:
            anonymous.wait(f"{svc}-anon", image, 1, rollout, 60, since)
        assert "rejected" in str(exc.value) and ("no basic auth credentials" in str(exc.value) or "No such image" in str(exc.value))

        with pytest.raises(BackendError, match=r"logging in to .* with the pull identity"):
            sw.Swarm(print, settings.registry, {"username": ident.client_id, "password": "wrong"})

        pulling = sw.Swarm(print, settings.registry, {"username": ident.client_id, "password": secret})
        rollout, since = pulling.apply(spec(f"{svc}-auth"))
        pulling.wait(f"{svc}-auth", image, 1, rollout, 90, since)
        assert docker_client.images.get(image).id  # pulled onto this node
    finally:
        store.delete(ident.client_id)
        sw.remove(svc)
        with contextlib.suppress(Exception):
            docker_client.images.remove(image, force=True)
