"""Every field of the document's inference config does what it says (issue 16).

A second registry front plays a third-party registry: its own nginx on
127.0.0.1:19301 in front of the same storage, with its own htpasswd (one
identity that the local identity store knows nothing of) and an access log
that records the username of every request
($MLDEPLOY_HOME/logs/fidelity-front-19301.access.log). The base image is
referenced through it, with ``baseImageRegistry`` giving that identity.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import requests
from mldeploy.settings import Settings

from .conftest import Creds, copy_demo, deployment_program, push
from .harness import Project

FRONT_PORT = 19301
DEAD_PORT = 19349  # nothing listens here
SAMPLE = {"data": [[5.1, 3.5, 1.4, 0.2]]}


class Front:
    def __init__(self, address: str, username: str, password: str, log: Path, htpasswd: Path) -> None:
        self.address, self.username, self.password, self.log, self.htpasswd = address, username, password, log, htpasswd

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def set_password(self, password: str) -> None:
        """Rotate the front's identity (nginx reads its htpasswd on every request)."""
        self.htpasswd.write_text(f"{self.username}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}\n")
        self.password = password


@pytest.fixture(scope="module")
def front(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    """A second nginx front (the 'third-party registry'), read-only, with its own identity and an access log."""
    if shutil.which("nginx") is None:
        pytest.fail("nginx is not installed (make setup installs it)", pytrace=False)
    d = tmp_path_factory.mktemp("front")
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (d / "tmp" / sub).mkdir(parents=True)
    username, password = f"thirdparty-{secrets.token_hex(3)}", secrets.token_urlsafe(24)
    (d / "htpasswd").touch(mode=0o600)
    log = settings.logs_dir / f"fidelity-front-{FRONT_PORT}.access.log"
    log.unlink(missing_ok=True)
    # The registry's own socket, wherever setup put it (config.yml's http.addr).
    addr = next(line.split(":", 1)[1].strip() for line in (settings.registry_dir / "config.yml").read_text().splitlines() if line.strip().startswith("addr:"))
    sock = Path(addr)
    (d / "nginx.conf").write_text(
        f"""user root;
worker_processes 1;
daemon on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
  log_format who '$remote_user "$request" $status';
  access_log {log} who;
  client_body_temp_path {d}/tmp/body; proxy_temp_path {d}/tmp/proxy; fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi; scgi_temp_path {d}/tmp/scgi;
  upstream storage {{ server unix:{sock}; }}
  server {{
    listen 127.0.0.1:{FRONT_PORT};
    client_max_body_size 0;
    location /v2/ {{
      auth_basic "third-party registry";
      auth_basic_user_file {d}/htpasswd;
      limit_except GET HEAD {{ deny all; }}
      add_header 'Docker-Distribution-Api-Version' 'registry/2.0' always;
      proxy_pass http://storage;
      proxy_set_header Host $http_host;
      proxy_read_timeout 900;
    }}
  }}
}}
"""
    )
    subprocess.run(["nginx", "-c", str(d / "nginx.conf")], check=True, capture_output=True)
    try:
        for _ in range(50):
            try:
                if requests.get(f"http://127.0.0.1:{FRONT_PORT}/v2/", timeout=1).status_code == 401:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        f = Front(f"127.0.0.1:{FRONT_PORT}", username, password, log, d / "htpasswd")
        f.set_password(password)
        yield f
    finally:
        pid = int((d / "nginx.pid").read_text())
        subprocess.run(["kill", "-QUIT", str(pid)], check=False)


@pytest.fixture(scope="module")
def front_base(front: Front, demo_base: str, docker_client, push_creds: Creds, settings: Settings) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The demo base image in the registry's storage, as the third-party front names it; its manifest is deleted afterwards."""
    from mldeploy.backends.oci_registry import OciRegistry

    repo = f"fidelity-{secrets.token_hex(3)}/base"
    docker_client.images.get(demo_base).tag(f"{settings.registry}/{repo}", tag="v1")
    for ev in push(docker_client, f"{settings.registry}/{repo}", "v1", push_creds.auth_config):
        assert "error" not in ev, ev
    docker_client.images.remove(f"{settings.registry}/{repo}:v1")
    yield f"{front.address}/{repo}:v1"
    reg = OciRegistry(settings.registry, push_creds.username, push_creds.password)
    reg.delete_manifest(repo, reg.manifest_digest(repo, "v1"))


def _inference_config(demo: Path, base_image: str | None, registry: dict[str, str] | str | None, gpu: bool = False) -> None:
    doc = json.loads((demo / "inferenceconfig.json").read_text())
    doc.update({"baseImage": base_image, "baseImageRegistry": registry, "enableGpu": gpu})
    (demo / "inferenceconfig.json").write_text(json.dumps(doc, indent=3))


def _program(demo: Path, svc: str, port: int) -> str:
    exports = {"scoring_uri": "dep.scoring_uri", "environment": "dep.environment", "image_ref": "dep.image_ref",
               "push_user": "push.client_id", "pull_user": "pull.client_id"}  # fmt: skip
    return deployment_program(demo, svc, None, {"computeType": "local", "port": port}, exports)  # type: ignore[arg-type]


def _nothing_created(project: Project, svc: str, docker_client, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    state = json.loads(project.export())
    assert [r["type"] for r in state["deployment"].get("resources") or [] if r["type"] != "pulumi:pulumi:Stack"] == []
    assert docker_client.containers.list(all=True, filters={"label": f"mldeploy.service={svc}"}) == []
    identities = json.loads((settings.registry_dir / "identities.json").read_text())
    assert not [i for i in identities.values() if str(i.get("display_name", "")).startswith(svc)]
    from mldeploy.backends.mlflow_registry import MlflowModelRegistry  # the local model registry: no version of its model

    assert MlflowModelRegistry(settings.mlflow_dir)._client().search_model_versions(f"name='{svc}-iris'") == []


def test_base_image_registry_is_checked_at_preview_and_used_for_the_pull(  # type: ignore[no-untyped-def]
    project: Project, tmp_path: Path, front: Front, front_base: str, docker_client, settings: Settings
) -> None:
    demo = copy_demo(tmp_path / "demo")
    svc = f"fid-{project.name[-6:]}"
    project.write(_program(demo, svc, 19310))
    right = {"address": front.address, "username": front.username, "password": front.password}

    # The document's own inferenceconfig.json values: a base image on mcr.microsoft.com, which this machine cannot reach.
    _inference_config(demo, "mcr.microsoft.com/azureml/o16n-sample-user-base/ubuntu-miniconda", "mcr.microsoft.com")
    res = project.pulumi("up", "--yes", check=False)
    assert res.returncode != 0
    assert "inference_config.baseImage: cannot check base image mcr.microsoft.com/azureml/o16n-sample-user-base/ubuntu-miniconda" in res.output
    assert "{<nil>}" not in res.output and "no base image" not in res.output
    _nothing_created(project, svc, docker_client, settings)

    # Wrong password, unreachable registry, unknown image: each fails preview (and up) naming the field; nothing is created.
    cases = [
        (front_base, {**right, "password": "wrong-" + secrets.token_hex(4)}, "inference_config.baseImageRegistry: registry 127.0.0.1:19301 refused"),
        (f"127.0.0.1:{DEAD_PORT}/x/base:v1", {**right, "address": f"127.0.0.1:{DEAD_PORT}"}, f"inference_config.baseImage: cannot check base image 127.0.0.1:{DEAD_PORT}/x/base:v1"),
        (front_base.replace(":v1", ":v404"), right, "inference_config.baseImage: registry 127.0.0.1:19301 has no image"),
    ]  # fmt: skip
    for base, registry, message in cases:
        _inference_config(demo, base, registry)
        res = project.pulumi("up", "--yes", check=False)
        assert res.returncode != 0 and message in res.output, res.output[-3000:]
        assert front.password not in res.output and "{<nil>}" not in res.output
        _nothing_created(project, svc, docker_client, settings)

    # The right credentials: deployed, and the base image was pulled through the front with exactly them.
    _inference_config(demo, front_base, right)
    seen_before = len(front.lines())
    project.up()
    outs = project.outputs()
    assert requests.post(outs["scoring_uri"], json=SAMPLE, timeout=10).json() == {"predictions": ["setosa"]}
    log = front.lines()[seen_before:]
    ours = [line for line in log if line.startswith(f"{front.username} ") and line.endswith(" 200")]
    assert any("/manifests/v1 " in line for line in ours), log  # the check at preview (the tag)
    assert any("/manifests/sha256:" in line for line in ours), log  # Docker Engine's pull, by the digest found at preview
    assert not any(line.startswith((outs["push_user"], outs["pull_user"])) for line in front.lines()), "a local identity reached the third-party registry"
    state = project.export()
    assert front.password not in state

    # A model edit's `preview --diff` says why in a few lines (not the unchanged environment, not every input).
    (demo / "model" / "NOTES.txt").write_text("retrained\n")
    res = project.preview()
    lines = res.stdout.splitlines()
    assert len(lines) < 40, res.stdout
    assert "environment" not in res.stdout.split("--outputs:--")[0] and "push_username" not in res.stdout, res.stdout
    assert "skipped" not in res.output  # the conda file's notes ("skipped ... 'pip'") came once, when the lock was resolved
    print(f"\nmodel edit: preview --diff is {len(lines)} lines")
    (demo / "model" / "NOTES.txt").unlink()

    # A rotated password is a change in the diff, shown as a secret, never its value; applying it rebuilds nothing.
    old = front.password
    front.set_password(secrets.token_urlsafe(24))
    res = project.preview(check=False)
    assert res.returncode != 0 and "inference_config.baseImageRegistry: registry 127.0.0.1:19301 refused" in res.output
    _inference_config(demo, front_base, {**right, "password": front.password})
    preview = project.preview()
    assert project.ops() == {"svc": "update"}
    assert "base_registry_password" in preview.output and "[secret]" in preview.output
    assert front.password not in preview.output and old not in preview.output
    res = project.up()
    assert "building" not in res.output and project.outputs()["image_ref"] == outs["image_ref"]
    assert front.password not in project.export()
    project.destroy()


def test_gpu_request_is_refused_where_docker_cannot_give_gpus(project: Project, tmp_path: Path, demo_base: str) -> None:
    """This machine's Docker Engine has no nvidia runtime and no CDI devices: enableGpu fails preview saying what was checked."""
    demo = copy_demo(tmp_path / "demo")
    _inference_config(demo, None, None, gpu=True)
    project.write(deployment_program(demo, f"gpu-{project.name[-6:]}", demo_base, {"computeType": "local", "port": 19311}, {}))
    res = project.preview(check=False)
    assert res.returncode != 0
    assert "enableGpu" in res.output and "docker info: runtimes" in res.output and "CDI devices (none)" in res.output


def test_base_image_built_in_the_same_up_is_checked_before_anything_of_the_deployment_is_pushed(  # type: ignore[no-untyped-def]
    project: Project, tmp_path: Path, push_creds: Creds, docker_client, settings: Settings
) -> None:
    """A first deploy whose BaseImage is built in the same `up`: the python= pin cannot be checked at preview
    (the image does not exist yet); it is checked in the deployment's create, before its own image is built or pushed."""
    demo = copy_demo(tmp_path / "demo")
    svc = f"fidb-{project.name[-6:]}"
    conda = demo / "src" / "infenv.yml"
    conda.write_text(conda.read_text().replace("python=3.11", "python=3.9"))
    project.write(
        "import pulumi\n"
        "from mldeploy import BaseImageSpec, ModelService\n"
        f"D = {str(demo)!r}\n"
        f"s = ModelService('fb', service_name={svc!r}, models={{{svc + '-iris'!r}: D + '/model'}},\n"
        "    inference_config=D + '/inferenceconfig.json', deployment_config={'computeType': 'local', 'port': 19313},\n"
        f"    base_image=BaseImageSpec(context=D + '/base', repository={'fidelity/' + svc + '-base'!r}, tag='v1'))\n"
        "pulumi.export('scoring_uri', s.scoring_uri)\n"
    )
    res = project.pulumi("up", "--yes", check=False)
    assert res.returncode != 0
    assert "inference_config.condaFile" in res.output and "pins python=3.9 but the base image has Python 3.11" in res.output, res.output[-3000:]
    tags = requests.get(f"http://{settings.registry}/v2/mldeploy/{svc}/tags/list", headers={"Authorization": push_creds.basic}, timeout=10)
    assert tags.status_code == 404, tags.text  # no derived image was pushed
    assert docker_client.containers.list(all=True, filters={"label": f"mldeploy.service={svc}"}) == []

    conda.write_text(conda.read_text().replace("python=3.9", "python=3.11"))
    project.up()
    assert requests.post(project.outputs()["scoring_uri"], json=SAMPLE, timeout=10).json() == {"predictions": ["setosa"]}
    project.destroy()


def test_an_older_inference_server_than_the_base_has_gives_a_consistent_environment(  # type: ignore[no-untyped-def]
    project: Project, tmp_path: Path, demo_base: str
) -> None:
    """The conda file pins azureml-inference-server-http 1.4.1 over a base image carrying 1.5.1 (issue 16.4)."""
    demo = copy_demo(tmp_path / "demo")
    conda = demo / "src" / "infenv.yml"
    conda.write_text(conda.read_text().replace("      - joblib==1.5.1\n", "      - joblib==1.5.1\n      - azureml-inference-server-http==1.4.1\n"))
    exports = {"scoring_uri": "dep.scoring_uri", "environment": "dep.environment", "image_ref": "dep.image_ref"}
    project.write(deployment_program(demo, f"fido-{project.name[-6:]}", demo_base, {"computeType": "local", "port": 19314}, exports))
    project.up()
    outs = project.outputs()
    assert outs["environment"]["packages"]["azureml-inference-server-http"] == "1.4.1"
    assert int(outs["environment"]["removed_from_base"]) > 0  # 1.5.1's own dependencies (opentelemetry-sdk, ...) are gone
    run = ["docker", "run", "--rm", "--network", "none", "--entrypoint", "pip", outs["image_ref"]]
    check = subprocess.run([*run, "check"], capture_output=True, text=True)
    assert check.returncode == 0 and "No broken requirements found." in check.stdout, check.stdout + check.stderr
    listed = subprocess.run([*run, "list", "--format", "json"], capture_output=True, text=True, check=True).stdout
    versions = {d["name"].lower(): d["version"] for d in json.loads(listed)}
    assert versions["azureml-inference-server-http"] == "1.4.1" and "opentelemetry-sdk" not in versions
    assert requests.post(outs["scoring_uri"], json=SAMPLE, timeout=10).json() == {"predictions": ["setosa"]}
    project.destroy()
