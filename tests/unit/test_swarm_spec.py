"""The swarm target without a swarm: deployment config -> service specs, nginx front, keys, drift, target selection."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from mldeploy.backends import docker_swarm as sw
from mldeploy.errors import ValidationError
from mldeploy.resources import inference_deployment as idp

AKS = {
    "computeType": "aks",
    "numReplicas": 3,
    "containerResourceRequirements": {"cpu": 0.5, "memoryInGB": 1.5},
    "livenessProbeRequirements": {"periodSeconds": 5, "initialDelaySeconds": 30, "timeoutSeconds": 3, "failureThreshold": 4},
    "scoringTimeoutMs": 90000,
    "maxConcurrentRequestsPerContainer": 2,
    "authEnabled": True,
    "tags": {"team": "ml"},
}


def test_deployment_config_becomes_settings() -> None:
    s = sw.settings_from_deployment(AKS)
    assert s.replicas == 3
    assert s.nano_cpus == 500_000_000 and s.memory_bytes == int(1.5 * 1024**3)
    assert s.probe == sw.Probe(period=5, initial_delay=30, timeout=3, failure_threshold=4)
    assert s.probe.monitor_seconds == 20
    assert (s.scoring_timeout_ms, s.workers, s.auth_enabled, s.tags) == (90000, 2, True, {"team": "ml"})


def test_unset_fields_take_aks_defaults() -> None:
    s = sw.settings_from_deployment({"computeType": "aks", "livenessProbeRequirements": {"periodSeconds": 2}})
    assert s.replicas == 1 and s.nano_cpus is None and s.memory_bytes is None
    assert s.probe == sw.Probe(period=2, initial_delay=310, timeout=2, failure_threshold=3)
    assert s.scoring_timeout_ms is None and s.workers is None and s.auth_enabled is False


def test_model_service_spec() -> None:
    s = sw.settings_from_deployment(AKS)
    labels = sw.base_labels("iris", "dev", "urn:x", s.tags, "the iris model")
    spec = sw.model_service_spec("iris", "reg/mldeploy/iris@sha256:abc", "score.py", s, labels, "mldeploy-iris")
    assert spec["name"] == "mldeploy-iris"
    assert spec["labels"] == {
        "mldeploy.service": "iris",
        "mldeploy.stack": "dev",
        "mldeploy.urn": "urn:x",
        "mldeploy.tag.team": "ml",
        "mldeploy.description": "the iris model",
        "mldeploy.role": "model",
    }
    tt = spec["task_template"]
    cs = tt["ContainerSpec"]
    assert cs["Image"] == "reg/mldeploy/iris@sha256:abc"
    assert cs["Command"] == ["azmlinfsrv"] and cs["Args"] == ["--entry_script", "/var/azureml-app/score.py", "--port", "5001"]
    env = dict(e.split("=", 1) for e in cs["Env"])
    assert env == {"MLDEPLOY_BIND_HOST": "0.0.0.0", "SCORING_TIMEOUT_MS": "90000", "WORKER_TIMEOUT": "300", "WORKER_COUNT": "2"}
    hc = cs["Healthcheck"]
    assert hc["Test"][:2] == ["CMD", "python3"] and "http://127.0.0.1:5001/" in hc["Test"][3] and "timeout=3" in hc["Test"][3]
    assert (hc["Interval"], hc["Timeout"], hc["Retries"], hc["StartPeriod"]) == (5 * sw.NS, 3 * sw.NS, 4, 30 * sw.NS)
    assert tt["Resources"] == {"Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": int(1.5 * 1024**3)}}
    assert tt["Networks"] == [{"Target": "mldeploy-iris"}]
    assert spec["mode"] == {"replicated": {"Replicas": 3}}
    assert spec["update_config"] == {
        "Parallelism": 1,
        "Delay": 0,
        "FailureAction": "rollback",
        "Monitor": 20 * sw.NS,
        "MaxFailureRatio": 0,
        "Order": "start-first",
    }
    assert spec["rollback_config"]["FailureAction"] == "pause" and spec["rollback_config"]["Order"] == "start-first"
    assert spec["endpoint_spec"] == {"Mode": "dnsrr"}  # Swarm's DNS, no IPVS VIP


def test_scoring_timeout_beyond_the_worker_timeout_raises_it() -> None:
    s = sw.settings_from_deployment({**AKS, "scoringTimeoutMs": 600_000})
    env = dict(e.split("=", 1) for e in sw.model_service_spec("x", "i", "s.py", s, {}, "n")["task_template"]["ContainerSpec"]["Env"])
    assert env["WORKER_TIMEOUT"] == "610"


@pytest.mark.parametrize(("mode", "order", "endpoint"), [("host", "stop-first", "dnsrr"), ("ingress", "start-first", "vip")])
def test_front_service_spec(mode: str, order: str, endpoint: str) -> None:
    spec = sw.front_service_spec("iris", "reg/front@sha256:f", 8890, mode, ("cid", "cname"), ("sid", "sname"), {"a": "b"}, "net")
    assert spec["name"] == "mldeploy-iris-front" and spec["mode"] == {"global": {}}
    assert spec["endpoint_spec"] == {
        "Mode": endpoint,
        "Ports": [{"Protocol": "tcp", "PublishedPort": 8890, "TargetPort": 8080, "PublishMode": mode}],
    }
    assert spec["update_config"]["Order"] == order and spec["update_config"]["FailureAction"] == "rollback"
    cs = spec["task_template"]["ContainerSpec"]
    assert cs["Configs"][0]["File"]["Name"] == "/etc/mldeploy/nginx.conf"
    assert cs["Secrets"][0]["File"]["Name"] == "mldeploy-keys" and cs["Secrets"][0]["SecretName"] == "sname"
    assert cs["Labels"]["mldeploy.port"] == "8890" and cs["Labels"]["mldeploy.role"] == "front"


def test_unsupported_fields() -> None:
    errors, warnings = sw.unsupported({**AKS, "location": "westeurope", "description": "kept"})
    assert errors == [] and warnings == ["deployment_config.location is ignored by the swarm target: an Azure region; a swarm runs where its nodes are"]
    errors, _ = sw.unsupported(
        {
            "autoScaler": {"autoscaleEnabled": True, "maxReplicas": 4},
            "containerResourceRequirements": {"gpu": 1},
            "sslEnabled": True,
            "maxQueueWaitMs": 500,
            "livenessProbeRequirements": {"successThreshold": 2},
        }
    )
    assert [f for f, _m in errors] == [
        "autoScaler",
        "containerResourceRequirements.gpu",
        "sslEnabled",
        "maxQueueWaitMs",
        "livenessProbeRequirements.successThreshold",
    ]
    assert "Swarm has no autoscaler" in errors[0][1]
    assert sw.unsupported({"autoScaler": {"autoscaleEnabled": False}}) == ([], [])


def test_publish_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLDEPLOY_SWARM_PUBLISH_MODE", raising=False)
    assert sw.publish_mode() == "loopback"  # the front listens on 127.0.0.1 unless the operator asks for more
    monkeypatch.setenv("MLDEPLOY_SWARM_PUBLISH_MODE", "host")
    assert sw.publish_mode() == "host"
    monkeypatch.setenv("MLDEPLOY_SWARM_PUBLISH_MODE", "bogus")
    with pytest.raises(sw.BackendError, match="use 'loopback'"):
        sw.publish_mode()
    monkeypatch.setenv("MLDEPLOY_SWARM_PUBLISH_MODE", "ingress")
    monkeypatch.setattr(sw, "ipvs_available", lambda: False)
    with pytest.raises(sw.BackendError, match="no IPVS"):
        sw.publish_mode()
    monkeypatch.setattr(sw, "ipvs_available", lambda: True)
    assert sw.publish_mode() == "ingress"


def test_loopback_front_container() -> None:
    """The loopback front publishes on 127.0.0.1 only, joins the deployment's overlay, and is replaced when its image, port
    or network changes (the spec label), not when only its configuration does."""
    spec = sw.front_container_spec("iris", "reg/front@sha256:f", 8890, "mldeploy-iris", {"mldeploy.service": "iris"})
    assert spec["name"] == "mldeploy-iris-front" and spec["image"] == "reg/front@sha256:f"
    assert spec["labels"]["mldeploy.role"] == "front" and spec["labels"]["mldeploy.port"] == "8890"
    host = sw.front_host_config(8890, "mldeploy-iris")
    assert host["port_bindings"] == {8080: ("127.0.0.1", 8890)} and host["network_mode"] == "mldeploy-iris"
    assert host["restart_policy"] == {"Name": "unless-stopped"}
    other = {
        sw.front_container_spec("iris", "reg/front@sha256:g", 8890, "mldeploy-iris", {})["labels"][sw.LABEL_FRONT_SPEC],
        sw.front_container_spec("iris", "reg/front@sha256:f", 8891, "mldeploy-iris", {})["labels"][sw.LABEL_FRONT_SPEC],
        sw.front_container_spec("iris", "reg/front@sha256:f", 8890, "other", {})["labels"][sw.LABEL_FRONT_SPEC],
    }
    assert spec["labels"][sw.LABEL_FRONT_SPEC] not in other and len(other) == 3


def test_front_files_tar_keeps_the_keys_private() -> None:
    import io
    import tarfile

    files = sw.front_files("conf", sw.keys_file("k1", "k2"))
    with tarfile.open(fileobj=io.BytesIO(sw.tar_files(files))) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert {"etc", "etc/mldeploy", "run", "run/secrets"} <= set(members)
        assert members["run/secrets/mldeploy-keys"].mode == 0o600 and members["etc/mldeploy/nginx.conf"].mode == 0o644
        keys = tar.extractfile("run/secrets/mldeploy-keys")
        assert keys is not None and keys.read() == b'"Bearer k1" 1;\n"Bearer k2" 1;\n'
    # Without auth the keys file is emptied, so keys of an earlier configuration do not linger in the container.
    assert sw.front_files("conf", None)["run/secrets/mldeploy-keys"] == (b"", 0o600)


def test_nginx_conf_names_its_generation_on_the_liveness_route() -> None:
    conf = sw.nginx_conf("mldeploy-iris", True, None, generation="abc123")
    liveness = conf[conf.index("location = /") : conf.index("location / {")]
    assert 'add_header X-Mldeploy-Front "abc123" always;' in liveness
    assert "X-Mldeploy-Front" not in sw.nginx_conf("mldeploy-iris", True, None)


@pytest.mark.parametrize("auth", [True, False])
def test_nginx_conf_is_valid_nginx(tmp_path: Path, auth: bool) -> None:
    """The generated configuration passes the real nginx's own check (`nginx -t`), keys file included."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        pytest.skip("nginx is not installed (make setup installs nginx-light)")
    keys = tmp_path / "keys"
    keys.write_text(sw.keys_file("k" * 43, "s" * 43))  # token_urlsafe(32) is 43 characters
    conf = sw.nginx_conf("mldeploy-iris", auth, 90000, generation="g1").replace("/tmp/", f"{tmp_path}/").replace("/run/secrets/mldeploy-keys", str(keys))
    assert ("$mldeploy_key_ok" in conf) is auth and "proxy_read_timeout 95s;" in conf
    (tmp_path / "nginx.conf").write_text(conf)
    res = subprocess.run([nginx, "-t", "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_local_target_still_refuses_aks_and_swarm_checks_fields() -> None:
    with pytest.raises(ValidationError, match="not run by the local target; use 'local'"):
        idp._resolve_deployment({"target": "local", "deployment_config": {"computeType": "aks"}})
    news = {"target": "swarm", "service_name": "x", "deployment_config": {"computeType": "aks", "autoScaler": {"maxReplicas": 3}}}
    with pytest.raises(ValidationError) as exc:
        idp._resolve_deployment(news)
    assert exc.value.field == "deployment_config.autoScaler" and "cannot honour" in exc.value.message
    ok = {"target": "swarm", "service_name": "x", "deployment_config": {"computeType": "aks", "numReplicas": 2}}
    idp._resolve_deployment(ok)
    assert ok["deployment"]["numReplicas"] == 2 and ok["port"] == idp.DEFAULT_PORT


class _UpdatingApi:
    """A swarm manager whose service reports ``states`` as its UpdateStatus, one per inspect (then the last one)."""

    def __init__(self, *states: str) -> None:
        self.states, self.events = list(states), list[str]()

    def inspect_service(self, name: str) -> dict[str, object]:
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        self.events.append(f"inspect: {state}")
        template = {"ContainerSpec": {"Image": "reg/m@sha256:2"}}
        return {"ID": "s1", "Version": {"Index": 7}, "UpdatedAt": "t1", "UpdateStatus": {"State": state}, "Spec": {"TaskTemplate": template}}

    def update_service(self, *args: object, **kwargs: object) -> None:
        self.events.append("update")


def _swarm(api: object, lines: list[str]) -> sw.Swarm:
    swarm = sw.Swarm.__new__(sw.Swarm)  # no Docker Engine: the manager is the fake
    swarm.progress, swarm.api = lines.append, api  # type: ignore[assignment]
    return swarm


def test_apply_lets_swarm_finish_an_interrupted_runs_update_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """An update of the same spec would cancel Swarm's monitored rollout (it goes on unmonitored, with no status to wait for)."""
    monkeypatch.setattr(sw.time, "sleep", lambda _s: None)
    api, lines = _UpdatingApi("updating", "updating", "completed"), list[str]()
    spec = {"name": "mldeploy-x", "task_template": {"ContainerSpec": {"Image": "reg/m@sha256:2"}}}
    assert _swarm(api, lines).apply(spec, timeout=60) == (False, "t1")
    assert api.events == ["inspect: updating", "inspect: updating", "inspect: completed", "update", "inspect: completed"]
    assert lines == ["mldeploy-x: Swarm is still rolling out an earlier update (updating; was a run interrupted?); waiting for it to finish"]


def test_apply_updates_a_stuck_update_after_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sw.time, "sleep", lambda _s: None)
    api, lines = _UpdatingApi("rollback_started"), list[str]()
    _swarm(api, lines).apply({"name": "mldeploy-x", "task_template": {}}, timeout=-1)
    assert api.events[-2:] == ["update", "inspect: rollback_started"]
    assert lines == ["mldeploy-x: Swarm's update in progress (rollback_started) did not finish within -1s; updating it anyway"]


def test_wait_http_waits_for_the_fronts_new_configuration() -> None:
    """After a reload, ``wait_http(generation=...)`` returns only once answers come from the new configuration."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen = []

    class Front(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(1)
            self.send_response(200)
            self.send_header(sw.FRONT_GENERATION_HEADER, "new" if len(seen) > 3 else "old")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Front)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        sw.wait_http(url, timeout=10, poll=0.01, generation="new")
        assert len(seen) == 4
        with pytest.raises(sw.BackendError, match="configuration new, not other"):
            sw.wait_http(url, timeout=0.3, poll=0.05, generation="other")
        sw.wait_http(url, timeout=1)  # without a generation any 200 will do
    finally:
        server.shutdown()


class _FrontApi:
    """A Docker Engine holding one front container, whose files are a dict (put_archive / get_archive on them)."""

    def __init__(self, spec_label: str, applied: str | None, running: bool = True, labels: dict[str, str] | None = None) -> None:
        self.files: dict[str, bytes] = {} if applied is None else {sw.FRONT_APPLIED: applied.encode()}
        self.labels = {**(labels or {}), sw.LABEL_FRONT_SPEC: spec_label}
        self.running, self.events = running, list[str]()

    def inspect_container(self, name: str) -> dict[str, object]:
        return {"Id": "c1", "Config": {"Labels": self.labels}, "State": {"Running": self.running}}

    def put_archive(self, cid: str, path: str, data: bytes) -> None:
        import io
        import tarfile

        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for m in tar.getmembers():
                if m.isfile():
                    f = tar.extractfile(m)
                    assert f is not None
                    self.files[m.name] = f.read()
                    self.events.append(f"put {m.name}")

    def get_archive(self, cid: str, path: str) -> tuple[list[bytes], dict[str, object]]:
        import io
        import tarfile

        name = path.lstrip("/")
        if name not in self.files:
            raise sw.docker.errors.NotFound("no such file")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(name.rsplit("/", 1)[-1])
            info.size = len(self.files[name])
            tar.addfile(info, io.BytesIO(self.files[name]))
        return [buf.getvalue()], {}

    def exec_create(self, cid: str, cmd: list[str]) -> dict[str, str]:
        self.events.append(" ".join(cmd))
        return {"Id": "e1"}

    def exec_start(self, exec_id: str) -> bytes:
        return b"nginx: configuration file /etc/mldeploy/nginx.conf test is successful"

    def exec_inspect(self, exec_id: str) -> dict[str, int]:
        return {"ExitCode": 0}

    def kill(self, cid: str, signal: str) -> None:
        self.events.append(f"kill {signal}")

    def remove_container(self, cid: str, force: bool) -> None:
        self.events.append("remove")


@pytest.mark.parametrize("applied", [None, "gen0"])
def test_front_reloads_in_place_until_the_generation_is_recorded(applied: str | None) -> None:
    """New files, a config check, SIGHUP, then the generation: a run killed before the last step (the generation still old,
    or missing) reloads again; a front already on the generation is left alone."""
    image, port, net = "reg/front@sha256:f", 8890, "mldeploy-iris"
    label = sw.front_container_spec("iris", image, port, net, {})["labels"][sw.LABEL_FRONT_SPEC]
    files = sw.front_files("conf", sw.keys_file("k1", "k2"))
    api, lines = _FrontApi(label, applied), list[str]()
    _swarm(api, lines).run_front("iris", image, port, net, {}, files, "gen1", None, 60)
    assert api.events == [
        f"put {sw.FRONT_CONF}",
        f"put {sw.FRONT_KEYS}",
        f"nginx -t -c /{sw.FRONT_CONF}",
        "kill SIGHUP",
        f"put {sw.FRONT_APPLIED}",
    ]
    assert api.files[sw.FRONT_APPLIED] == b"gen1" and api.files[sw.FRONT_KEYS] == b'"Bearer k1" 1;\n"Bearer k2" 1;\n'
    assert lines == ["mldeploy-iris-front: configuration reloaded in place (nginx reload, no connection dropped)"]
    api.events.clear()
    _swarm(api, lines).run_front("iris", image, port, net, {}, files, "gen1", None, 60)
    assert api.events == []


def test_a_front_of_another_stack_is_not_touched() -> None:
    ours = {"mldeploy.service": "iris", "mldeploy.stack": "a", "mldeploy.urn": "urn:pulumi:a::p::t::svc"}
    theirs = {"mldeploy.service": "iris", "mldeploy.stack": "b", "mldeploy.urn": "urn:pulumi:b::p::t::svc"}
    api = _FrontApi("other", "gen0", labels=theirs)
    with pytest.raises(sw.BackendError, match="belongs to stack p/b"):
        _swarm(api, []).run_front("iris", "reg/front@sha256:f", 8890, "mldeploy-iris", ours, {}, "gen1", None, 60)
    assert api.events == []


def test_two_deployments_needing_the_front_image_at_once_build_it_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Two stacks deploying at once on a machine without the front image: one builds it, the other waits and
    pushes the same image. (Two builds give two digests under one tag, and the first stack's next up then
    replaced its front, stop-first: 21 refused requests during a score.py rollout on a fresh machine.)"""
    import threading
    import time

    from mldeploy.backends import docker_engine
    from mldeploy.errors import NotFound

    tags: dict[str, str] = {}
    builds: list[str] = []

    class FakeEngine:
        def __init__(self, progress: object) -> None:
            pass

        def inspect(self, ref: str) -> dict[str, str]:
            if ref not in tags:
                raise NotFound(ref)
            return {"Id": tags[ref]}

        def build(self, ctx: str, dockerfile: str, ref: str, args: object, log: str, label: str) -> None:
            time.sleep(0.3)  # an apt-get layer: each build makes another image
            builds.append(ref)
            tags[ref] = f"sha256:{len(builds)}"

        def push(self, ref: str, auth: object) -> str:
            return tags[ref].replace("sha256:", "sha256:pushed-")

    monkeypatch.setattr(docker_engine, "DockerEngine", FakeEngine)
    said: list[str] = []
    got: list[str] = []

    def deploy() -> None:
        got.append(sw.front_image("127.0.0.1:5000", "mldeploy/debian:bookworm", {}, "/dev/null", tmp_path / "cache" / sw.FRONT_IMAGE_LOCK, said.append))

    threads = [threading.Thread(target=deploy) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1, builds
    assert got[0] == got[1] == "127.0.0.1:5000/mldeploy/swarm-front@sha256:pushed-1"
    assert any("waiting for another deployment building or pushing the nginx front image" in m for m in said), said
