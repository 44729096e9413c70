"""What the inference config's fields do: base image sources and credentials, GPU detection,
environments consistent with the base image, check failures as sentences."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from mldeploy import base_ref
from mldeploy.backends.docker_engine import gpu_support
from mldeploy.backends.oci_registry import OciRegistry
from mldeploy.derived_image import dockerfile, environment_steps
from mldeploy.environment import (
    InstalledDist,
    Lock,
    LockedWheel,
    Requirements,
    _resolution_error,
    changes,
    with_base,
)
from mldeploy.errors import AuthError, BackendError, NotFound, ValidationError
from mldeploy.resources._common import needs, run_checks

DATA = Path(__file__).parent / "data"
WS = "127.0.0.1:5000"
PULL = {"username": "ws-pull", "password": "ws-secret"}


# -- base image sources and credentials ---------------------------------------
def test_base_image_registry_credentials_go_only_to_their_address() -> None:
    reg = {"address": "myregistry.azurecr.io", "username": "sp-id"}
    src = base_ref.source("myimage:v1", "inference_config.baseImage", reg, "sp-secret", WS, PULL)
    assert str(src.ref) == "myregistry.azurecr.io/myimage:v1"  # a bare image name is on the registry's address
    assert src.auth == {"username": "sp-id", "password": "sp-secret"} and src.credentials_from == "baseImageRegistry"
    assert "sp-secret" not in repr(src)
    with pytest.raises(ValidationError) as exc:
        base_ref.source("other.example/myimage:v1", "inference_config.baseImage", reg, "sp-secret", WS, PULL)
    assert exc.value.field == "inference_config.baseImageRegistry" and "make the two agree" in exc.value.message
    with pytest.raises(ValidationError) as exc:
        base_ref.source("myimage:v1", "base_image", {"address": "myregistry.azurecr.io", "username": "u"}, None, WS, PULL)
    assert "no password" in exc.value.message


def test_deployment_identities_are_used_only_on_their_own_registry() -> None:
    ws = base_ref.source(f"{WS}/demo/base@sha256:{'a' * 64}", "base_image", None, None, WS, PULL)
    assert ws.auth == PULL and ws.credentials_from == "pull_identity"
    other = base_ref.source("127.0.0.1:19301/demo/base:v1", "base_image", None, None, WS, PULL)
    assert other.auth is None and other.credentials_from == "anonymous"
    hub = base_ref.source("mldeploy/test-demo-base:session", "base_image", None, None, WS, PULL)
    assert base_ref.is_local_only(hub, "mldeploy/test-demo-base:session", lambda r: True)
    assert not base_ref.is_local_only(hub, "mldeploy/test-demo-base:session", lambda r: False)


class _Refusing:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def __call__(self, *a: Any, **k: Any) -> "_Refusing":
        return self

    def manifest_digest(self, repository: str, reference: str) -> str:
        raise self.exc


@pytest.mark.parametrize(
    ("exc", "field", "words"),
    [
        (AuthError("refused identity 'sp-id' (HTTP 401)"), "inference_config.baseImageRegistry", "fix baseImageRegistry.username / password"),
        (NotFound("no manifest"), "inference_config.baseImage", "has no image"),
        (BackendError("cannot reach registry mcr.microsoft.com: Max retries"), "inference_config.baseImage", "make the registry reachable"),
    ],
)
def test_each_base_image_failure_names_its_field_and_fix(exc: Exception, field: str, words: str) -> None:
    src = base_ref.source("mcr.microsoft.com/azureml/o16n-base/python-assets:latest", "inference_config.baseImage",
                          {"address": "mcr.microsoft.com", "username": "sp-id"}, "sp-secret", WS, PULL)  # fmt: skip
    with pytest.raises(ValidationError) as err:
        base_ref.resolve(src, _Refusing(exc))
    assert err.value.field == field and words in err.value.message
    assert "sp-secret" not in err.value.message


class _TokenRegistry(BaseHTTPRequestHandler):
    """A registry that wants distribution's bearer-token flow (as Docker Hub, MCR and GHCR do)."""

    seen: ClassVar[list[str]] = []

    def log_message(self, *a: Any) -> None:
        pass

    def do_GET(self) -> None:  # the token service
        self.seen.append(f"GET {self.path} auth={self.headers.get('Authorization', '')[:6]}")
        if self.headers.get("Authorization") != "Basic dTpw":  # u:p
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps({"token": "tok"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.seen.append(f"HEAD {self.path} auth={self.headers.get('Authorization', '')[:6]}")
        if self.headers.get("Authorization") != "Bearer tok":
            host = self.headers["Host"]
            self.send_response(401)
            self.send_header("WWW-Authenticate", f'Bearer realm="http://{host}/token",service="reg",scope="repository:a/b:pull"')
            self.end_headers()
            return
        self.send_response(200 if "/manifests/v1" in self.path else 404)
        self.send_header("Docker-Content-Digest", "sha256:" + "b" * 64)
        self.end_headers()


def test_token_authentication_as_public_registries_ask_for_it() -> None:
    srv = HTTPServer(("127.0.0.1", 0), _TokenRegistry)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        address = f"127.0.0.1:{srv.server_port}"
        assert OciRegistry(address, "u", "p").manifest_digest("a/b", "v1") == "sha256:" + "b" * 64
        assert any(s.startswith("GET /token?service=reg&scope=repository%3Aa%2Fb%3Apull auth=Basic") for s in _TokenRegistry.seen)
        with pytest.raises(NotFound):
            OciRegistry(address, "u", "p").manifest_digest("a/b", "v2")
        with pytest.raises(AuthError):
            OciRegistry(address, "u", "wrong").manifest_digest("a/b", "v1")
    finally:
        srv.shutdown()


# -- GPUs ---------------------------------------------------------------------
def _info(name: str) -> dict[str, Any]:
    return json.loads((DATA / "docker_info" / f"{name}.json").read_text())  # type: ignore[no-any-return]


def test_gpu_detection_from_recorded_docker_info() -> None:
    none = gpu_support(_info("this_machine_20.10_no_gpu"))
    assert not none.available and "runtimes io.containerd.runc.v2, io.containerd.runtime.v1.linux, runc" in none.checked
    assert "CDI devices (none)" in none.checked
    nv = gpu_support(_info("nvidia_runtime"))
    assert nv.available and nv.device_requests == ({"Driver": "", "Count": -1, "Capabilities": [["gpu"]]},)
    cdi = gpu_support(_info("cdi_gpus"))
    assert cdi.available and cdi.device_requests == ({"Driver": "cdi", "DeviceIDs": ["nvidia.com/gpu=all"]},)
    empty = gpu_support(_info("cdi_enabled_no_devices"))
    assert not empty.available and "/etc/cdi" in empty.checked


# -- environments consistent with the base ------------------------------------
BASE = [
    InstalledDist(name="azureml-inference-server-http", version="1.5.1", requested=True),
    InstalledDist(name="numpy", version="2.4.6", requested=True),
    InstalledDist(name="opentelemetry-sdk", version="1.33.0"),
    InstalledDist(name="pip", version="23.0.1", requested=True),
    InstalledDist(name="mypkg", version="0.1", requested=True, direct=True, requires=["requests>=2", "rich; extra == 'cli'"]),
]


def test_base_packages_join_the_lock_unless_the_file_pins_them() -> None:
    req = Requirements(requirements=["azureml-inference-server-http==1.4.1"], origins={}, notes=[], python_pin=None)
    full = with_base(req, BASE)
    assert full.requirements == ["azureml-inference-server-http==1.4.1", "requests>=2", "numpy==2.4.6"]
    assert with_base(req, BASE, pinned=False).requirements[-1] == "numpy"
    assert full.origins["numpy"] == "the base image's numpy 2.4.6"


def test_inspect_report_and_lock_changes() -> None:
    report = {"installed": [{"metadata": {"name": "numpy", "version": "2.4.6"}, "requested": True},
                            {"metadata": {"name": "x", "version": "1"}, "direct_url": {"url": "file:///x"}}]}  # fmt: skip
    dists = InstalledDist.from_inspect(report)
    assert [(d.name, d.requested, d.direct) for d in dists] == [("numpy", True, False), ("x", False, True)]
    w = lambda n, v: LockedWheel(name=n, version=v, sha256="0" * 64, filename=f"{n}.whl")  # noqa: E731
    old = Lock(python="3.11", platform="p", wheels=[w("numpy", "2.3.1"), w("zipp", "1")], roots=["numpy"])
    new = Lock(python="3.11", platform="p", wheels=[w("numpy", "2.3.2"), w("six", "1")], roots=["numpy"], remove=["zipp"])
    assert changes(old, new) == ["numpy 2.3.1 -> 2.3.2", "+ six 1", "- zipp 1"]
    assert new.summary() == {"digest": new.digest(), "python": "3.11", "wheels": 2, "packages": {"numpy": "2.3.2"}, "removed_from_base": 1}
    assert new.digest() != new.model_copy(update={"remove": []}).digest()


def test_dead_package_index_is_reported_as_such() -> None:
    stderr = (DATA / "pip_dead_index.stderr").read_text()  # recorded: pip 25 with PIP_INDEX_URL on a closed port
    err = _resolution_error(stderr, Requirements(requirements=["numpy==2.3.1"], origins={}, notes=[], python_pin=None), "3.11")
    assert isinstance(err, ValidationError)
    assert "the package index 127.0.0.1:9 did not answer" in err.message and "no wheel" not in err.message


def test_environment_layer_removes_replaced_base_packages_and_runs_pip_check() -> None:
    lock = {"wheels": [{"name": "a", "version": "1", "sha256": "0" * 64}], "remove": ["opentelemetry-sdk"]}
    run = environment_steps(lock)[1]
    assert "pip uninstall --yes -r /opt/mldeploy/remove.txt" in run and "pip check ||" in run
    assert "'" not in run.split("echo '", 1)[1].split("'", 1)[0]  # the message survives sh's quoting
    assert "pip check" in dockerfile("b@sha256:x", {"entry_script": "score.py"}, [], lock)
    assert "uninstall" not in environment_steps(lock["wheels"])[1]  # a bare wheel list: nothing to remove


# -- check failures -----------------------------------------------------------
def test_check_failures_are_sentences_and_dependent_checks_are_skipped() -> None:
    def bad_config(news: dict[str, Any]) -> None:
        raise ValidationError("inference_config.entryScript", "score.py does not exist")

    @needs("inference_config")
    def base_image(news: dict[str, Any]) -> None:
        raise ValidationError("base_image", "no base image")

    res = run_checks({}, bad_config, base_image)
    assert [(f.property, f.reason) for f in res.failures] == [("", "inference_config.entryScript: score.py does not exist")]


def test_a_bad_inference_config_gives_one_error_not_a_false_base_image_one(tmp_path: Path) -> None:
    from mldeploy.resources.inference_deployment import InferenceDeploymentProvider

    (tmp_path / "src").mkdir()
    ic = tmp_path / "inferenceconfig.json"
    ic.write_text(json.dumps({"entryScript": "nope.py", "sourceDirectory": "src", "baseImage": "myregistry.azurecr.io/base:1"}))
    news = {"service_name": "svc", "target": "local", "inference_config": str(ic), "deployment_config": {"computeType": "local", "port": 19320},
            "base_image": None, "models": [], "stack": "dev", "resource_urn": "urn:x"}  # fmt: skip
    reasons = [f.reason for f in InferenceDeploymentProvider().check({}, news).failures]
    assert len(reasons) == 1 and reasons[0].startswith("inference_config.entryScript: "), reasons
