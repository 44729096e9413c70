"""Inference services on Kubernetes: the ``kubernetes`` target.

Against any cluster a kubeconfig reaches: the stack config ``mldeploy:kubeconfig`` /
``mldeploy:kubeContext`` (``props["kubeconfig"]`` / ``props["kube_context"]``), else
``KUBECONFIG``, else the embedded cluster that ``make setup`` starts
(``$MLDEPLOY_HOME/kubernetes/kubeconfig``, see ``scripts/kubernetes/``).

Per deployment, in the deployment config's ``namespace`` (default ``default``), every object
labelled ``mldeploy.service=<service>`` and ``mldeploy.stack=<stack>`` and annotated with
``mldeploy.urn`` (a URN is not a valid label value), named ``mldeploy-<service>[-...]``:

- a Deployment: ``numReplicas`` pods (RollingUpdate, maxSurge 1, maxUnavailable 0), each
  with two containers: ``model``, the derived image's ``azmlinfsrv`` bound to the pod's
  loopback only, and ``front``, nginx (the swarm target's front image and configuration),
  the only way in, checking ``Authorization: Bearer <key>`` when ``authEnabled``;
  ``livenessProbeRequirements`` as the model's liveness probe and the pod's readiness
  probe (``GET /`` through nginx); both containers sleep a few seconds in ``preStop`` so
  kube-proxy stops sending before they stop (a rollout drops no request);
- a Service (NodePort; the deployment config's ``port`` is the node port);
- a ConfigMap (nginx.conf) and, with ``authEnabled``, a Secret (the keys), both named by
  their content hash so a change rolls the pods; objects of earlier versions are pruned
  once a rollout is done (a rollback still needs them until then);
- a ``kubernetes.io/dockerconfigjson`` Secret from the pull identity (the imagePullSecret);
- with ``autoScaler``, a HorizontalPodAutoscaler on CPU utilisation.

A rollout whose new pods never become ready (their container exits, the image cannot be
pulled, or readiness never passes within the health timeout) is rolled back the way
``kubectl rollout undo`` does it: the previous pod template is put back, the controller
scales the old ReplicaSet up again (its pods never stopped: maxUnavailable 0) and the
deploy fails with the failing pod's last log lines.

Objects are written with server-side apply (field manager ``mldeploy``, forced), so a
no-op deploy changes nothing and a hand-scaled Deployment is scaled back.

The ``kubernetes`` client's exceptions are translated in one place (``_api``); pure
manifest building is separate from the calls and unit-tested.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..errors import AuthError, BackendError, NotFound, ValidationError
from .docker_swarm import DEFAULT_PROBE, keys_file, nginx_conf, wait_http
from .ownership import describe, same_owner
from .protocols import DeploySpec, LiveState, check_compute_type

TARGET = "kubernetes"
COMPUTE_TYPES = ("aks", "local")
FIELD_MANAGER = "mldeploy"
MODEL_PORT = 5001
FRONT_PORT = 8080
LABEL_SERVICE = "mldeploy.service"
LABEL_STACK = "mldeploy.stack"
LABEL_TEMPLATE = "mldeploy.template"
ANN_URN = "mldeploy.urn"
ANN_PREFIX = "mldeploy.io/"
NODEPORT_RANGE = (30000, 32767)
PRESTOP_SECONDS = 3
# AksWebservice.deploy_configuration's defaults for what the deployment config leaves out.
AKS_DEFAULT_CPU = 0.1
AKS_DEFAULT_MEMORY_GB = 0.5
AKS_AUTOSCALE_DEFAULTS = {"minReplicas": 1, "maxReplicas": 10, "targetUtilization": 70}
GIB = 1024**3
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_FATAL_WAITING = ("CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError")

# Fields that name an Azure place, not behaviour: ignored with a warning.
IGNORED_FIELDS = {
    "location": "an Azure region; the cluster runs where its nodes are",
    "dnsNameLabel": "an Azure DNS label; the service answers on its node port",
    "computeTargetName": "an AKS cluster name; the cluster is the one the kubeconfig reaches",
}


# -- what the deployment config becomes --------------------------------------------------------
@dataclass(frozen=True)
class Probe:
    period: int
    initial_delay: int
    timeout: int
    failure_threshold: int
    success_threshold: int


@dataclass(frozen=True)
class Autoscale:
    min_replicas: int
    max_replicas: int
    target_utilization: int


@dataclass(frozen=True)
class Settings:
    """The deployment config (camelCase keys) as Kubernetes settings."""

    replicas: int
    requests: dict[str, str]
    limits: dict[str, str]
    probe: Probe
    scoring_timeout_ms: int | None
    workers: int | None
    auth_enabled: bool
    namespace: str
    node_port: int | None
    autoscale: Autoscale | None
    annotations: dict[str, str] = field(default_factory=dict)


def _cpu(v: float) -> str:
    return f"{round(float(v) * 1000)}m"


def _mem(gb: float) -> str:
    return f"{round(float(gb) * 1024)}Mi"


def autoscale_of(dc: dict[str, Any]) -> Autoscale | None:
    """As AKS decides it: ``autoScaler.autoscaleEnabled``, or an autoScaler without it and no ``numReplicas``."""
    auto = dc.get("autoScaler") or {}
    enabled = auto.get("autoscaleEnabled")
    if enabled is False or not auto or (enabled is None and dc.get("numReplicas")):
        return None
    vals: dict[str, Any] = {k: auto.get(k) if auto.get(k) is not None else d for k, d in AKS_AUTOSCALE_DEFAULTS.items()}
    return Autoscale(int(vals["minReplicas"]), int(vals["maxReplicas"]), int(vals["targetUtilization"]))


def settings_from_deployment(dc: dict[str, Any]) -> Settings:
    res = dc.get("containerResourceRequirements") or {}
    requests = {"cpu": _cpu(res.get("cpu") or AKS_DEFAULT_CPU), "memory": _mem(res.get("memoryInGB") or AKS_DEFAULT_MEMORY_GB)}
    limits: dict[str, str] = {}
    if res.get("cpuLimit"):
        limits["cpu"] = _cpu(res["cpuLimit"])
    if res.get("memoryInGBLimit"):
        limits["memory"] = _mem(res["memoryInGBLimit"])
    if res.get("gpu"):
        limits["nvidia.com/gpu"] = str(int(res["gpu"]))  # extended resources: request = limit
    lp = {**DEFAULT_PROBE, "successThreshold": 1, **{k: v for k, v in (dc.get("livenessProbeRequirements") or {}).items() if v is not None}}
    auto = autoscale_of(dc)
    annotations = {ANN_PREFIX + "tag." + k: str(v) for k, v in (dc.get("tags") or {}).items()}
    if dc.get("description"):
        annotations[ANN_PREFIX + "description"] = str(dc["description"])
    return Settings(
        replicas=auto.min_replicas if auto else int(dc.get("numReplicas") or 1),
        requests=requests,
        limits=limits,
        probe=Probe(int(lp["periodSeconds"]), int(lp["initialDelaySeconds"]), int(lp["timeoutSeconds"]), int(lp["failureThreshold"]), int(lp["successThreshold"])),
        scoring_timeout_ms=int(dc["scoringTimeoutMs"]) if dc.get("scoringTimeoutMs") else None,
        workers=int(dc["maxConcurrentRequestsPerContainer"]) if dc.get("maxConcurrentRequestsPerContainer") else None,
        auth_enabled=bool(dc.get("authEnabled")),
        namespace=str(dc.get("namespace") or "default"),
        node_port=int(dc["port"]) if dc.get("port") else None,
        autoscale=auto,
        annotations=annotations,
    )


def unsupported(dc: dict[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    """(errors as (field, message), warnings) for fields of ``dc`` the kubernetes target cannot honour. No I/O."""
    errors: list[tuple[str, str]] = []
    warnings: list[str] = []
    if dc.get("sslEnabled"):
        errors.append(("sslEnabled", "the kubernetes target serves plain HTTP on a node port; terminate TLS in front of it (an Ingress) and set sslEnabled to false"))
    if dc.get("appInsightsEnabled"):
        errors.append(("appInsightsEnabled", "there is no Application Insights here; read logs with `kubectl logs -l mldeploy.service=<service_name> -c model`"))
    if dc.get("maxQueueWaitMs") is not None:
        errors.append(("maxQueueWaitMs", "AKS's front-end request queue (azureml-fe) has no equivalent here; remove it (scoringTimeoutMs and maxConcurrentRequestsPerContainer are honoured)"))
    auto = dc.get("autoScaler") or {}
    if auto.get("autoscaleEnabled") and dc.get("numReplicas"):
        errors.append(("numReplicas", "numReplicas and autoScaler.autoscaleEnabled exclude each other (as on AKS): remove numReplicas, or set autoscaleEnabled to false"))
    a = autoscale_of(dc)
    if a and a.min_replicas > a.max_replicas:
        errors.append(("autoScaler.minReplicas", f"minReplicas {a.min_replicas} is above maxReplicas {a.max_replicas}"))
    if a and not 1 <= a.target_utilization <= 100:
        errors.append(("autoScaler.targetUtilization", f"{a.target_utilization}: a CPU percentage, 1..100"))
    if a and auto.get("refreshPeriodInSeconds") is not None:
        warnings.append("deployment_config.autoScaler.refreshPeriodInSeconds is ignored by the kubernetes target: the HorizontalPodAutoscaler's sync period is the cluster's (kube-controller-manager --horizontal-pod-autoscaler-sync-period)")
    res = dc.get("containerResourceRequirements") or {}
    for lim, req, default in (("cpuLimit", "cpu", AKS_DEFAULT_CPU), ("memoryInGBLimit", "memoryInGB", AKS_DEFAULT_MEMORY_GB)):
        if res.get(lim) and float(res[lim]) < float(res.get(req) or default):
            errors.append((f"containerResourceRequirements.{lim}", f"{res[lim]} is below the request {req}={res.get(req) or default}; a limit must be at least the request"))
    gpu = res.get("gpu")
    if gpu is not None and (not isinstance(gpu, int) or gpu < 0):
        errors.append(("containerResourceRequirements.gpu", f"{gpu!r}: a whole number of GPUs"))
    ns = dc.get("namespace")
    if ns is not None and (not _DNS_LABEL.match(str(ns)) or len(str(ns)) > 63):
        errors.append(("namespace", f"{ns!r} is not a Kubernetes namespace name: lowercase letters, digits and '-', starting with a letter, at most 63 characters"))
    port = dc.get("port")
    if port is not None and not NODEPORT_RANGE[0] <= int(port) <= NODEPORT_RANGE[1]:
        errors.append(
            (
                "port",
                f"{port}: on the kubernetes target the port is the Service's node port, in {NODEPORT_RANGE[0]}-{NODEPORT_RANGE[1]} "
                "(the cluster's default --service-node-port-range); pick one there, or remove port to let Kubernetes choose",
            )
        )
    warnings += [f"deployment_config.{k} is ignored by the kubernetes target: {why}" for k, why in IGNORED_FIELDS.items() if dc.get(k)]
    return errors, warnings


# -- manifests ----------------------------------------------------------------------------------
def names(service: str) -> dict[str, str]:
    base = f"mldeploy-{service}"
    return {"deployment": base, "service": base, "hpa": base, "pull": f"{base}-pull", "front": f"{base}-front", "keys": f"{base}-keys"}


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def label_value(text: str) -> str:
    """A valid label value (63 characters of [A-Za-z0-9._-], alphanumeric at both ends) naming ``text``."""
    v = re.sub(r"[^A-Za-z0-9._-]", "-", text).strip("-_.")
    if len(v) > 63 or v != text:
        v = f"{v[:52].strip('-_.')}-{short_hash(text)}"
    return v


def object_labels(labels: dict[str, str]) -> dict[str, str]:
    """The Kubernetes labels of every object: service and stack (label-safe)."""
    return {LABEL_SERVICE: label_value(labels[LABEL_SERVICE]), LABEL_STACK: label_value(labels.get(LABEL_STACK, ""))}


def ownership_labels(obj: dict[str, Any]) -> dict[str, str]:
    """An object's owner labels as ``backends/ownership.py`` reads them (stack and URN are annotations here)."""
    meta = obj.get("metadata") or {}
    ann, labels = meta.get("annotations") or {}, meta.get("labels") or {}
    return {k: v for k, v in {LABEL_SERVICE: labels.get(LABEL_SERVICE), LABEL_STACK: ann.get(ANN_PREFIX + "stack"), ANN_URN: ann.get(ANN_URN)}.items() if v}


def metadata(name: str, namespace: str, labels: dict[str, str], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    ann = {ANN_URN: labels.get(ANN_URN, ""), ANN_PREFIX + "stack": labels.get(LABEL_STACK, ""), **(annotations or {})}
    return {"name": name, "namespace": namespace, "labels": object_labels(labels), "annotations": ann}


def pull_secret_manifest(name: str, namespace: str, registry: str, auth: dict[str, str], labels: dict[str, str]) -> dict[str, Any]:
    token = base64.b64encode(f"{auth['username']}:{auth['password']}".encode()).decode()
    config = {"auths": {registry: {"username": auth["username"], "password": auth["password"], "auth": token}}}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(name, namespace, labels),
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
    }


def front_conf(s: Settings) -> str:
    """nginx.conf for the pod's front: the swarm target's front, proxying to the model on the pod's loopback."""
    return nginx_conf("model", s.auth_enabled, s.scoring_timeout_ms, backend=f"127.0.0.1:{MODEL_PORT}")


def config_map_manifest(name: str, namespace: str, conf: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(name, namespace, labels), "data": {"nginx.conf": conf}}


def keys_secret_manifest(name: str, namespace: str, body: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(name, namespace, labels),
        "type": "Opaque",
        "data": {"mldeploy-keys": base64.b64encode(body.encode()).decode()},
    }


def pod_template(
    service: str, image: str, front_image: str, entry_script: str, s: Settings, labels: dict[str, str], config_name: str, keys_name: str | None, pull_name: str
) -> dict[str, Any]:
    """The Deployment's pod template. Its label ``mldeploy.template`` is a hash of everything else in it."""
    env = [{"name": "MLDEPLOY_BIND_HOST", "value": "127.0.0.1"}]  # only the front (same pod) reaches the server
    if s.scoring_timeout_ms:
        env.append({"name": "SCORING_TIMEOUT_MS", "value": str(s.scoring_timeout_ms)})
        env.append({"name": "WORKER_TIMEOUT", "value": str(max(300, math.ceil(s.scoring_timeout_ms / 1000) + 10))})
    if s.workers:
        env.append({"name": "WORKER_COUNT", "value": str(s.workers)})  # gunicorn sync workers: one request in flight each
    probe_get = {"path": "/", "port": FRONT_PORT}
    p = s.probe
    resources: dict[str, Any] = {"requests": dict(s.requests)}
    if s.limits:
        resources["limits"] = dict(s.limits)
        if "nvidia.com/gpu" in s.limits:
            resources["requests"]["nvidia.com/gpu"] = s.limits["nvidia.com/gpu"]
    pre_stop = {"preStop": {"sleep": {"seconds": PRESTOP_SECONDS}}}
    model = {
        "name": "model",
        "image": image,
        "command": ["azmlinfsrv"],
        "args": ["--entry_script", f"/var/azureml-app/{entry_script}", "--port", str(MODEL_PORT)],
        "env": env,
        "resources": resources,
        # AKS's liveness probe, through the front to the server's liveness route; a failing one restarts the server.
        "livenessProbe": {
            "httpGet": probe_get,
            "initialDelaySeconds": p.initial_delay,
            "periodSeconds": p.period,
            "timeoutSeconds": p.timeout,
            "failureThreshold": p.failure_threshold,
            "successThreshold": 1,
        },
        # The same route decides when the pod takes traffic (a rollout waits for it).
        "readinessProbe": {
            "httpGet": probe_get,
            "periodSeconds": p.period,
            "timeoutSeconds": p.timeout,
            "failureThreshold": p.failure_threshold,
            "successThreshold": p.success_threshold,
        },
        "lifecycle": pre_stop,
    }
    mounts = [{"name": "front-conf", "mountPath": "/etc/mldeploy", "readOnly": True}]
    volumes: list[dict[str, Any]] = [{"name": "front-conf", "configMap": {"name": config_name}}]
    if keys_name:
        mounts.append({"name": "keys", "mountPath": "/run/secrets", "readOnly": True})
        volumes.append({"name": "keys", "secret": {"secretName": keys_name, "defaultMode": 0o400}})
    front = {
        "name": "front",
        "image": front_image,
        "ports": [{"name": "http", "containerPort": FRONT_PORT}],
        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}},
        "volumeMounts": mounts,
        "readinessProbe": {"tcpSocket": {"port": FRONT_PORT}, "periodSeconds": max(1, p.period)},
        "lifecycle": pre_stop,
    }
    spec = {
        "automountServiceAccountToken": False,
        # The pause container is PID 1, not azmlinfsrv: as PID 1 it ignores SIGTERM and every stop took the
        # whole grace period (30 s); measured with docker stop, 31 s alone, 0.6 s behind an init.
        "shareProcessNamespace": True,
        "enableServiceLinks": False,
        "imagePullSecrets": [{"name": pull_name}],
        "terminationGracePeriodSeconds": 30,
        "containers": [model, front],
        "volumes": volumes,
        # Spread each version's replicas over the nodes (preferred, never blocking a rollout).
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {LABEL_SERVICE: object_labels(labels)[LABEL_SERVICE]}},
                "matchLabelKeys": ["pod-template-hash"],
            }
        ],
    }
    ann = {ANN_URN: labels.get(ANN_URN, ""), **s.annotations}
    digest = short_hash(json.dumps({"spec": spec, "annotations": ann}, sort_keys=True))
    return {"metadata": {"labels": {**object_labels(labels), LABEL_TEMPLATE: digest}, "annotations": ann}, "spec": spec}


def deployment_manifest(name: str, namespace: str, template: dict[str, Any], s: Settings, labels: dict[str, str], progress_deadline: int) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {LABEL_SERVICE: object_labels(labels)[LABEL_SERVICE]}},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "revisionHistoryLimit": 5,
        "progressDeadlineSeconds": progress_deadline,
        "template": template,
    }
    if s.autoscale is None:
        spec["replicas"] = s.replicas  # with an autoscaler, the HorizontalPodAutoscaler owns the count
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata(name, namespace, labels, s.annotations), "spec": spec}


def service_manifest(name: str, namespace: str, s: Settings, labels: dict[str, str]) -> dict[str, Any]:
    port: dict[str, Any] = {"name": "http", "port": 80, "targetPort": FRONT_PORT, "protocol": "TCP"}
    if s.node_port:
        port["nodePort"] = s.node_port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(name, namespace, labels, s.annotations),
        "spec": {"type": "NodePort", "selector": {LABEL_SERVICE: object_labels(labels)[LABEL_SERVICE]}, "ports": [port]},
    }


def hpa_manifest(name: str, namespace: str, deployment: str, a: Autoscale, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(name, namespace, labels),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
            "minReplicas": a.min_replicas,
            "maxReplicas": a.max_replicas,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": a.target_utilization}}}],
        },
    }


# -- quantities (preflight) ---------------------------------------------------------------------
_SUFFIX = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "m": 1e-3, "": 1}


def quantity(q: str | int | float) -> float:
    """A Kubernetes quantity (``500m``, ``2Gi``, ``4``) as a number (cores, bytes, devices)."""
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(q).strip())
    if not m or m.group(2) not in _SUFFIX:
        raise ValueError(f"not a quantity: {q!r}")
    return float(m.group(1)) * _SUFFIX[m.group(2)]


def capacity_problems(s: Settings, nodes: list[dict[str, str]]) -> list[tuple[str, str]]:
    """(field, message) for requests no schedulable node can hold; ``nodes`` are their allocatable resources."""
    fields = {"cpu": "containerResourceRequirements.cpu", "memory": "containerResourceRequirements.memoryInGB", "nvidia.com/gpu": "containerResourceRequirements.gpu"}
    want = {**s.requests, **({"nvidia.com/gpu": s.limits["nvidia.com/gpu"]} if "nvidia.com/gpu" in s.limits else {})}
    problems = []
    for res, q in want.items():
        need = quantity(q)
        have = [quantity(n.get(res, "0")) for n in nodes]
        if not any(h >= need for h in have):
            most = max(have, default=0.0)
            shown = f"{most / GIB:.2f} GB" if res == "memory" else f"{most:g}"
            problems.append((fields[res], f"each replica requests {q} {res}, but no schedulable node has that much allocatable (largest: {shown} over {len(nodes)} node(s))"))
        elif need * s.replicas > sum(have):
            problems.append((fields[res], f"{s.replicas} replicas request {need * s.replicas:g} {res} in all; the nodes' allocatable total is {sum(have):g}"))
    return problems


# -- the client ---------------------------------------------------------------------------------
def embedded_kubeconfig() -> Path:
    from ..settings import Settings as Local

    return Local.from_env().home / "kubernetes" / "kubeconfig"


def kubeconfig_of(props: dict[str, Any]) -> tuple[str, str | None]:
    """(kubeconfig path, context): the stack config's, else KUBECONFIG's first file, else the embedded cluster's."""
    path = props.get("kubeconfig") or (os.environ.get("KUBECONFIG") or "").split(os.pathsep)[0] or str(embedded_kubeconfig())
    return str(Path(path).expanduser()), props.get("kube_context") or None


def _explain(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if body:
        try:
            return str(json.loads(body).get("message") or body)
        except (ValueError, AttributeError):
            return str(body)[:300]
    return str(getattr(exc, "reason", None) or exc)


@contextlib.contextmanager
def _api(doing: str) -> Iterator[None]:
    """Translate the kubernetes client's exceptions into mldeploy's: 404 NotFound, 401/403 AuthError."""
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException
    from urllib3.exceptions import HTTPError

    try:
        yield
    except ApiException as exc:
        if exc.status == 404:
            raise NotFound(f"{doing}: not found ({_explain(exc)})") from exc
        if exc.status in (401, 403):
            raise AuthError(f"{doing}: the cluster refused the kubeconfig's credentials (HTTP {exc.status}: {_explain(exc)})") from exc
        raise BackendError(f"{doing}: HTTP {exc.status}: {_explain(exc)}") from exc
    except ConfigException as exc:
        raise BackendError(f"{doing}: the kubeconfig is unusable: {exc}") from exc
    except (HTTPError, OSError) as exc:
        raise BackendError(f"{doing}: cannot reach the Kubernetes API: {exc}") from exc


class Cluster:
    """Thin calls to one cluster's API. Make one per provider call (holds an API client, never pickled)."""

    def __init__(self, props: dict[str, Any], progress: Callable[[str], None] = lambda _m: None) -> None:
        from kubernetes import client, config

        self.kubeconfig, self.context = kubeconfig_of(props)
        self.progress = progress
        if not Path(self.kubeconfig).is_file():
            hint = (
                "the embedded cluster is started by `make setup` (or scripts/kubernetes/up.sh)"
                if self.kubeconfig == str(embedded_kubeconfig())
                else "set mldeploy:kubeconfig (pulumi config set mldeploy:kubeconfig <path>) or KUBECONFIG"
            )
            raise BackendError(f"no kubeconfig at {self.kubeconfig}: {hint}")
        with _api(f"loading kubeconfig {self.kubeconfig}"):
            self.api_client = config.new_client_from_config(config_file=self.kubeconfig, context=self.context)
        self.host = str(self.api_client.configuration.host)
        self.core = client.CoreV1Api(self.api_client)
        self.apps = client.AppsV1Api(self.api_client)
        self.autoscaling = client.AutoscalingV2Api(self.api_client)

    def close(self) -> None:
        self.api_client.close()

    # -- generic -----------------------------------------------------------------------------------
    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply (field manager ``mldeploy``, forced); returns the object as the server has it."""
        kind, meta = manifest["kind"], manifest["metadata"]
        call = {
            "Deployment": self.apps.patch_namespaced_deployment,
            "Service": self.core.patch_namespaced_service,
            "Secret": self.core.patch_namespaced_secret,
            "ConfigMap": self.core.patch_namespaced_config_map,
            "HorizontalPodAutoscaler": self.autoscaling.patch_namespaced_horizontal_pod_autoscaler,
        }[kind]
        with _api(f"applying {kind} {meta['namespace']}/{meta['name']}"):
            obj = call(meta["name"], meta["namespace"], manifest, field_manager=FIELD_MANAGER, force=True, _content_type="application/apply-patch+yaml")
        return dict(self.api_client.sanitize_for_serialization(obj))

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        call = {
            "Deployment": self.apps.read_namespaced_deployment,
            "Service": self.core.read_namespaced_service,
            "HorizontalPodAutoscaler": self.autoscaling.read_namespaced_horizontal_pod_autoscaler,
            "Namespace": lambda name, _ns: self.core.read_namespace(name),
        }[kind]
        with _api(f"reading {kind} {namespace}/{name}"):
            return dict(self.api_client.sanitize_for_serialization(call(name, namespace)))

    def owned(self, namespace: str, service: str) -> list[tuple[str, dict[str, Any]]]:
        """Every object of ours for ``service`` in ``namespace``: (kind, object)."""
        sel = f"{LABEL_SERVICE}={label_value(service)}"
        out: list[tuple[str, dict[str, Any]]] = []
        for kind, call in (
            ("HorizontalPodAutoscaler", self.autoscaling.list_namespaced_horizontal_pod_autoscaler),
            ("Deployment", self.apps.list_namespaced_deployment),
            ("Service", self.core.list_namespaced_service),
            ("ConfigMap", self.core.list_namespaced_config_map),
            ("Secret", self.core.list_namespaced_secret),
        ):
            with _api(f"listing {kind}s labelled {sel} in {namespace}"):
                items = call(namespace, label_selector=sel).items
            out += [(kind, dict(self.api_client.sanitize_for_serialization(i))) for i in items]
        return out

    def delete(self, kind: str, namespace: str, name: str) -> None:
        from kubernetes import client

        call = {
            "Deployment": self.apps.delete_namespaced_deployment,
            "Service": self.core.delete_namespaced_service,
            "Secret": self.core.delete_namespaced_secret,
            "ConfigMap": self.core.delete_namespaced_config_map,
            "HorizontalPodAutoscaler": self.autoscaling.delete_namespaced_horizontal_pod_autoscaler,
        }[kind]
        try:
            with _api(f"deleting {kind} {namespace}/{name}"):
                call(name, namespace, body=client.V1DeleteOptions(propagation_policy="Foreground"))
        except NotFound:
            pass

    def delete_pods_of_lost_nodes(self, namespace: str, pods: list[dict[str, Any]]) -> list[tuple[str, str]]:
        """Force-delete (grace 0) those of ``pods`` bound to a node the cluster no longer lists; returns (pod, node).

        Nothing can stop their containers any more (the node's kubelet is gone), so waiting for them waits for the
        pod garbage collector, 40-60 s; ``kubectl delete --force --grace-period=0`` is what an operator would run.
        """
        from kubernetes import client

        try:
            names = {n["metadata"]["name"] for n in self.nodes()}
        except BackendError:  # nodes that cannot be listed are not known to be gone: wait for the pods as before
            return []
        lost = [(p["metadata"]["name"], p["spec"]["nodeName"]) for p in pods if p.get("spec", {}).get("nodeName") not in (None, *names)]
        for pod, _node in lost:
            try:
                with _api(f"deleting pod {namespace}/{pod}"):
                    self.core.delete_namespaced_pod(pod, namespace, body=client.V1DeleteOptions(grace_period_seconds=0))
            except NotFound:
                pass
        return lost

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        with _api(f"listing pods labelled {selector} in {namespace}"):
            items = self.core.list_namespaced_pod(namespace, label_selector=selector).items
        return [dict(self.api_client.sanitize_for_serialization(p)) for p in items]

    def pod_logs(self, namespace: str, pod: str, container: str, previous: bool, lines: int = 40) -> str:
        try:
            with _api(f"reading the logs of pod {namespace}/{pod}"):
                return str(self.core.read_namespaced_pod_log(pod, namespace, container=container, previous=previous, tail_lines=lines))
        except BackendError as exc:
            if previous:
                return self.pod_logs(namespace, pod, container, False, lines)
            return f"(logs unavailable: {exc})"

    def ensure_namespace(self, namespace: str, labels: dict[str, str]) -> None:
        try:
            self.get("Namespace", "", namespace)
        except NotFound:
            with _api(f"creating namespace {namespace}"):
                self.core.create_namespace({"metadata": {"name": namespace, "labels": object_labels(labels), "annotations": {ANN_URN: labels.get(ANN_URN, "")}}})
            self.progress(f"created namespace {namespace}")

    def nodes(self) -> list[dict[str, Any]]:
        with _api("listing nodes"):
            items = self.core.list_node().items
        return [dict(self.api_client.sanitize_for_serialization(n)) for n in items]

    def has_metrics_api(self) -> bool:
        from kubernetes import client

        try:
            with _api("listing API groups"):
                groups = client.ApisApi(self.api_client).get_api_versions().groups
        except BackendError:
            return False
        return any(g.name == "metrics.k8s.io" for g in groups)

    def node_port_owner(self, port: int) -> str | None:
        """``namespace/name`` of the Service holding node port ``port``, if any."""
        with _api("listing services"):
            items = self.core.list_service_for_all_namespaces().items
        for svc in items:
            for p in svc.spec.ports or []:
                if p.node_port == port:
                    return f"{svc.metadata.namespace}/{svc.metadata.name}"
        return None

    def scoring_host(self) -> str:
        """Where node ports answer from here: 127.0.0.1 for a cluster whose API is on loopback (the embedded
        one: kube-proxy serves node ports on 127.0.0.1), else the first node's external, then internal, address."""
        host = urlparse(self.host).hostname or ""
        if host in ("127.0.0.1", "localhost", "::1"):
            return "127.0.0.1"
        for kind in ("ExternalIP", "InternalIP"):
            for n in self.nodes():
                for a in n.get("status", {}).get("addresses", []):
                    if a.get("type") == kind:
                        return str(a["address"])
        return host


# -- rollouts -----------------------------------------------------------------------------------
class RolledBack(BackendError):
    """A rollout failed and the previous pod template was put back: the previous version keeps serving."""


def _ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in pod.get("status", {}).get("conditions") or [])


def pod_failure(pod: dict[str, Any]) -> str | None:
    """Why a pod will not become ready without a change, or None while it may still: a container that exited
    with an error (e.g. init() raised) or cannot start (image pull, config)."""
    status = pod.get("status", {})
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        term = (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get("terminated") or {}
        if waiting.get("reason") in _FATAL_WAITING:
            return f"container {cs['name']}: {waiting['reason']}: {waiting.get('message') or term.get('reason') or ''}".strip()
        if term and term.get("exitCode", 0) != 0:
            return f"container {cs['name']} exited with code {term.get('exitCode')} ({term.get('reason') or 'Error'})"
    if status.get("phase") == "Failed":
        return f"pod failed: {status.get('reason') or ''} {status.get('message') or ''}".strip()
    for c in status.get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable":
            return f"unschedulable: {c.get('message')}"
    return None


def wait_rollout(
    cl: Cluster, namespace: str, name: str, template_label: str, service_label: str, replicas: int | None, timeout: float, progress: Callable[[str], None]
) -> None:
    """Wait until the Deployment runs ``replicas`` ready pods of the template ``template_label`` and nothing else:
    pods of other templates are gone, not merely terminating (until then they may still take requests, e.g.
    with a key that was just rotated out).

    Raises ``BackendError`` naming the failing pod, its reason and last log lines, on a fatal pod
    failure or after ``timeout``.
    """
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        dep = cl.get("Deployment", namespace, name)
        spec, st = dep["spec"], dep.get("status") or {}
        want = replicas if replicas is not None else int(spec.get("replicas") or 1)
        every = cl.pods(namespace, f"{LABEL_SERVICE}={service_label}")
        pods = [p for p in every if p["metadata"]["labels"].get(LABEL_TEMPLATE) == template_label and not p["metadata"].get("deletionTimestamp")]
        others = [p for p in every if p["metadata"]["labels"].get(LABEL_TEMPLATE) != template_label]
        done = (
            st.get("observedGeneration", 0) >= dep["metadata"]["generation"]
            and st.get("updatedReplicas", 0) == want
            and st.get("readyReplicas", 0) == want
            and st.get("replicas", 0) == want
            and st.get("unavailableReplicas", 0) == 0
            and not others
        )
        if done:
            return
        for p in pods:
            why = pod_failure(p)
            if why:
                raise BackendError(failure_report(cl, namespace, p, why))
        line = f"{name}: {sum(1 for p in pods if _ready(p))}/{want} new pods ready, {len(others)} old pod(s) left"
        if line != last:
            progress(line)
            last = line
        if time.monotonic() > deadline:
            stuck = next((p for p in pods if not _ready(p)), None)
            detail = failure_report(cl, namespace, stuck, "not ready") if stuck else "no new pod was created"
            raise BackendError(f"{name} did not become ready within {timeout:.0f}s ({line}); {detail}")
        time.sleep(0.5)


def failure_report(cl: Cluster, namespace: str, pod: dict[str, Any], why: str) -> str:
    restarted = any((cs.get("restartCount") or 0) > 0 or (cs.get("lastState") or {}).get("terminated") for cs in pod.get("status", {}).get("containerStatuses") or [])
    logs = cl.pod_logs(namespace, pod["metadata"]["name"], "model", previous=restarted)
    return f"pod {pod['metadata']['name']} ({why}); its last log lines (container model):\n{logs}"


def _template_of(dep: dict[str, Any]) -> dict[str, Any]:
    t: dict[str, Any] = json.loads(json.dumps(dep["spec"]["template"]))
    t.get("metadata", {}).pop("creationTimestamp", None)
    return t


# -- the runtime --------------------------------------------------------------------------------
def _front_image(spec: DeploySpec, progress: Callable[[str], None]) -> str:
    from ..settings import Settings as Local
    from .docker_swarm import FRONT_IMAGE_LOCK, front_image

    local = Local.from_env()
    log = str(local.logs_dir / "kubernetes-front-build.log")
    return front_image(spec.registry, local.base_os_image, spec.push_auth, log, local.cache_dir / FRONT_IMAGE_LOCK, progress)


class KubernetesRuntime:
    """The ``kubernetes`` target (see the module docstring). Holds no state: every call builds its client."""

    target = TARGET
    builds_image = True

    def validate(self, deployment: dict[str, Any], source: str, warn: Callable[[str], None]) -> None:
        check_compute_type(deployment, source, TARGET, COMPUTE_TYPES)
        errors, warnings = unsupported(deployment)
        for w in warnings:
            warn(f"warning: {w}")
        if errors:
            field = errors[0][0] if len(errors) == 1 else "(several fields)"
            detail = "; ".join(f"{f}: {m}" for f, m in errors)
            raise ValidationError(f"deployment_config.{field}", f"the kubernetes target cannot honour this (in {source}): {detail}")

    def preflight(self, spec: DeploySpec, progress: Callable[[str], None]) -> None:
        n = names(spec.service)
        if len(n["front"]) + 16 > 253 or len(n["service"]) > 63 or not _DNS_LABEL.match(n["service"]):
            raise ValidationError("service_name", f"{spec.service!r}: on the kubernetes target mldeploy-<service_name> must be a DNS label (lowercase letters, digits, '-'; at most 63 characters)")
        s = settings_from_deployment(spec.deployment)
        try:
            cl = Cluster(spec.props, progress)
        except BackendError as exc:
            raise ValidationError("kubeconfig", str(exc)) from exc
        try:
            try:
                nodes = cl.nodes()
            except AuthError as exc:
                raise ValidationError("kubeconfig", str(exc)) from exc
            except BackendError as exc:
                raise ValidationError("kubeconfig", f"{exc} (kubeconfig {cl.kubeconfig}; the embedded cluster is started by `make setup`)") from exc
            try:
                theirs = ownership_labels(cl.get("Deployment", s.namespace, n["deployment"]))
                if not same_owner(theirs, spec.labels):
                    raise ValidationError(
                        "service_name",
                        f"service {spec.service!r} is already deployed by {describe(theirs)} (Deployment {s.namespace}/{n['deployment']}); "
                        "choose another service_name or namespace, or destroy it in that stack first",
                    )
            except NotFound:
                pass
            if s.node_port:
                owner = cl.node_port_owner(s.node_port)
                if owner and owner != f"{s.namespace}/{n['service']}":
                    raise ValidationError("deployment_config.port", f"node port {s.node_port} is held by Service {owner}; pick another port in {NODEPORT_RANGE[0]}-{NODEPORT_RANGE[1]}")
            schedulable = [nd["status"].get("allocatable") or {} for nd in nodes if not nd.get("spec", {}).get("unschedulable")]
            for f, msg in capacity_problems(s, schedulable):
                raise ValidationError(f"deployment_config.{f}", msg)
            if s.autoscale and not cl.has_metrics_api():
                progress(
                    "autoScaler: this cluster serves no metrics API (metrics.k8s.io): the HorizontalPodAutoscaler is created "
                    f"but keeps {s.autoscale.min_replicas} replica(s) until metrics-server (or another metrics provider) runs"
                )
        finally:
            cl.close()

    def deploy(self, spec: DeploySpec, progress: Callable[[str], None]) -> dict[str, Any]:
        if not spec.image_ref:
            raise BackendError("the kubernetes target runs a pushed derived image; none was given")
        s = settings_from_deployment(spec.deployment)
        if s.auth_enabled and not spec.keys:
            raise BackendError("authEnabled is true but no keys were generated")
        ns, labels = s.namespace, spec.labels
        front = _front_image(spec, progress)
        cl = Cluster(spec.props, progress)
        try:
            try:
                cl.get("Deployment", ns, names(spec.service)["deployment"])
                existed = True
            except NotFound:
                existed = False
            return self._deploy(cl, spec, s, front, progress)
        except Exception:
            if not existed:  # a failed create leaves nothing half-made behind
                try:
                    self.remove(spec.service, {**spec.props, "namespace": ns}, labels, progress)
                except Exception as exc:
                    progress(f"could not clean up the failed deployment: {exc}")
            raise
        finally:
            cl.close()

    def _deploy(self, cl: Cluster, spec: DeploySpec, s: Settings, front: str, progress: Callable[[str], None]) -> dict[str, Any]:
        assert spec.image_ref
        n = names(spec.service)
        ns, labels = s.namespace, spec.labels
        cl.ensure_namespace(ns, labels)
        cl.apply(pull_secret_manifest(n["pull"], ns, spec.registry, spec.pull_auth, labels))
        conf = front_conf(s)
        config_name = f"{n['front']}-{short_hash(conf)}"
        cl.apply(config_map_manifest(config_name, ns, conf, labels))
        keys_name = None
        if s.auth_enabled and spec.keys:
            body = keys_file(*spec.keys)
            keys_name = f"{n['keys']}-{short_hash(body)}"
            cl.apply(keys_secret_manifest(keys_name, ns, body, labels))
        template = pod_template(spec.service, spec.image_ref, front, spec.entry_script, s, labels, config_name, keys_name, n["pull"])
        try:
            current = cl.get("Deployment", ns, n["deployment"])
            if not same_owner(ownership_labels(current), labels):
                raise BackendError(f"Deployment {ns}/{n['deployment']} belongs to {describe(ownership_labels(current))}; not touching it")
            previous: dict[str, Any] | None = _template_of(current)
        except NotFound:
            previous = None
        # health_timeout is per replica: a rollout replaces them one at a time
        timeout = spec.health_timeout * max(1, s.autoscale.min_replicas if s.autoscale else s.replicas)
        deadline = int(max(60, timeout))
        cl.apply(deployment_manifest(n["deployment"], ns, template, s, labels, deadline))
        rollout = previous is not None and previous.get("metadata", {}).get("labels", {}).get(LABEL_TEMPLATE) != template["metadata"]["labels"][LABEL_TEMPLATE]
        progress(
            f"{n['deployment']}: {'rolling update (maxSurge 1, maxUnavailable 0)' if rollout else 'converging'} to "
            f"{'autoscaled' if s.autoscale else s.replicas} replica(s) of {spec.image_ref.rsplit('/', 1)[-1][:40]}"
        )
        if s.autoscale:
            cl.apply(hpa_manifest(n["hpa"], ns, n["deployment"], s.autoscale, labels))
        else:
            cl.delete("HorizontalPodAutoscaler", ns, n["hpa"])
        svc = cl.apply(service_manifest(n["service"], ns, s, labels))
        tlabel = template["metadata"]["labels"][LABEL_TEMPLATE]
        service_label = object_labels(labels)[LABEL_SERVICE]
        try:
            wait_rollout(cl, ns, n["deployment"], tlabel, service_label, None if s.autoscale else s.replicas, timeout, progress)
        except BackendError as exc:
            if previous is None:
                raise
            progress(f"{n['deployment']}: the new pods do not become ready; rolling back to the previous pod template")
            cl.apply({**deployment_manifest(n["deployment"], ns, previous, s, labels, deadline)})
            old = previous["metadata"]["labels"][LABEL_TEMPLATE]
            try:
                wait_rollout(cl, ns, n["deployment"], old, service_label, None if s.autoscale else s.replicas, max(60.0, timeout), progress)
            finally:
                self._prune(cl, ns, spec.service, previous)
            raise RolledBack(f"rolled back {ns}/{n['deployment']}: the previous version keeps serving.\nfailing {exc}") from exc
        self._prune(cl, ns, spec.service, template)
        node_port = int(svc["spec"]["ports"][0]["nodePort"])
        host = cl.scoring_host()
        if host == "127.0.0.1":
            # the node port answers the liveness route (kube-proxy's rules are in place)
            wait_http(f"http://{host}:{node_port}/", timeout=min(spec.health_timeout, 60), what="the service", poll=0.3)
        progress(f"serving on {host}:{node_port} (NodePort){', keys required' if s.auth_enabled else ''}")
        return {
            "state": "running",
            "scoring_uri": f"http://{host}:{node_port}/score",
            "swagger_uri": f"http://{host}:{node_port}/swagger.json",
            "replicas": None if s.autoscale else s.replicas,  # an autoscaled count is the HorizontalPodAutoscaler's
            "running_image": spec.image_ref,
            "container_id": None,
            "container_name": n["deployment"],
            "namespace": ns,
            "node_port": node_port,
            "front_image": front,
        }

    @staticmethod
    def _prune(cl: Cluster, ns: str, service: str, template: dict[str, Any]) -> None:
        """Remove this deployment's ConfigMaps and key Secrets that the serving pod template does not use."""
        used = {v.get("configMap", {}).get("name") or v.get("secret", {}).get("secretName") for v in template["spec"].get("volumes", [])}
        n = names(service)
        for kind, obj in cl.owned(ns, service):
            name = obj["metadata"]["name"]
            if kind in ("ConfigMap", "Secret") and name.startswith((n["front"] + "-", n["keys"] + "-")) and name not in used:
                cl.delete(kind, ns, name)

    def read(self, service: str, outputs: dict[str, Any]) -> LiveState:
        ns = outputs.get("namespace") or settings_from_deployment(outputs.get("deployment") or {}).namespace
        n = names(service)
        cl = Cluster(outputs)
        try:
            dep = cl.get("Deployment", ns, n["deployment"])
            try:
                svc = cl.get("Service", ns, n["service"])
                node_port: int | None = int(svc["spec"]["ports"][0].get("nodePort") or 0) or None
            except NotFound:
                node_port = None
        finally:
            cl.close()
        spec, st = dep["spec"], dep.get("status") or {}
        model: dict[str, Any] = next((c for c in spec["template"]["spec"]["containers"] if c["name"] == "model"), {})
        replicas = int(spec.get("replicas") or 0)
        ready = int(st.get("readyReplicas") or 0)
        state = "stopped" if replicas == 0 else "running" if ready >= replicas and node_port else "degraded"
        autoscaled = autoscale_of(outputs.get("deployment") or {}) is not None
        return LiveState(
            state=state,
            replicas=None if autoscaled else replicas,
            image=model.get("image"),
            facts={"ready_replicas": ready, "namespace": ns, "node_port": node_port, "service_present": node_port is not None},
        )

    def remove(self, service: str, outputs: dict[str, Any], labels: dict[str, str], progress: Callable[[str], None]) -> None:
        ns = outputs.get("namespace") or settings_from_deployment(outputs.get("deployment") or {}).namespace
        try:
            cl = Cluster(outputs, progress)
        except BackendError as exc:
            if "no kubeconfig" in str(exc):
                progress(f"{exc}; nothing to remove")
                return
            raise
        try:
            urn = labels.get(ANN_URN)
            try:
                objs = cl.owned(ns, service)
            except NotFound:  # the namespace is gone: so is everything in it
                return
            for kind, obj in objs:
                if not same_owner(ownership_labels(obj), labels):
                    progress(f"left {kind} {ns}/{obj['metadata']['name']} alone: it belongs to {describe(ownership_labels(obj))}")
                    continue
                cl.delete(kind, ns, obj["metadata"]["name"])
            sel = f"{LABEL_SERVICE}={label_value(service)}"
            deadline = time.monotonic() + 90
            while (pods := cl.pods(ns, sel)) and time.monotonic() < deadline:
                for pod, node in cl.delete_pods_of_lost_nodes(ns, pods):
                    progress(f"pod {ns}/{pod} was on node {node}, which the cluster no longer has: deleted it without waiting")
                time.sleep(0.5)
            try:
                nsobj = cl.get("Namespace", "", ns)
                if urn and (nsobj["metadata"].get("annotations") or {}).get(ANN_URN) == urn:
                    with _api(f"deleting namespace {ns}"):
                        cl.core.delete_namespace(ns)
            except NotFound:
                pass
        finally:
            cl.close()


__all__ = [
    "Cluster",
    "KubernetesRuntime",
    "RolledBack",
    "Settings",
    "capacity_problems",
    "deployment_manifest",
    "hpa_manifest",
    "kubeconfig_of",
    "pod_failure",
    "pod_template",
    "pull_secret_manifest",
    "service_manifest",
    "settings_from_deployment",
    "unsupported",
]
