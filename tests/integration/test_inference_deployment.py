"""InferenceDeployment through the real engine: build, push, pull-only deploy, swap, repair, destroy."""

from __future__ import annotations

import time
from pathlib import Path

import requests

from .conftest import Load, deployment_program
from .conftest import copy_demo as _copy_demo
from .harness import Project

SAMPLE = {"data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}
EXPORTS = {
    "scoring_uri": "dep.scoring_uri",
    "image_ref": "dep.image_ref",
    "container_id": "dep.container_id",
    "pull_id": "pull.client_id",
    "push_id": "push.client_id",
}


def program(demo: Path, svc: str, port: int, base: str, compute_type: str = "local", **kwargs: object) -> str:
    return deployment_program(demo, svc, base, {"computeType": compute_type, "port": port}, EXPORTS, **kwargs)


def _score(uri: str) -> dict:  # type: ignore[type-arg]
    r = requests.post(uri, json=SAMPLE, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _containers(docker_client, svc: str) -> list:  # type: ignore[no-untyped-def,type-arg]
    return docker_client.containers.list(all=True, filters={"label": f"mldeploy.service={svc}"})


def test_deployment_lifecycle(project: Project, tmp_path: Path, demo_base: str, docker_client, settings) -> None:  # type: ignore[no-untyped-def]
    demo = _copy_demo(tmp_path / "demo")
    svc = f"it-{project.name[-6:]}"
    project.write(program(demo, svc, 18890, demo_base))

    project.up()
    outs = project.outputs()
    assert outs["scoring_uri"] == "http://127.0.0.1:18890/score"
    assert _score(outs["scoring_uri"]) == {"predictions": ["setosa", "virginica"]}
    assert "@sha256:" in outs["image_ref"]

    # A second up changes nothing and restarts nothing.
    project.up()
    assert project.ops() == {}
    assert project.outputs()["container_id"] == outs["container_id"]
    assert docker_client.containers.get(outs["container_id"]).attrs["RestartCount"] == 0

    # score.py edit: only the deployment updates, and the new code serves, with no failed request during the swap.
    score = demo / "src" / "score.py"
    score.write_text(score.read_text().replace('return {"predictions"', 'return {"version": 2, "predictions"'))
    preview = project.preview()
    assert project.ops() == {"svc": "update"}
    assert "source_digest" in preview.output
    with Load(outs["scoring_uri"], SAMPLE, timeout=5, pause=0.01, limit=300) as load:
        project.up()
        time.sleep(0.5)
    print(f"\nswap under load: {load.ok} requests answered, {load.failed} failed")
    assert load.ok > 0 and load.failed == 0, (load.ok, load.failed, load.answers)
    assert _score(outs["scoring_uri"]) == {"version": 2, "predictions": ["setosa", "virginica"]}
    after = project.outputs()
    assert after["container_id"] != outs["container_id"]
    assert [c.id for c in _containers(docker_client, svc)] == [after["container_id"]]

    # A score.py whose init() raises: up fails with the traceback, the old container keeps answering.
    good = score.read_text()
    score.write_text(good.replace("def init():\n", "def init():\n    raise RuntimeError('model store offline')\n"))
    failed = project.up(check=False)
    assert failed.returncode != 0
    assert "RuntimeError: model store offline" in failed.output
    assert _score(outs["scoring_uri"])["version"] == 2
    assert [c.id for c in _containers(docker_client, svc)] == [after["container_id"]]
    score.write_text(good)

    # Out-of-band docker rm: refresh notices, up repairs.
    docker_client.containers.get(after["container_id"]).remove(force=True)
    project.refresh()
    assert project.ops() == {"svc": "create"}
    project.up()
    assert _score(outs["scoring_uri"])["version"] == 2

    # Destroy: no container, no tag, no credential left.
    final = project.outputs()
    project.destroy()
    assert _containers(docker_client, svc) == []
    repo_path = final["image_ref"].split("@")[0].split("/", 1)[1]
    digest = final["image_ref"].split("@")[1]
    htpasswd = (settings.registry_dir / "htpasswd").read_text()
    assert final["pull_id"] not in htpasswd and final["push_id"] not in htpasswd
    from mldeploy.backends.htpasswd import HtpasswdIdentityStore

    store = HtpasswdIdentityStore(settings.registry_dir, settings.registry)
    ident, secret = store.create("it-check", "AcrPull", None)
    try:
        r = requests.head(f"http://{settings.registry}/v2/{repo_path}/manifests/{digest}", auth=(ident.client_id, secret), timeout=10)
        assert r.status_code == 404
        tags = requests.get(f"http://{settings.registry}/v2/{repo_path}/tags/list", auth=(ident.client_id, secret), timeout=10)
        assert tags.status_code == 404 or not tags.json().get("tags"), tags.text
    finally:
        store.delete(ident.client_id)
    assert docker_client.images.list(name=final["image_ref"].split("@")[0]) == []


def test_bad_input_fails_at_preview(project: Project, tmp_path: Path, demo_base: str) -> None:
    demo = _copy_demo(tmp_path / "demo")
    (demo / "inferenceconfig.json").write_text('{"entryScript": "missing.py", "sourceDirectory": "src"}')
    project.write(program(demo, "it-bad", 18891, demo_base))
    res = project.preview(check=False)
    assert res.returncode != 0
    assert "inference_config.entryScript" in res.output and "missing.py" in res.output

    (demo / "inferenceconfig.json").write_text('{"entryScript": "score.py", "sourceDirectory": "src", "entryscript": 1}')
    res = project.preview(check=False)
    assert "entryscript: unknown field" in res.output

    (demo / "inferenceconfig.json").write_text('{"entryScript": "score.py", "sourceDirectory": "src"}')
    project.write(program(demo, "it-bad", 18891, demo_base, compute_type="aks", target="local"))
    res = project.preview(check=False)
    assert "computeType 'aks'" in res.output and "not run by the local target" in res.output


def test_a_closing_listener_hands_its_queued_connections_to_the_new_one() -> None:
    """What the local swap relies on, checked on this machine's kernel (make setup sets net.ipv4.tcp_migrate_req=1):
    two listeners share a port (SO_REUSEPORT, as the old and new containers do); the old one, slow to accept, closes
    while 16 clients connect as fast as they can; no connection is reset."""
    import socket
    import threading

    port = 18892

    def listener() -> socket.socket:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("127.0.0.1", port))
        s.listen(128)
        return s

    def serve(s: socket.socket, delay: float) -> None:
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            time.sleep(delay)
            with c:
                try:
                    c.recv(100)
                    c.sendall(b"ok")
                except OSError:
                    pass

    old, new = listener(), listener()
    for s, delay in ((old, 0.05), (new, 0.0)):
        threading.Thread(target=serve, args=(s, delay), daemon=True).start()
    counts = {"ok": 0, "failed": 0}
    lock = threading.Lock()

    def client() -> None:
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                    c.sendall(b"x")
                    result = "ok" if c.recv(10) == b"ok" else "failed"
            except OSError:
                result = "failed"
            with lock:
                counts[result] += 1

    clients = [threading.Thread(target=client) for _ in range(16)]
    for t in clients:
        t.start()
    time.sleep(0.3)
    old.close()  # the old container stops, connections still queued on its socket
    for t in clients:
        t.join()
    new.close()
    assert counts == {"ok": 3200, "failed": 0}, counts
