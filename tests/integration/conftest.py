"""Integration fixtures: the real engine, Docker Engine and registry that `make setup` started.

Session-scoped: the base OS image, the wheelhouse and the registry are shared
by every test; each test gets its own throwaway Pulumi project and stack.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from mldeploy.backends.htpasswd import HtpasswdIdentityStore
from mldeploy.settings import Settings

from .harness import Project

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "stacks" / "demo"
ADD_NODE = str(ROOT / "scripts" / "kubernetes" / "add-node.sh")
Kubectl = Callable[..., str]

pytestmark = pytest.mark.integration


# -- running in parallel (make test runs pytest-xdist workers; tests/conftest.py groups the tests) ---------
def worker() -> str:
    """This pytest-xdist worker's id (gw0, gw1, ...), or "main" without workers."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@contextlib.contextmanager
def one_worker_at_a_time(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[None]:
    """An exclusive lock shared by this run's workers: the first builds a shared image, the others then find it cached."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if "PYTEST_XDIST_WORKER" in os.environ else base
    with open(root / f"{name}.lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def push(docker_client, repo: str, tag: str, auth_config: dict[str, str]) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    """``docker push`` of a test fixture, holding the registry's push lock as mldeploy's own pushes do.

    Without it, a garbage collection started by another worker's destroy would answer the push with 503.
    Returns the push's events (those with an "error" key are the failures).
    """
    from mldeploy.backends.registry_gc import writing

    with writing(repo.split("/", 1)[0]):
        return list(docker_client.api.push(repo, tag=tag, auth_config=auth_config, stream=True, decode=True))


def registry_write(method: str, url: str, **kwargs: Any) -> requests.Response:
    """A test's own raw write to the local registry (a manifest DELETE, a blob upload POST), holding its push
    lock as mldeploy's writes do: during a garbage collection another worker's destroy started, nginx answers
    every write 503, before it checks the credentials."""
    from urllib.parse import urlsplit

    from mldeploy.backends.registry_gc import writing

    with writing(urlsplit(url).netloc):
        return requests.request(method, url, timeout=10, **kwargs)


@pytest.fixture(scope="session")
def settings() -> Settings:
    s = Settings.from_env()
    problems = []
    if shutil.which("pulumi") is None:
        problems.append("pulumi is not on PATH")
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        problems.append("Docker Engine is not running")
    try:
        code = requests.get(f"http://{s.registry}/v2/", timeout=5).status_code
        if code != 401:
            problems.append(f"registry at {s.registry} answered {code}, expected 401")
    except requests.RequestException as exc:
        problems.append(f"registry at {s.registry} unreachable: {exc}")
    if problems:
        pytest.fail("integration tests need `make setup` first: " + "; ".join(problems), pytrace=False)
    return s


@pytest.fixture
def project(tmp_path: Path, settings: Settings) -> Iterator[Project]:
    p = Project(tmp_path / "proj")
    yield p
    p.cleanup()


class Creds:
    def __init__(self, username: str, password: str, registry: str) -> None:
        self.username, self.password, self.registry = username, password, registry

    @property
    def auth_config(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password}

    @property
    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


@pytest.fixture(scope="session")
def push_creds(settings: Settings) -> Iterator[Creds]:
    """An AcrPush identity made directly in the identity store, for tests that need to push fixtures."""
    store = HtpasswdIdentityStore(settings.registry_dir, settings.registry)
    ident, secret = store.create("pytest-push", "AcrPush", None)
    yield Creds(ident.client_id, secret, settings.registry)
    store.delete(ident.client_id)


@pytest.fixture(scope="session")
def docker_client(settings: Settings):  # type: ignore[no-untyped-def]
    import docker

    client = docker.from_env(timeout=600)
    yield client
    client.close()


@pytest.fixture(scope="session")
def tiny_image(docker_client, push_creds: Creds, settings: Settings) -> str:  # type: ignore[no-untyped-def]
    """A tiny image FROM the debootstrap base, pushed to the registry; returns its repository ref (one per worker)."""
    import io

    dockerfile = f"FROM {settings.base_os_image}\nRUN echo tiny > /tiny.txt\nLABEL worker={worker()}\n"
    repo = f"{settings.registry}/pytest/tiny-{worker()}"
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=f"{repo}:v1", rm=True)
    events = push(docker_client, repo, "v1", push_creds.auth_config)
    assert not [e for e in events if "error" in e], events
    return f"{repo}:v1"


def env_without_docker_config() -> dict[str, str]:
    """An environment whose docker CLI has no stored credentials."""
    env = dict(os.environ)
    return env


@pytest.fixture(scope="session")
def demo_base(docker_client, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> str:  # type: ignore[no-untyped-def]
    """The demo's custom base image (stacks/demo/base), built once per session with the docker SDK (the first
    worker builds it; the others' builds are then all cache hits, so every worker has the same image)."""
    tag = "mldeploy/test-demo-base:session"
    with one_worker_at_a_time(tmp_path_factory, "demo-base"):
        docker_client.images.build(
            path=str(DEMO / "base"), tag=tag, buildargs={"WHEELHOUSE_URL": settings.wheelhouse_url}, network_mode="host", rm=True
        )
    return tag


def copy_demo(dest: Path) -> Path:
    """A private copy of stacks/demo (with its model) that a test may edit."""
    shutil.copytree(DEMO, dest, ignore=shutil.ignore_patterns("__pycache__", "Pulumi.*.yaml"))
    if not (dest / "model" / "model.joblib").exists():
        subprocess.run(["python", str(dest / "make_model.py"), str(dest / "model")], check=True)
    return dest


def deployment_program(
    demo: Path, svc: str, base: str, deployment_config: dict[str, object] | str, exports: dict[str, str], **kwargs: object
) -> str:
    """A program deploying the demo model: a ModelVersion, push and pull identities, and an InferenceDeployment.

    ``deployment_config`` is a dict or its JSON text; ``kwargs`` are further InferenceDeployment
    arguments (``target``, ``regenerate_key``, ...); ``exports`` maps output names to expressions
    over ``dep``, ``mv``, ``push`` and ``pull``.
    """
    dc = deployment_config if isinstance(deployment_config, str) else json.dumps(deployment_config)
    extra = "".join(f", {k}={v!r}" for k, v in kwargs.items())
    lines = [
        "import json",
        "import pulumi",
        "from mldeploy import InferenceDeployment, ModelVersion, ServicePrincipal",
        f"D = {str(demo)!r}",
        f'mv = ModelVersion("model", model_name="{svc}-iris", path=D + "/model")',
        f'push = ServicePrincipal("push", role="AcrPush", display_name="{svc}-push")',
        f'pull = ServicePrincipal("pull", role="AcrPull", display_name="{svc}-pull")',
        f'dep = InferenceDeployment("svc", service_name="{svc}", inference_config=D + "/inferenceconfig.json",',
        f"    deployment_config=json.loads({dc!r}), models=[mv], push_identity=push, pull_identity=pull,",
        f"    base_image={base!r}, health_timeout=60{extra})",
        *(f"pulumi.export({name!r}, {expr})" for name, expr in exports.items()),
    ]
    return "\n".join(lines) + "\n"


def local_tags(docker_client: Any, name: str | None = None) -> set[str]:
    """The local image tags (of the repository ``name``, which may hold wildcards; all when None), in one call.

    Not ``images.list()``: the SDK inspects each listed image, and an image another worker removes in between
    fails the whole list with ImageNotFound."""
    return {t for img in docker_client.api.images(name=name) for t in (img.get("RepoTags") or []) if t != "<none>:<none>"}


class Load:
    """A bounded request loop on loopback during an update: counts 200s, and every other answer or error as a failure.

    ``answers`` counts the distinct bodies (and errors) seen, so a test can tell which version answered.
    The loop stops when the ``with`` block ends, or after ``limit`` seconds.
    """

    def __init__(self, uri: str, body: object, timeout: float, pause: float, limit: float, headers: dict[str, str] | None = None) -> None:
        self.uri, self.body, self.timeout, self.pause, self.limit, self.headers = uri, body, timeout, pause, limit, headers or {}
        self.ok, self.failed, self.answers = 0, 0, Counter[str]()
        self.failures: list[tuple[float, str]] = []  # (seconds since the load started, what failed)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.monotonic()
        deadline = start + self.limit
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                r = requests.post(self.uri, json=self.body, headers=self.headers, timeout=self.timeout)
                if r.status_code == 200:
                    self.ok += 1
                    self.answers[json.dumps(r.json(), sort_keys=True)] += 1
                else:
                    self.failed += 1
                    self.answers[f"HTTP {r.status_code}: {r.text[:120]}"] += 1
                    self.failures.append((round(time.monotonic() - start, 2), f"HTTP {r.status_code}"))
            except requests.RequestException as exc:
                self.failed += 1
                self.answers[f"error: {type(exc).__name__}: {str(exc)[-90:]}"] += 1  # the cause is at the end
                self.failures.append((round(time.monotonic() - start, 2), type(exc).__name__))
            time.sleep(self.pause)

    def __enter__(self) -> "Load":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


# -- the kubernetes and swarm targets (test_kubernetes.py, test_swarm.py, test_interruption.py) ---------------
def kubectl_bin(settings: Settings) -> str:
    """The embedded cluster's kubectl (build.sh links it to the multi-call binary), else one on PATH."""
    embedded = settings.home / "kubernetes" / "bin" / "kubectl"
    return str(embedded) if embedded.exists() else shutil.which("kubectl") or "kubectl"


@pytest.fixture(scope="module")
def kubectl(settings: Settings) -> Kubectl:
    from mldeploy.backends import kubernetes as k8s

    if os.environ.get("MLDEPLOY_KUBERNETES") == "0":
        pytest.skip("MLDEPLOY_KUBERNETES=0: no embedded cluster; unset it (or point KUBECONFIG at a cluster) to run these")
    path, _ctx = k8s.kubeconfig_of({})
    if not Path(path).is_file():
        pytest.fail(f"no kubeconfig at {path}: run `make setup` (its kubernetes step starts the cluster)", pytrace=False)
    exe = kubectl_bin(settings)

    def run(*args: str, check: bool = True) -> str:
        r = subprocess.run([exe, "--kubeconfig", path, *args], capture_output=True, text=True)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {r.stderr}")
        return r.stdout

    r = subprocess.run([exe, "--kubeconfig", path, "get", "--raw", "/readyz"], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"the cluster of {path} is not ready ({r.stderr.strip()}); run `make setup`", pytrace=False)
    return run


@pytest.fixture
def namespace(kubectl: Kubectl, project: Project) -> Iterator[str]:
    """A namespace of this test's own; whatever a failed test left behind goes with it (and the second node)."""
    ns = f"it-{project.name[-8:]}"
    yield ns
    subprocess.run(["bash", ADD_NODE, "--remove", "2"], capture_output=True)
    kubectl("delete", "namespace", ns, "--ignore-not-found", "--wait=false", check=False)


def docker_cli(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def swarm_objects(svc: str) -> dict[str, list[str]]:
    """The ids of the swarm services, configs, secrets and networks labelled with service name ``svc``, and of its
    front containers (the loopback front; Swarm's own task containers are left out)."""
    flt = f"label=mldeploy.service={svc}"
    objs = {kind: docker_cli(kind, "ls", "-q", "--filter", flt).split() for kind in ("service", "config", "secret", "network")}
    objs["container"] = docker_cli("container", "ls", "-aq", "--filter", flt, "--filter", "label=mldeploy.front-spec").split()
    return objs


@pytest.fixture
def swarm(settings: Settings) -> None:
    state = docker_cli("info", "-f", "{{.Swarm.LocalNodeState}}").strip()
    if state != "active":
        pytest.fail(f"the swarm tests need an active swarm (make setup runs docker swarm init); state: {state}", pytrace=False)


@pytest.fixture
def cleanup_swarm() -> Iterator[list[str]]:
    """Service names a test appends; whatever a failed test left labelled with them is removed."""
    names: list[str] = []
    yield names
    for svc in names:
        objs = swarm_objects(svc)
        for cid in objs["container"]:
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
        for kind in ("service", "network", "config", "secret"):
            for oid in objs[kind]:
                for _ in range(30):
                    if subprocess.run(["docker", kind, "rm", oid], capture_output=True).returncode == 0:
                        break
                    time.sleep(1)
