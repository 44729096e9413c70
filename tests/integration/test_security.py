"""The local security model and bounded storage, against the real registry, nginx, Pulumi and Docker Engine.

Another local user is ``nobody`` (``setpriv``): it must neither reach the
registry without credentials (unix socket, TCP) nor read what a stack keeps
(state, secrets passphrase, identity hashes, model artifacts). Push identities
scoped to one repository are refused everywhere else. Deleting images frees
their layers: disk use stays flat over 20 updates and returns to where it was.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from mldeploy.backends.htpasswd import HtpasswdIdentityStore
from mldeploy.backends.oci_registry import OciRegistry
from mldeploy.settings import Settings

from .conftest import Creds, push, registry_write
from .harness import Project

pytestmark = pytest.mark.integration

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def as_nobody(*cmd: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NOBODY, *cmd], capture_output=True, text=True, env=env, cwd="/", timeout=120)


@pytest.fixture(scope="module", autouse=True)
def _need_setpriv() -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to act as another local user")


def _push(docker_client: Any, repo: str, tag: str, user: str, password: str) -> tuple[str | None, list[str]]:
    """(digest, errors) of pushing repo:tag with these credentials."""
    digest, errors = None, []
    for ev in push(docker_client, repo, tag, {"username": user, "password": password}):
        if "error" in ev:
            errors.append(str(ev["error"]))
        aux = ev.get("aux")
        if isinstance(aux, dict) and aux.get("Digest"):
            digest = aux["Digest"]
    return digest, errors


def _build(docker_client: Any, settings: Settings, ref: str, payload_kb: int = 0) -> None:
    """A small image FROM the base OS image; ``payload_kb`` of fresh random bytes make a new layer."""
    nonce = uuid.uuid4().hex  # never a layer-cache hit
    run = f"RUN head -c {payload_kb * 1024} /dev/urandom > /payload && echo {nonce}\n" if payload_kb else f"LABEL t={nonce}\n"
    docker_client.images.build(fileobj=io.BytesIO(f"FROM {settings.base_os_image}\n{run}".encode()), tag=ref, rm=True)


# -- another local user -------------------------------------------------------------------------
STATE_PROGRAM = """
import pulumi
from mldeploy import ModelVersion, ServicePrincipal
push = ServicePrincipal("push", role="AcrPush", display_name="sec-state-push")
mv = ModelVersion("model", model_name="{model}", path="model.txt")
pulumi.export("push_id", push.client_id)
pulumi.export("push_secret", push.client_secret)
pulumi.export("download", mv.download)
pulumi.export("db_password", pulumi.Output.secret("{secret}"))
"""


def test_another_local_user_can_neither_reach_the_registry_nor_read_state(project: Project, settings: Settings, tmp_path: Path) -> None:
    secret = f"sec-{uuid.uuid4().hex}"
    model = f"sec-state-{uuid.uuid4().hex[:8]}"
    (project.dir / "model.txt").write_text("weights\n")
    project.write(STATE_PROGRAM.format(model=model, secret=secret))
    project.up()
    outs = project.outputs()
    assert outs["db_password"] == secret  # the owner can

    # The backend socket: nobody cannot connect, so cannot list, push or delete without credentials.
    sock = settings.registry_dir / "run" / "registry.sock"
    assert sock.is_socket()
    r = as_nobody("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", str(sock), "http://r/v2/_catalog")
    assert r.returncode != 0 and r.stdout in ("", "000"), (r.stdout, r.stderr)
    r = as_nobody("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "DELETE", "--unix-socket", str(sock),
                  "http://r/v2/sectest/any/manifests/sha256:" + "0" * 64)
    assert r.returncode != 0 and r.stdout in ("", "000"), (r.stdout, r.stderr)
    # TCP: nginx asks for credentials, for reads and for deletes.
    for method, path in (("GET", "/v2/_catalog"), ("DELETE", "/v2/sectest/any/manifests/sha256:" + "0" * 64)):
        r = as_nobody("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method, f"http://{settings.registry}{path}")
        assert r.stdout == "401", (method, path, r.stdout, r.stderr)

    # State: nobody cannot export the stack (secrets or not), nor read its files, the passphrase,
    # the identity's hash or the model's stored files.
    home = tmp_path / "nobody-home"
    home.mkdir(mode=0o777)
    home.chmod(0o777)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "PULUMI_BACKEND_URL": os.environ["PULUMI_BACKEND_URL"],
           "PULUMI_SKIP_UPDATE_CHECK": "1", "PULUMI_CONFIG_PASSPHRASE_FILE": os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE", "")}
    pulumi = shutil.which("pulumi")
    assert pulumi
    stack = f"organization/{project.name}/{project.stack}"
    r = as_nobody(pulumi, "stack", "export", "--show-secrets", "--stack", stack, "--non-interactive", env=env)
    assert r.returncode != 0 and secret not in r.stdout, r.stdout[-500:]
    state_files = [p for p in Path(os.environ["PULUMI_BACKEND_URL"].removeprefix("file://")).rglob(f"{project.name}/*") if p.is_file()]
    assert state_files, "the stack's state files were not found"
    passphrase = os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    assert passphrase and Path(passphrase).exists(), "lib.sh exports the passphrase file make setup wrote"
    assert Path(passphrase).stat().st_mode & 0o077 == 0
    artifacts = Path(outs["download"].removeprefix("file://"))
    private = [*state_files, Path(passphrase), settings.registry_dir / "htpasswd", *[p for p in artifacts.rglob("*") if p.is_file()]]
    for path in private:
        r = as_nobody("cat", str(path))
        assert r.returncode != 0 and "Permission denied" in r.stderr, (path, r.stdout[:80])
    for path in (*state_files, Path(passphrase)):
        assert secret not in (as_nobody("cat", str(path)).stdout)


# -- scoped push identities ---------------------------------------------------------------------
SCOPED_PROGRAM = """
import pulumi
from mldeploy import ServicePrincipal
push = ServicePrincipal("push", role="AcrPush", display_name="sec-scoped", repositories=pulumi.Config().require_object("repos"))
pulumi.export("id", push.client_id)
pulumi.export("secret", push.client_secret)
pulumi.export("grant", push.grant)
"""


@pytest.fixture
def scratch_repos(settings: Settings, push_creds: Creds, docker_client: Any) -> Iterator[list[str]]:
    """Two fresh repository names; their manifests and local images are deleted afterwards."""
    tag = uuid.uuid4().hex[:8]
    repos = [f"sectest/a-{tag}", f"sectest/b-{tag}"]
    yield repos
    reg = OciRegistry(settings.registry, push_creds.username, push_creds.password)
    for repo in repos:
        r = requests.get(f"http://{settings.registry}/v2/{repo}/tags/list", auth=(push_creds.username, push_creds.password), timeout=10)
        for t in (r.json().get("tags") or []) if r.status_code == 200 else []:
            try:
                reg.delete_manifest(repo, reg.manifest_digest(repo, t))
            except Exception:
                pass
        for image in docker_client.images.list(name=f"{settings.registry}/{repo}"):
            with contextlib.suppress(Exception):
                docker_client.images.remove(image.id, force=True)


def test_push_identity_scoped_to_one_repository_is_refused_in_another(
    project: Project, settings: Settings, docker_client: Any, scratch_repos: list[str]
) -> None:
    repo_a, repo_b = scratch_repos
    project.write(SCOPED_PROGRAM)
    project.config("repos", json.dumps([repo_a]))
    project.up()
    outs = project.outputs()
    user, secret = outs["id"], outs["secret"]
    assert outs["grant"] == f"AcrPush:{repo_a}"
    for repo in scratch_repos:
        _build(docker_client, settings, f"{settings.registry}/{repo}:v1")

    digest, errors = _push(docker_client, f"{settings.registry}/{repo_a}", "v1", user, secret)
    assert digest and not errors
    digest, errors = _push(docker_client, f"{settings.registry}/{repo_b}", "v1", user, secret)
    assert digest is None and errors and any(w in errors[0].lower() for w in ("401", "unauthorized", "authentication required")), errors
    # Deleting is writing too: refused outside the scope (401), allowed inside.
    a_digest = OciRegistry(settings.registry, user, secret).manifest_digest(repo_a, "v1")  # reads are not scoped
    r = registry_write("DELETE", f"http://{settings.registry}/v2/{repo_b}/manifests/{a_digest}", auth=(user, secret))
    assert r.status_code == 401

    # Rescoping is an in-place update with the same secret.
    project.config("repos", json.dumps([repo_b]))
    assert project.ops() == {"push": "update"}
    project.up()
    outs = project.outputs()
    assert (outs["id"], outs["secret"], outs["grant"]) == (user, secret, f"AcrPush:{repo_b}")
    assert _push(docker_client, f"{settings.registry}/{repo_b}", "v1", user, secret)[0]
    assert _push(docker_client, f"{settings.registry}/{repo_a}", "v1", user, secret)[0] is None

    # Prefix scopes.
    project.config("repos", json.dumps(["sectest/*"]))
    project.up()
    assert _push(docker_client, f"{settings.registry}/{repo_a}", "v1", user, secret)[0]
    project.destroy()
    assert requests.get(f"http://{settings.registry}/v2/", auth=(user, secret), timeout=10).status_code == 401


def test_a_user_name_cannot_point_nginx_at_files_outside_the_registry(settings: Settings, scratch_repos: list[str], tmp_path: Path) -> None:
    """A crafted user name ('<real scoped id>/../../..') must not make nginx use an htpasswd file another local user wrote."""
    import bcrypt

    store = HtpasswdIdentityStore(settings.registry_dir, settings.registry)
    real, _ = store.create("sec-traversal", "AcrPush", None, ["sectest/other"])
    try:
        repo_top, repo_rest = scratch_repos[0].split("/")
        evil = tmp_path / "evil"
        (evil / "r" / repo_top).mkdir(parents=True)
        (evil / "r" / repo_top / f"{repo_rest}@").touch()
        scope_dir = settings.registry_dir / "scopes" / f"u-{real.client_id}"
        assert scope_dir.is_dir()
        crafted = f"{real.client_id}/{os.path.relpath(evil, scope_dir)}"
        (evil / "htpasswd").write_text(f"{crafted}:{bcrypt.hashpw(b'pw', bcrypt.gensalt(rounds=5)).decode()}\n")
        assert (scope_dir.parent / f"u-{crafted}" / "htpasswd").resolve() == (evil / "htpasswd").resolve()  # the path would resolve
        r = registry_write("POST", f"http://{settings.registry}/v2/{scratch_repos[0]}/blobs/uploads/", auth=(crafted, "pw"))
        assert r.status_code == 401
    finally:
        store.delete(real.client_id)


def test_bad_repository_scopes_fail_preview_naming_the_input(project: Project, settings: Settings) -> None:
    display = f"sec-badscope-{project.name}"  # unique: the check below looks only for what this test could have created
    for role, repos, message in (
        ("AcrPush", ["Demo/Base"], "'Demo/Base' is not a repository name"),
        ("AcrPush", ["*"], "'*' is not a repository name"),
        ("AcrPull", ["demo/base"], "a AcrPull identity cannot push anywhere"),
    ):
        project.write(
            f'from mldeploy import ServicePrincipal\nServicePrincipal("sp", role={role!r}, repositories={repos!r}, display_name={display!r})\n'
        )
        res = project.preview(check=False)
        assert res.returncode != 0 and "repositories" in res.output and message in res.output, res.output[-1500:]
    # Nothing of this test's was created (other stacks change these files meanwhile: look only for our name).
    for name in ("htpasswd", "htpasswd-push", "identities.json"):
        path = settings.registry_dir / name
        assert display not in (path.read_text() if path.exists() else ""), name


# -- drift of an identity's grant ---------------------------------------------------------------
DRIFT_PROGRAM = """
from mldeploy import ServicePrincipal
import pulumi
push = ServicePrincipal("push", role="AcrPush", display_name="sec-drift")
scoped = ServicePrincipal("scoped", role="AcrPush", display_name="sec-drift-scoped", repositories=["sectest/drift"])
for n, sp in (("push", push), ("scoped", scoped)):
    pulumi.export(n + "_id", sp.client_id)
    pulumi.export(n + "_secret", sp.client_secret)
"""


def test_refresh_finds_a_demoted_identity_and_up_restores_it(project: Project, settings: Settings) -> None:
    project.write(DRIFT_PROGRAM)
    project.up()
    outs = project.outputs()
    reg = settings.registry_dir

    def can_write(name: str, repo: str) -> bool:
        r = registry_write("POST", f"http://{settings.registry}/v2/{repo}/blobs/uploads/", auth=(outs[f"{name}_id"], outs[f"{name}_secret"]))
        if r.status_code == 202:  # leave no upload session behind
            loc = r.headers["Location"]
            url = loc if loc.startswith("http") else f"http://{settings.registry}{loc}"
            registry_write("DELETE", url, auth=(outs[f"{name}_id"], outs[f"{name}_secret"]))
        return r.status_code == 202

    assert can_write("push", "sectest/drift") and can_write("scoped", "sectest/drift")
    assert not can_write("scoped", "sectest/other")
    # Out of band: the unrestricted identity is demoted (its line removed from the push file), the
    # scoped one loses its scope marker. Both can still log in and pull.
    push_file = reg / "htpasswd-push"
    push_file.write_text("".join(line for line in push_file.read_text().splitlines(True) if not line.startswith(outs["push_id"] + ":")))
    (reg / "scopes" / f"u-{outs['scoped_id']}" / "r" / "sectest" / "drift@").unlink()
    assert not can_write("push", "sectest/drift") and not can_write("scoped", "sectest/drift")
    assert project.ops() == {}  # without a refresh nothing is known

    res = project.refresh()
    assert "not AcrPush" in res.output
    assert project.ops() == {"push": "update", "scoped": "update"}
    project.up()
    after = project.outputs()
    assert after == outs  # same identities, same secrets
    assert can_write("push", "sectest/drift") and can_write("scoped", "sectest/drift")
    assert not can_write("scoped", "sectest/other")
    assert project.ops() == {}


# -- bounded storage ----------------------------------------------------------------------------
def _repo_bytes(settings: Settings, repo: str, baseline: set[str]) -> int:
    """Bytes on disk of blobs linked from ``repo`` (layers and manifests) that were not in the registry at ``baseline``."""
    data = settings.registry_dir / "data" / "docker" / "registry" / "v2"
    root = data / "repositories" / repo
    total = 0
    for link in [*root.glob("_layers/sha256/*/link"), *root.glob("_manifests/revisions/sha256/*/link")]:
        digest = link.parent.name
        if digest in baseline:
            continue
        blob = data / "blobs" / "sha256" / digest[:2] / digest / "data"
        if blob.exists():
            total += blob.stat().st_blocks * 512
    return total


def _all_blobs(settings: Settings) -> set[str]:
    blobs = settings.registry_dir / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256"
    return {p.name for p in blobs.glob("*/*")}


def test_registry_disk_use_stays_flat_over_20_updates_and_returns_after_delete(
    settings: Settings, docker_client: Any, push_creds: Creds
) -> None:
    """20 updates of a 512 KB layer: each pushes a new image and deletes the one it replaced (then GC)."""
    repo = f"sectest/gc-{uuid.uuid4().hex[:8]}"
    ref = f"{settings.registry}/{repo}"
    # The base OS layer may be shared with other repositories: push it first, outside the measure.
    _build(docker_client, settings, f"{ref}:anchor")
    anchor, errors = _push(docker_client, ref, "anchor", push_creds.username, push_creds.password)
    assert anchor and not errors
    baseline = _all_blobs(settings)
    registry = OciRegistry(settings.registry, push_creds.username, push_creds.password)
    sizes, previous, previous_image = [], None, None
    for _ in range(20):
        _build(docker_client, settings, f"{ref}:v", payload_kb=512)
        digest, errors = _push(docker_client, ref, "v", push_creds.username, push_creds.password)
        assert digest and not errors, errors
        if previous:
            registry.delete_manifest(repo, previous)
            assert registry.collect_garbage()
            docker_client.images.remove(previous_image, force=True)  # the local copy the update replaced
        previous, previous_image = digest, docker_client.images.get(f"{ref}:v").id
        sizes.append(_repo_bytes(settings, repo, baseline))
    one_image = sizes[0]
    assert one_image > 512 * 1024
    print(f"\nrepository bytes over 20 updates (KB): {[s // 1024 for s in sizes]}")
    assert max(sizes) <= 2 * one_image + 64 * 1024, sizes  # flat: one live image (plus the one just pushed)
    assert sizes[-1] <= one_image * 1.1, sizes
    registry.delete_manifest(repo, previous)
    line = registry.collect_garbage()
    print(line)
    assert _repo_bytes(settings, repo, baseline) <= 0.1 * one_image
    registry.delete_manifest(repo, anchor)
    registry.collect_garbage()
    docker_client.images.remove(f"{ref}:v", force=True)
    docker_client.images.remove(f"{ref}:anchor", force=True)


def test_writes_wait_for_garbage_collection_with_503_and_retry_after(settings: Settings, push_creds: Creds) -> None:
    """While the collector runs, nginx refuses writes (503 + Retry-After) and still serves reads."""
    flag = settings.registry_dir / "run" / "readonly"
    from mldeploy.backends import registry_gc

    lock = settings.registry_dir / "run" / "gc.lock"
    import fcntl

    with open(lock, "a+") as f:  # hold the GC lock so no real collection removes our flag meanwhile
        fcntl.flock(f, fcntl.LOCK_EX)
        flag.touch()
        try:
            auth = (push_creds.username, push_creds.password)
            w = requests.post(f"http://{settings.registry}/v2/sectest/ro/blobs/uploads/", auth=auth, timeout=10)
            r = requests.get(f"http://{settings.registry}/v2/_catalog", auth=auth, timeout=10)
        finally:
            flag.unlink()
    assert w.status_code == 503 and w.headers.get("Retry-After"), (w.status_code, w.headers)
    assert r.status_code == 200
    assert registry_gc.collect_garbage(lock_timeout=30).bytes_after > 0


# -- image builds ----------------------------------------------------------------------------------
def test_builds_reach_the_wheelhouse_but_not_the_hosts_loopback(settings: Settings, tmp_path: Path) -> None:
    """RUN steps (through DockerEngine.build): 127.0.0.1:<port>/wheels/ is the wheelhouse; the host's loopback is out of reach."""
    import socket

    from mldeploy.backends.docker_engine import DockerEngine
    from mldeploy.errors import BuildError

    if settings.build_network == "host":
        pytest.fail("make setup has not set up the build network (registry/build.json is missing)")
    port = settings.registry.rsplit(":", 1)[1]
    host_service = socket.socket()  # a service on the host's loopback, as the registry API or Pulumi's engine are
    host_service.bind(("127.0.0.1", 0))
    host_service.listen(1)
    probe = "RUN exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' >&3 && head -1 <&3 | tee /dev/stderr | grep -q ' {code} '"
    cases = [
        ("the wheelhouse", port, "/wheels/", "200", True),
        ("the registry API (answered by the wheelhouse server, not the registry's 401)", port, "/v2/", "401", False),
        ("a service on the host's loopback", str(host_service.getsockname()[1]), "/", "200", False),
    ]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    engine = DockerEngine()
    try:
        for what, p, path, code, reachable in cases:
            (ctx / "Dockerfile").write_text(
                f"FROM {settings.base_os_image}\nSHELL [\"/bin/bash\", \"-c\"]\nLABEL nonce={uuid.uuid4().hex}\n"
                + probe.format(port=p, path=path, code=code) + "\n"
            )
            tag = f"mldeploy/sectest-net:{uuid.uuid4().hex[:8]}"
            try:
                engine.build(str(ctx), "Dockerfile", tag, {}, str(tmp_path / "build.log"))
                ok = True
            except BuildError:
                ok = False
            finally:
                with contextlib.suppress(Exception):
                    engine.remove(tag)
            log = (tmp_path / "build.log").read_text()
            assert ok is reachable, (what, log[-800:])
            if what.startswith("a service"):
                assert "Connection refused" in log, log[-800:]  # refused, not a broken probe
            if what.startswith("the registry"):
                assert "HTTP/1.0 404" in log or "HTTP/1.1 404" in log, log[-800:]
    finally:
        host_service.close()
