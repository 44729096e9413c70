"""The kubernetes runtime against a real cluster: the embedded one `make setup` starts, or the one KUBECONFIG names.

Checked with kubectl (the cluster's own view), on loopback only (NodePorts on 127.0.0.1):
3 replicas serve /score; a new version rolls out under load with no failed request; a version
whose init() raises is rolled back with the old one answering throughout and the deploy failing
with the traceback; keys are enforced by the pods' nginx front and a rotated key is refused; a
Deployment deleted or scaled out of band is found by read and repaired by deploy; a second node
in a network namespace of this test's own takes replicas; remove leaves no labelled object.

Skipped only when MLDEPLOY_KUBERNETES=0 (no embedded cluster wanted); otherwise a missing cluster fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from mldeploy.backends import kubernetes as k8s
from mldeploy.backends.docker_engine import DockerEngine
from mldeploy.backends.htpasswd import HtpasswdIdentityStore
from mldeploy.backends.protocols import DeploySpec
from mldeploy.derived_image import write_context
from mldeploy.errors import NotFound
from mldeploy.settings import Settings

from .conftest import Creds, Load, copy_demo

ROOT = Path(__file__).resolve().parents[2]
NODE_PORT = 30050
SAMPLE = {"data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}
SVC = "k8s-it"
LABELS = {"mldeploy.service": SVC, "mldeploy.stack": "pytest", "mldeploy.urn": f"urn:pulumi:pytest::k8s-it::mldeploy:index:InferenceDeployment::{SVC}"}
SELECTOR = f"mldeploy.service={SVC}"


@pytest.fixture(scope="module")
def kubeconfig(settings: Settings) -> str:
    if os.environ.get("MLDEPLOY_KUBERNETES") == "0":
        pytest.skip("MLDEPLOY_KUBERNETES=0: no embedded cluster (set a kubeconfig and unset it to run these)")
    path, _ctx = k8s.kubeconfig_of({})
    if not Path(path).is_file():
        pytest.fail(f"no kubeconfig at {path}: run `make setup` (its kubernetes step starts the cluster)", pytrace=False)
    r = subprocess.run([kubectl_bin(settings), "--kubeconfig", path, "get", "--raw", "/readyz"], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"the cluster of {path} is not ready: {r.stderr.strip()}; run `make setup`", pytrace=False)
    return path


def kubectl_bin(settings: Settings) -> str:
    embedded = settings.home / "kubernetes" / "bin" / "kubectl"
    kube = settings.home / "kubernetes" / "bin" / "kube"
    if shutil.which("kubectl"):
        return str(shutil.which("kubectl"))
    if not embedded.exists() and kube.exists():
        embedded.symlink_to(kube)  # the multi-call binary dispatches on its name
    return str(embedded)


@pytest.fixture(scope="module")
def kubectl(kubeconfig: str, settings: Settings):  # type: ignore[no-untyped-def]
    exe = kubectl_bin(settings)

    def run(*args: str, check: bool = True) -> str:
        r = subprocess.run([exe, "--kubeconfig", kubeconfig, *args], capture_output=True, text=True)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {r.stderr}")
        return r.stdout

    return run


@pytest.fixture(scope="module")
def pull_creds(settings: Settings) -> Iterator[Creds]:
    store = HtpasswdIdentityStore(settings.registry_dir, settings.registry)
    ident, secret = store.create("pytest-k8s-pull", "AcrPull", None)
    yield Creds(ident.client_id, secret, settings.registry)
    store.delete(ident.client_id)


@pytest.fixture(scope="module")
def images(demo_base: str, push_creds: Creds, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Derived images of the demo (packaged as InferenceDeployment packages them), pushed: v1, v2, and v3 whose init() raises."""
    demo = copy_demo(tmp_path_factory.mktemp("k8s") / "demo")
    score = demo / "src" / "score.py"
    good = score.read_text()
    v2 = good.replace('return {"predictions"', 'return {"version": 2, "predictions"')
    bodies = {"v1": good, "v2": v2, "v3": v2.replace("def init():\n", "def init():\n    raise RuntimeError('model store offline')\n")}
    engine = DockerEngine()
    model = {"name": "iris", "version": 1, "download": f"file://{demo / 'model'}"}
    out = {}
    for tag, body in bodies.items():
        score.write_text(body)
        with tempfile.TemporaryDirectory(prefix="k8s-it-ctx-") as ctx:
            write_context(Path(ctx), demo_base, {"entry_script": "score.py", "source_dir": str(demo / "src")}, [model], [])
            ref = f"{settings.registry}/pytest/k8s-it:{tag}"
            engine.build(ctx, "Dockerfile", ref, {"WHEELHOUSE_URL": settings.wheelhouse_url}, str(settings.logs_dir / "k8s-it-build.log"))
            out[tag] = f"{settings.registry}/pytest/k8s-it@{engine.push(ref, push_creds.auth_config)}"
    return out


def deployment_config(**extra: Any) -> dict[str, Any]:
    return {
        "computeType": "aks",
        "port": NODE_PORT,
        "numReplicas": 3,
        "containerResourceRequirements": {"cpu": 0.1, "memoryInGB": 0.25, "cpuLimit": 1, "memoryInGBLimit": 1},
        "livenessProbeRequirements": {"periodSeconds": 1, "initialDelaySeconds": 60, "timeoutSeconds": 2, "failureThreshold": 3},
        "scoringTimeoutMs": 20000,
        "maxConcurrentRequestsPerContainer": 2,
        "namespace": "mldeploy-it",
        "tags": {"team": "it"},
        **extra,
    }


def spec(image: str, pull: Creds, push: Creds, dc: dict[str, Any], keys: tuple[str, str] | None = None) -> DeploySpec:
    return DeploySpec(
        service=SVC,
        image_ref=image,
        entry_script="score.py",
        deployment=dc,
        port=int(dc.get("port") or 0),
        labels=LABELS,
        registry=pull.registry,
        pull_auth=pull.auth_config,
        push_auth=push.auth_config,
        keys=keys,
        health_timeout=120,
        previous=None,
        props={},
    )


def _score(uri: str, key: str | None = None) -> requests.Response:
    return requests.post(uri, json=SAMPLE, headers={"Authorization": f"Bearer {key}"} if key else {}, timeout=15)


def _labelled(kubectl, namespace: str) -> list[str]:  # type: ignore[no-untyped-def]
    out = kubectl("get", "deploy,rs,pod,svc,secret,configmap,hpa", "-n", namespace, "-l", SELECTOR, "-o", "name", check=False)
    return out.split()


@pytest.fixture
def cleanup(kubectl, settings: Settings) -> Iterator[None]:  # type: ignore[no-untyped-def]
    yield
    subprocess.run(["bash", str(ROOT / "scripts" / "kubernetes" / "add-node.sh"), "--remove", "2"], capture_output=True)
    kubectl("delete", "deploy,svc,secret,configmap,hpa", "-n", "mldeploy-it", "-l", SELECTOR, "--ignore-not-found", "--wait=true", check=False)
    kubectl("delete", "namespace", "mldeploy-it", "--ignore-not-found", "--wait=false", check=False)


def test_kubernetes_runtime_lifecycle(kubectl, images: dict[str, str], pull_creds: Creds, push_creds: Creds, settings: Settings, cleanup) -> None:  # type: ignore[no-untyped-def]
    rt = k8s.KubernetesRuntime()
    log: list[str] = []
    say = log.append
    ns = "mldeploy-it"
    timings: dict[str, float] = {}

    # preview-time checks: a port outside the node-port range, more CPU than any node has
    with pytest.raises(Exception, match="node port"):
        rt.validate(deployment_config(port=8890), "deploymentconfig.json", say)
    with pytest.raises(Exception, match=r"containerResourceRequirements\.cpu"):
        rt.preflight(spec(images["v1"], pull_creds, push_creds, deployment_config(containerResourceRequirements={"cpu": 64})), say)
    assert kubectl("get", "namespace", ns, check=False) == ""  # preflight created nothing

    # create: 3 replicas behind the NodePort on 127.0.0.1
    t = time.monotonic()
    rt.preflight(spec(images["v1"], pull_creds, push_creds, deployment_config()), say)
    outs = rt.deploy(spec(images["v1"], pull_creds, push_creds, deployment_config()), say)
    timings["create"] = time.monotonic() - t
    uri = outs["scoring_uri"]
    assert uri == f"http://127.0.0.1:{NODE_PORT}/score"
    assert _score(uri).json() == {"predictions": ["setosa", "virginica"]}
    dep = json.loads(kubectl("get", "deploy", "mldeploy-k8s-it", "-n", ns, "-o", "json"))
    assert dep["spec"]["replicas"] == 3 and dep["status"]["readyReplicas"] == 3
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    model = dep["spec"]["template"]["spec"]["containers"][0]
    assert model["image"] == images["v1"]
    assert model["resources"] == {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    assert dep["metadata"]["labels"] == {"mldeploy.service": SVC, "mldeploy.stack": "pytest"}
    assert dep["metadata"]["annotations"]["mldeploy.urn"] == LABELS["mldeploy.urn"]
    pods = json.loads(kubectl("get", "pods", "-n", ns, "-l", SELECTOR, "-o", "json"))["items"]
    assert len(pods) == 3 and all(p["status"]["phase"] == "Running" for p in pods)
    assert all(p["spec"]["imagePullSecrets"] == [{"name": "mldeploy-k8s-it-pull"}] for p in pods)
    live = rt.read(SVC, outs)
    assert (live.state, live.replicas, live.image) == ("running", 3, images["v1"])
    # requests are spread over the replicas (kube-proxy balances the NodePort)
    for _ in range(30):
        assert _score(uri).status_code == 200
    served = [p["metadata"]["name"] for p in pods if "POST /score" in kubectl("logs", "-n", ns, p["metadata"]["name"], "-c", "model")]
    assert len(served) >= 2, served

    # the same spec again: nothing changes (no new ReplicaSet, same generation)
    gen = dep["metadata"]["generation"]
    rt.deploy(spec(images["v1"], pull_creds, push_creds, deployment_config()), say)
    assert json.loads(kubectl("get", "deploy", "mldeploy-k8s-it", "-n", ns, "-o", "json"))["metadata"]["generation"] == gen

    # a new version rolls out under load with no failed request
    t = time.monotonic()
    with Load(uri, SAMPLE, timeout=10, pause=0.02, limit=400) as load:
        rt.deploy(spec(images["v2"], pull_creds, push_creds, deployment_config()), say)
        time.sleep(1)
    timings["rollout"] = time.monotonic() - t
    print(f"\nrollout under load: {load.ok} ok, {load.failed} failed in {timings['rollout']:.0f}s; answers: {dict(load.answers)}")
    assert load.ok > 50 and load.failed == 0, (load.ok, load.failed, load.answers)
    assert _score(uri).json()["version"] == 2

    # init() raises: rolled back, the deploy fails with the traceback, v2 answers throughout
    t = time.monotonic()
    with Load(uri, SAMPLE, timeout=10, pause=0.02, limit=400) as load, pytest.raises(k8s.RolledBack) as failed:
        rt.deploy(spec(images["v3"], pull_creds, push_creds, deployment_config()), say)
    timings["rollback"] = time.monotonic() - t
    print(f"failed rollout under load: {load.ok} ok, {load.failed} failed in {timings['rollback']:.0f}s")
    assert "RuntimeError: model store offline" in str(failed.value), str(failed.value)[-2000:]
    assert load.ok > 20 and load.failed == 0, (load.ok, load.failed, load.answers)
    assert set(load.answers) == {json.dumps({"predictions": ["setosa", "virginica"], "version": 2}, sort_keys=True)}
    dep = json.loads(kubectl("get", "deploy", "mldeploy-k8s-it", "-n", ns, "-o", "json"))
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == images["v2"]
    pods = json.loads(kubectl("get", "pods", "-n", ns, "-l", SELECTOR, "-o", "json"))["items"]
    assert {p["spec"]["containers"][0]["image"] for p in pods if not p["metadata"].get("deletionTimestamp")} == {images["v2"]}

    # keys: enforced by the nginx front in each pod; either key works; a rotated key is refused after deploy
    k1, k2 = "key-one-" + "a" * 24, "key-two-" + "b" * 24
    rt.deploy(spec(images["v2"], pull_creds, push_creds, deployment_config(authEnabled=True), keys=(k1, k2)), say)
    assert _score(uri).status_code == 401
    assert _score(uri, "wrong").status_code == 401
    assert _score(uri, k1).status_code == 200 and _score(uri, k2).status_code == 200
    assert requests.get(f"http://127.0.0.1:{NODE_PORT}/", timeout=5).status_code == 200  # liveness stays open
    k1b = "key-one-rotated-" + "c" * 16
    rt.deploy(spec(images["v2"], pull_creds, push_creds, deployment_config(authEnabled=True), keys=(k1b, k2)), say)
    assert _score(uri, k1).status_code == 401 and _score(uri, k1b).status_code == 200
    secrets = kubectl("get", "secret", "-n", ns, "-l", SELECTOR, "-o", "name").split()
    assert len([s for s in secrets if "-keys-" in s]) == 1, secrets  # the old key's Secret is pruned
    authed = deployment_config(authEnabled=True)
    keys = (k1b, k2)

    # out of band: a deleted Deployment is found gone and recreated
    kubectl("delete", "deploy", "mldeploy-k8s-it", "-n", ns, "--wait=true")
    with pytest.raises(NotFound):
        rt.read(SVC, outs)
    rt.deploy(spec(images["v2"], pull_creds, push_creds, authed, keys=keys), say)
    assert _score(uri, k2).json()["version"] == 2
    # ... and one scaled by hand is read as such and scaled back
    kubectl("scale", "deploy", "mldeploy-k8s-it", "-n", ns, "--replicas=1")
    assert rt.read(SVC, outs).replicas == 1
    rt.deploy(spec(images["v2"], pull_creds, push_creds, authed, keys=keys), say)
    assert json.loads(kubectl("get", "deploy", "mldeploy-k8s-it", "-n", ns, "-o", "json"))["spec"]["replicas"] == 3
    assert rt.read(SVC, outs).replicas == 3

    # a second node, in a network namespace of this test's own: a rollout spreads the replicas over both
    t = time.monotonic()
    r = subprocess.run(["bash", str(ROOT / "scripts" / "kubernetes" / "add-node.sh"), "2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    timings["add node"] = time.monotonic() - t
    t = time.monotonic()
    rt.deploy(spec(images["v1"], pull_creds, push_creds, deployment_config(numReplicas=4, authEnabled=True), keys=keys), say)
    timings["spread rollout"] = time.monotonic() - t
    pods = json.loads(kubectl("get", "pods", "-n", ns, "-l", SELECTOR, "-o", "json"))["items"]
    nodes = {p["spec"]["nodeName"] for p in pods if not p["metadata"].get("deletionTimestamp")}
    assert nodes == {"mldeploy-1", "mldeploy-2"}, nodes
    for _ in range(20):  # through 127.0.0.1 to pods on either node
        assert _score(uri, k2).json() == {"predictions": ["setosa", "virginica"]}
    r = subprocess.run(["bash", str(ROOT / "scripts" / "kubernetes" / "add-node.sh"), "--remove", "2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "mldeploy-2" not in kubectl("get", "nodes", "-o", "name")

    # remove: no labelled object is left, nor the namespace it created
    t = time.monotonic()
    rt.remove(SVC, outs, LABELS, say)
    timings["remove"] = time.monotonic() - t
    assert _labelled(kubectl, ns) == []
    print("timings:", {k: round(v, 1) for k, v in timings.items()})
