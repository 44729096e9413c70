"""The kubernetes target's manifests and field rules (no cluster): what the deployment config becomes."""

from __future__ import annotations

import base64
import json
import re

import pytest
from mldeploy.backends import kubernetes as k
from mldeploy.errors import BackendError, ValidationError

LABELS = {"mldeploy.service": "iris", "mldeploy.stack": "dev", "mldeploy.urn": "urn:pulumi:dev::proj::mldeploy:index:InferenceDeployment::svc"}
IMAGE = "127.0.0.1:5000/mldeploy/iris@sha256:" + "a" * 64
FRONT = "127.0.0.1:5000/mldeploy/swarm-front@sha256:" + "b" * 64
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

AKS = {
    "computeType": "aks",
    "numReplicas": 3,
    "containerResourceRequirements": {"cpu": 0.5, "memoryInGB": 1, "cpuLimit": 1, "memoryInGBLimit": 2},
    "livenessProbeRequirements": {"periodSeconds": 5, "initialDelaySeconds": 30, "timeoutSeconds": 3, "failureThreshold": 4, "successThreshold": 2},
    "scoringTimeoutMs": 20000,
    "maxConcurrentRequestsPerContainer": 2,
    "authEnabled": True,
    "namespace": "models",
    "port": 30080,
    "tags": {"team": "ml"},
    "description": "iris classifier",
}


def template(dc: dict, keys: str | None = "mldeploy-iris-keys-x") -> dict:
    s = k.settings_from_deployment(dc)
    return k.pod_template("iris", IMAGE, FRONT, "score.py", s, LABELS, "mldeploy-iris-front-x", keys, "mldeploy-iris-pull")


def test_aks_fields_become_the_deployment() -> None:
    s = k.settings_from_deployment(AKS)
    dep = k.deployment_manifest("mldeploy-iris", s.namespace, template(AKS), s, LABELS, 120)
    assert dep["metadata"]["namespace"] == "models"
    assert dep["spec"]["replicas"] == 3
    assert dep["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    assert dep["spec"]["progressDeadlineSeconds"] == 120
    pod = dep["spec"]["template"]["spec"]
    model, front = pod["containers"]
    assert model["image"] == IMAGE and front["image"] == FRONT
    assert model["resources"] == {"requests": {"cpu": "500m", "memory": "1024Mi"}, "limits": {"cpu": "1000m", "memory": "2048Mi"}}
    live, ready = model["livenessProbe"], model["readinessProbe"]
    assert (live["periodSeconds"], live["initialDelaySeconds"], live["timeoutSeconds"], live["failureThreshold"], live["successThreshold"]) == (5, 30, 3, 4, 1)
    assert (ready["periodSeconds"], ready["timeoutSeconds"], ready["failureThreshold"], ready["successThreshold"]) == (5, 3, 4, 2)
    assert live["httpGet"] == {"path": "/", "port": k.FRONT_PORT}
    env = {e["name"]: e["value"] for e in model["env"]}
    assert env == {"MLDEPLOY_BIND_HOST": "127.0.0.1", "SCORING_TIMEOUT_MS": "20000", "WORKER_TIMEOUT": "300", "WORKER_COUNT": "2"}
    assert model["args"] == ["--entry_script", "/var/azureml-app/score.py", "--port", str(k.MODEL_PORT)]
    assert pod["imagePullSecrets"] == [{"name": "mldeploy-iris-pull"}]
    assert pod["automountServiceAccountToken"] is False and pod["shareProcessNamespace"] is True
    assert {v["name"]: v for v in pod["volumes"]}["keys"]["secret"]["secretName"] == "mldeploy-iris-keys-x"
    for c in (model, front):
        assert c["lifecycle"]["preStop"]["sleep"]["seconds"] >= 1
    ann = dep["spec"]["template"]["metadata"]["annotations"]
    assert ann["mldeploy.io/tag.team"] == "ml" and ann["mldeploy.io/description"] == "iris classifier"


def test_every_label_is_a_valid_label_value_and_the_urn_is_an_annotation() -> None:
    s = k.settings_from_deployment(AKS)
    for m in (
        k.deployment_manifest("mldeploy-iris", "models", template(AKS), s, LABELS, 60),
        k.service_manifest("mldeploy-iris", "models", s, LABELS),
        k.pull_secret_manifest("p", "models", "127.0.0.1:5000", {"username": "u", "password": "p"}, LABELS),
    ):
        labels = m["metadata"]["labels"]
        assert labels["mldeploy.service"] == "iris" and labels["mldeploy.stack"] == "dev"
        assert all(LABEL_VALUE.match(v) and len(v) <= 63 for v in labels.values())
        assert m["metadata"]["annotations"]["mldeploy.urn"] == LABELS["mldeploy.urn"]
    long = k.label_value("a stack:with/odd chars" * 5)
    assert LABEL_VALUE.match(long) and len(long) <= 63
    assert k.label_value("plain-name") == "plain-name"


def test_defaults_are_akss() -> None:
    s = k.settings_from_deployment({"computeType": "aks"})
    assert s.replicas == 1 and s.requests == {"cpu": "100m", "memory": "512Mi"} and s.limits == {}
    assert (s.probe.period, s.probe.initial_delay, s.probe.timeout, s.probe.failure_threshold) == (10, 310, 2, 3)
    assert s.namespace == "default" and s.node_port is None and not s.auth_enabled
    pod = template({"computeType": "aks"}, keys=None)["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["front-conf"]


def test_template_label_changes_with_the_template_only() -> None:
    a, b = template(AKS), template(AKS)
    assert a["metadata"]["labels"][k.LABEL_TEMPLATE] == b["metadata"]["labels"][k.LABEL_TEMPLATE]
    c = template({**AKS, "scoringTimeoutMs": 30000})
    d = template(AKS, keys="mldeploy-iris-keys-y")  # a rotated key is a new Secret name: the pods roll
    assert len({x["metadata"]["labels"][k.LABEL_TEMPLATE] for x in (a, c, d)}) == 3


def test_gpu_is_an_extended_resource_request_and_limit() -> None:
    model = template({**AKS, "containerResourceRequirements": {"gpu": 1}})["spec"]["containers"][0]
    assert model["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert model["resources"]["requests"]["nvidia.com/gpu"] == "1"


def test_service_is_a_node_port_and_hpa_owns_replicas() -> None:
    s = k.settings_from_deployment(AKS)
    svc = k.service_manifest("mldeploy-iris", "models", s, LABELS)
    assert svc["spec"]["type"] == "NodePort" and svc["spec"]["ports"][0]["nodePort"] == 30080
    assert svc["spec"]["ports"][0]["targetPort"] == k.FRONT_PORT
    auto = {"computeType": "aks", "autoScaler": {"autoscaleEnabled": True, "minReplicas": 2, "maxReplicas": 5, "targetUtilization": 60}}
    s = k.settings_from_deployment(auto)
    assert s.autoscale == k.Autoscale(2, 5, 60)
    dep = k.deployment_manifest("mldeploy-iris", "default", template(auto), s, LABELS, 60)
    assert "replicas" not in dep["spec"]
    hpa = k.hpa_manifest("mldeploy-iris", "default", "mldeploy-iris", s.autoscale, LABELS)
    assert hpa["spec"]["minReplicas"] == 2 and hpa["spec"]["maxReplicas"] == 5
    assert hpa["spec"]["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 60}
    # AKS: an autoScaler without autoscaleEnabled autoscales only when numReplicas is unset
    assert k.autoscale_of({"autoScaler": {"maxReplicas": 4}}) == k.Autoscale(1, 4, 70)
    assert k.autoscale_of({"autoScaler": {"maxReplicas": 4}, "numReplicas": 2}) is None
    assert k.autoscale_of({"autoScaler": {"autoscaleEnabled": False}}) is None


def test_pull_secret_is_a_dockerconfigjson_for_the_registry() -> None:
    m = k.pull_secret_manifest("mldeploy-iris-pull", "default", "127.0.0.1:5000", {"username": "pull-1", "password": "s3cret"}, LABELS)
    assert m["type"] == "kubernetes.io/dockerconfigjson"
    cfg = json.loads(base64.b64decode(m["data"][".dockerconfigjson"]))
    entry = cfg["auths"]["127.0.0.1:5000"]
    assert entry["username"] == "pull-1" and base64.b64decode(entry["auth"]).decode() == "pull-1:s3cret"


def test_front_conf_checks_keys_and_proxies_to_the_pods_loopback() -> None:
    conf = k.front_conf(k.settings_from_deployment(AKS))
    assert 'set $mldeploy_backend "127.0.0.1:5001";' in conf
    assert "include /run/secrets/mldeploy-keys;" in conf and "return 401" in conf
    assert "resolver" not in conf
    assert "proxy_read_timeout 25s;" in conf
    assert "include /run/secrets" not in k.front_conf(k.settings_from_deployment({"computeType": "aks"}))


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"sslEnabled": True}, "sslEnabled"),
        ({"appInsightsEnabled": True}, "appInsightsEnabled"),
        ({"maxQueueWaitMs": 500}, "maxQueueWaitMs"),
        ({"numReplicas": 2, "autoScaler": {"autoscaleEnabled": True}}, "numReplicas"),
        ({"autoScaler": {"autoscaleEnabled": True, "minReplicas": 5, "maxReplicas": 2}}, "autoScaler.minReplicas"),
        ({"containerResourceRequirements": {"cpu": 1, "cpuLimit": 0.5}}, "containerResourceRequirements.cpuLimit"),
        ({"containerResourceRequirements": {"memoryInGBLimit": 0.25}}, "containerResourceRequirements.memoryInGBLimit"),
        ({"namespace": "Bad_NS"}, "namespace"),
        ({"port": 8890}, "port"),
    ],
)
def test_fields_it_cannot_honour_fail_validation_naming_the_field(extra: dict, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        k.KubernetesRuntime().validate({"computeType": "aks", **extra}, "deploymentconfig.json", lambda _w: None)
    assert err.value.field == f"deployment_config.{field}"
    assert "deploymentconfig.json" in err.value.message


def test_azure_places_are_ignored_with_a_warning() -> None:
    warnings: list[str] = []
    dc = {"computeType": "aks", "location": "westeurope", "computeTargetName": "aks-1", "autoScaler": {"autoscaleEnabled": True, "refreshPeriodInSeconds": 5}}
    k.KubernetesRuntime().validate(dc, "dc.json", warnings.append)
    assert any("location" in w for w in warnings) and any("computeTargetName" in w for w in warnings)
    assert any("refreshPeriodInSeconds" in w for w in warnings)


def test_capacity_is_checked_against_allocatable() -> None:
    s = k.settings_from_deployment({"computeType": "aks", "numReplicas": 2, "containerResourceRequirements": {"cpu": 1.5, "memoryInGB": 1, "gpu": 1}})
    nodes = [{"cpu": "2", "memory": "4Gi", "pods": "110"}, {"cpu": "1900m", "memory": "8036728Ki"}]
    problems = dict(k.capacity_problems(s, nodes))
    assert "no schedulable node" in problems["containerResourceRequirements.gpu"]
    assert "containerResourceRequirements.cpu" not in problems  # 1.5 fits on either, 3 <= 3.9
    big = k.settings_from_deployment({"computeType": "aks", "numReplicas": 3, "containerResourceRequirements": {"cpu": 1.5}})
    assert "in all" in dict(k.capacity_problems(big, nodes))["containerResourceRequirements.cpu"]
    assert k.quantity("500m") == 0.5 and k.quantity("2Gi") == 2 * 1024**3 and k.quantity("8036728Ki") == 8036728 * 1024


def test_pod_failure_tells_a_crash_from_a_slow_start() -> None:
    crashed = {"status": {"containerStatuses": [{"name": "model", "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}}]}}
    assert "CrashLoopBackOff" in (k.pod_failure(crashed) or "")
    exited = {"status": {"containerStatuses": [{"name": "model", "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 3, "reason": "Error"}}}]}}
    assert "exited with code 3" in (k.pod_failure(exited) or "")
    pull = {"status": {"containerStatuses": [{"name": "model", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}}
    assert "ImagePullBackOff" in (k.pod_failure(pull) or "")
    starting = {"status": {"containerStatuses": [{"name": "model", "state": {"waiting": {"reason": "ContainerCreating"}}}]}}
    assert k.pod_failure(starting) is None


def test_kubeconfig_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MLDEPLOY_HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert k.kubeconfig_of({}) == (str(tmp_path / "kubernetes" / "kubeconfig"), None)
    monkeypatch.setenv("KUBECONFIG", f"/a/config{__import__('os').pathsep}/b/config")
    assert k.kubeconfig_of({}) == ("/a/config", None)
    assert k.kubeconfig_of({"kubeconfig": "/c/kc", "kube_context": "prod"}) == ("/c/kc", "prod")


def test_api_exceptions_are_translated_once() -> None:
    from kubernetes.client.exceptions import ApiException
    from mldeploy.errors import AuthError, BackendError, NotFound

    for status, cls in ((404, NotFound), (401, AuthError), (403, AuthError), (500, BackendError)):
        with pytest.raises(cls) as err, k._api("reading Deployment default/x"):
            raise ApiException(status=status, reason="r")
        assert "reading Deployment default/x" in str(err.value)
        assert isinstance(err.value.__cause__, ApiException)


def test_destroy_does_not_wait_for_pods_of_a_node_the_cluster_no_longer_has() -> None:
    """A pod bound to a deleted node is force-deleted (grace 0); pods on live nodes and unscheduled ones are left
    to terminate. (The kubernetes lifecycle test's destroy waited 47 s for the pod garbage collector.)"""

    class Core:
        def __init__(self) -> None:
            self.deleted: list[tuple[str, str, int | None]] = []

        def delete_namespaced_pod(self, name: str, namespace: str, body: object) -> None:
            self.deleted.append((namespace, name, getattr(body, "grace_period_seconds", None)))

    cl = object.__new__(k.Cluster)
    core = Core()
    cl.core = core
    cl.nodes = lambda: [{"metadata": {"name": "mldeploy-1"}}]  # type: ignore[method-assign]
    pods = [
        {"metadata": {"name": "on-live"}, "spec": {"nodeName": "mldeploy-1"}},
        {"metadata": {"name": "on-gone"}, "spec": {"nodeName": "mldeploy-2"}},
        {"metadata": {"name": "pending"}, "spec": {}},
    ]
    assert cl.delete_pods_of_lost_nodes("ns", pods) == [("on-gone", "mldeploy-2")]
    assert core.deleted == [("ns", "on-gone", 0)]

    # Nodes that cannot be listed (a kubeconfig without the right) are not known to be gone: nothing is deleted.
    def forbidden() -> list[dict[str, object]]:
        raise BackendError("listing nodes: forbidden")

    cl.nodes = forbidden  # type: ignore[method-assign]
    assert cl.delete_pods_of_lost_nodes("ns", pods) == []
    assert core.deleted == [("ns", "on-gone", 0)]
