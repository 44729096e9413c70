"""InferenceDeployment on the kubernetes target: real `pulumi up/preview/refresh/destroy` against a real cluster,
the embedded one `make setup` starts (or the one KUBECONFIG names), checked with kubectl on loopback only.

computeType aks alone selects the target. 3 replicas serve /score behind a NodePort on 127.0.0.1; a score.py
edit rolls out under load with no failed request; an init() that raises is rolled back with the old version
answering throughout and `up` failing with the traceback; keys are enforced by each pod's nginx front and a
rotated key is refused once `up` finishes; a Deployment deleted or scaled out of band is found by refresh and
repaired by up; a second node in a network namespace of this test's own takes replicas; destroy leaves no
labelled object. Bad fields fail at preview naming them, with nothing created.

Skipped only when MLDEPLOY_KUBERNETES=0 (no embedded cluster wanted); otherwise a missing cluster fails.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

from .conftest import ADD_NODE, Kubectl, Load, copy_demo, deployment_program
from .harness import Project

NODE_PORT = 30051
SAMPLE = {"data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}
EXPORTS = {
    "scoring_uri": "dep.scoring_uri",
    "image_ref": "dep.image_ref",
    "replicas": "dep.replicas",
    "primary_key": "dep.primary_key",
    "secondary_key": "dep.secondary_key",
}


def deployment_config(namespace: str, **extra: Any) -> dict[str, Any]:
    return {
        "computeType": "aks",
        "port": NODE_PORT,
        "numReplicas": 3,
        "containerResourceRequirements": {"cpu": 0.1, "memoryInGB": 0.25, "cpuLimit": 1, "memoryInGBLimit": 1},
        "livenessProbeRequirements": {"periodSeconds": 1, "initialDelaySeconds": 60, "timeoutSeconds": 2, "failureThreshold": 3},
        "scoringTimeoutMs": 20000,
        "maxConcurrentRequestsPerContainer": 2,
        "namespace": namespace,
        "tags": {"team": "it"},
        **extra,
    }


def _score(uri: str, key: str | None = None) -> requests.Response:
    return requests.post(uri, json=SAMPLE, headers={"Authorization": f"Bearer {key}"} if key else {}, timeout=15)


def _labelled(kubectl: Kubectl, namespace: str, svc: str) -> list[str]:
    return kubectl("get", "deploy,rs,pod,svc,secret,configmap,hpa", "-n", namespace, "-l", f"mldeploy.service={svc}", "-o", "name", check=False).split()


def _pods(kubectl: Kubectl, namespace: str, svc: str) -> list[dict[str, Any]]:
    items = json.loads(kubectl("get", "pods", "-n", namespace, "-l", f"mldeploy.service={svc}", "-o", "json"))["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def test_kubernetes_lifecycle(project: Project, tmp_path: Path, demo_base: str, kubectl: Kubectl, namespace: str) -> None:
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    demo = copy_demo(tmp_path / "demo")
    svc = f"k8s-{project.name[-6:]}"
    ns = namespace
    name = f"mldeploy-{svc}"

    def write(dc: dict[str, Any], regen: str | None = None) -> None:
        project.write(deployment_program(demo, svc, demo_base, dc, EXPORTS, regenerate_key=regen))

    # computeType aks, no target: the kubernetes target
    write(deployment_config(ns))
    project.up()
    timings["create"] = time.monotonic() - t0
    outs = project.outputs()
    uri = outs["scoring_uri"]
    assert uri == f"http://127.0.0.1:{NODE_PORT}/score"
    assert outs["replicas"] == 3
    assert _score(uri).json() == {"predictions": ["setosa", "virginica"]}
    dep = json.loads(kubectl("get", "deploy", name, "-n", ns, "-o", "json"))
    assert dep["spec"]["replicas"] == 3 and dep["status"]["readyReplicas"] == 3
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert dep["metadata"]["labels"] == {"mldeploy.service": svc, "mldeploy.stack": "test"}
    assert dep["metadata"]["annotations"]["mldeploy.urn"].endswith("::svc")
    pod = dep["spec"]["template"]["spec"]
    model = pod["containers"][0]
    assert model["image"] == outs["image_ref"]
    assert model["resources"] == {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    assert (model["livenessProbe"]["periodSeconds"], model["livenessProbe"]["failureThreshold"]) == (1, 3)
    env = {e["name"]: e["value"] for e in model["env"]}
    assert env["SCORING_TIMEOUT_MS"] == "20000" and env["WORKER_COUNT"] == "2"
    pull = json.loads(kubectl("get", "secret", f"{name}-pull", "-n", ns, "-o", "json"))
    assert pull["type"] == "kubernetes.io/dockerconfigjson" and pod["imagePullSecrets"] == [{"name": f"{name}-pull"}]
    pods = _pods(kubectl, ns, svc)
    assert len(pods) == 3 and all(p["status"]["phase"] == "Running" for p in pods)
    for _ in range(30):  # kube-proxy spreads requests to the NodePort over the replicas
        assert _score(uri).status_code == 200
    served = [p["metadata"]["name"] for p in pods if "POST /score" in kubectl("logs", "-n", ns, p["metadata"]["name"], "-c", "model")]
    assert len(served) >= 2, served

    # A second up changes nothing.
    assert project.ops() == {}

    # score.py edit: rolled out one pod at a time (maxSurge 1, maxUnavailable 0) under load, no request fails.
    score = demo / "src" / "score.py"
    good = score.read_text()
    v2 = good.replace('return {"predictions"', 'return {"version": 2, "predictions"')
    score.write_text(v2)
    assert project.ops() == {"svc": "update"}
    t = time.monotonic()
    with Load(uri, SAMPLE, timeout=10, pause=0.02, limit=400) as load:
        project.up()
        time.sleep(1)
    timings["rollout"] = time.monotonic() - t
    print(f"\nrollout under load: {load.ok} ok, {load.failed} failed in {timings['rollout']:.0f}s; answers: {dict(load.answers)}")
    assert load.ok > 50 and load.failed == 0, (load.ok, load.failed, load.answers)
    assert any('"version": 2' in a for a in load.answers)
    v2_image = project.outputs()["image_ref"]
    assert v2_image != outs["image_ref"]

    # init() raises: rolled back, up fails with the traceback, v2 answers throughout.
    score.write_text(v2.replace("def init():\n", "def init():\n    raise RuntimeError('model store offline')\n"))
    t = time.monotonic()
    with Load(uri, SAMPLE, timeout=10, pause=0.02, limit=400) as load:
        failed = project.up(check=False)
    timings["rollback"] = time.monotonic() - t
    print(f"failed rollout under load: {load.ok} ok, {load.failed} failed in {timings['rollback']:.0f}s")
    assert failed.returncode != 0
    assert "rolled back" in failed.output and "RuntimeError: model store offline" in failed.output, failed.output[-3000:]
    assert load.ok > 20 and load.failed == 0, (load.ok, load.failed, load.answers)
    assert set(load.answers) == {json.dumps({"predictions": ["setosa", "virginica"], "version": 2}, sort_keys=True)}
    assert json.loads(kubectl("get", "deploy", name, "-n", ns, "-o", "json"))["spec"]["template"]["spec"]["containers"][0]["image"] == v2_image
    assert {p["spec"]["containers"][0]["image"] for p in _pods(kubectl, ns, svc)} == {v2_image}
    score.write_text(v2)
    assert project.ops() == {}

    # authEnabled: keys generated by the provider (secrets in state), checked by nginx in each pod.
    t = time.monotonic()
    write(deployment_config(ns, authEnabled=True))
    project.up()
    keys = project.outputs()
    k1, k2 = keys["primary_key"], keys["secondary_key"]
    assert k1 and k2 and k1 != k2
    state = project.export()
    assert k1 not in state and k2 not in state
    assert _score(uri).status_code == 401 and _score(uri, "wrong").status_code == 401
    assert _score(uri, k1).json()["version"] == 2 and _score(uri, k2).status_code == 200
    assert requests.get(f"http://127.0.0.1:{NODE_PORT}/", timeout=5).status_code == 200  # liveness stays open
    # Rotate the primary: refused once up finishes, the secondary keeps working throughout.
    write(deployment_config(ns, authEnabled=True), regen="primary:1")
    assert project.ops() == {"svc": "update"}
    project.up()
    k1b = project.outputs()["primary_key"]
    assert k1b != k1
    assert _score(uri, k1).status_code == 401 and _score(uri, k1b).status_code == 200 and _score(uri, k2).status_code == 200
    assert len([s for s in kubectl("get", "secret", "-n", ns, "-l", f"mldeploy.service={svc}", "-o", "name").split() if "-keys-" in s]) == 1
    timings["keys"] = time.monotonic() - t

    # Out of band: the Deployment deleted -> refresh finds it gone -> up recreates it.
    t = time.monotonic()
    kubectl("delete", "deploy", name, "-n", ns, "--wait=true")
    project.refresh()
    assert project.ops() == {"svc": "create"}
    project.up()
    k1c = project.outputs()["primary_key"]
    assert _score(uri, k1c).json()["version"] == 2
    # Out of band: scaled by hand -> refresh reads 1 replica -> up restores 3.
    kubectl("scale", "deploy", name, "-n", ns, "--replicas=1")
    project.refresh()
    assert project.ops() == {"svc": "update"}
    project.up()
    assert json.loads(kubectl("get", "deploy", name, "-n", ns, "-o", "json"))["spec"]["replicas"] == 3
    assert project.outputs()["replicas"] == 3
    timings["repair"] = time.monotonic() - t

    # A second node in a network namespace of this test's own: a fourth replica goes there (spread by hostname).
    t = time.monotonic()
    r = subprocess.run(["bash", ADD_NODE, "2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    write(deployment_config(ns, authEnabled=True, numReplicas=4), regen="primary:1")
    project.up()
    pods = _pods(kubectl, ns, svc)
    assert len(pods) == 4 and {p["spec"]["nodeName"] for p in pods} == {"mldeploy-1", "mldeploy-2"}, [p["spec"].get("nodeName") for p in pods]
    answered = {_score(uri, k1c).status_code for _ in range(20)}  # through 127.0.0.1 to pods on either node
    assert answered == {200}
    timings["second node"] = time.monotonic() - t
    r = subprocess.run(["bash", ADD_NODE, "--remove", "2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "mldeploy-2" not in kubectl("get", "nodes", "-o", "name")

    # destroy: nothing labelled is left, nor the namespace the deployment created.
    t = time.monotonic()
    destroyed = project.destroy()
    timings["destroy"] = time.monotonic() - t
    print("".join(line + "\n" for line in destroyed.output.splitlines() if "no longer has" in line), end="")
    assert _labelled(kubectl, ns, svc) == []
    phase = kubectl("get", "namespace", ns, "-o", "jsonpath={.status.phase}", check=False)
    assert phase in ("", "Terminating"), phase
    print(f"timings: { {k: round(v) for k, v in timings.items()} }, total {time.monotonic() - t0:.0f}s")


def test_kubernetes_fields_checked_at_preview(project: Project, tmp_path: Path, demo_base: str, kubectl: Kubectl, namespace: str) -> None:
    demo = copy_demo(tmp_path / "demo")
    svc = f"k8s-{project.name[-6:]}"

    def preview(dc: dict[str, Any], **kwargs: Any) -> str:
        project.write(deployment_program(demo, svc, demo_base, dc, {}, **kwargs))
        res = project.preview(check=False)
        return res.output if res.returncode != 0 else "(preview succeeded)\n" + res.output

    out = preview(deployment_config(namespace, port=8890))
    assert "deployment_config.port" in out and "node port, in 30000-32767" in out
    out = preview(deployment_config(namespace, containerResourceRequirements={"cpu": 64}))
    assert "deployment_config.containerResourceRequirements.cpu" in out and "no schedulable node has that much" in out
    out = preview(deployment_config(namespace, containerResourceRequirements={"gpu": 1}))
    assert "deployment_config.containerResourceRequirements.gpu" in out
    out = preview(deployment_config(namespace, sslEnabled=True))
    assert "deployment_config.sslEnabled" in out
    out = preview(deployment_config(namespace, computeType="aci"), target="kubernetes")
    assert "computeType 'aci'" in out and "not run by the kubernetes target" in out
    # An autoscaler on a cluster without a metrics API: preview says so and succeeds; refreshPeriodInSeconds is ignored.
    auto = deployment_config(namespace, autoScaler={"autoscaleEnabled": True, "minReplicas": 1, "maxReplicas": 3, "refreshPeriodInSeconds": 5})
    del auto["numReplicas"]
    out = preview(auto)
    assert out.startswith("(preview succeeded)"), out[-3000:]
    assert "no metrics API" in out and "refreshPeriodInSeconds is ignored" in out
    assert kubectl("get", "namespace", namespace, check=False) == ""  # preview created nothing
