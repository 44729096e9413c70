"""Inference services on Docker Engine's Swarm mode: the ``swarm`` target.

Per deployment, all labelled ``mldeploy.service=<service>``:

- an overlay network ``mldeploy-<service>``;
- the model service ``mldeploy-<service>``: ``numReplicas`` tasks of the
  derived image, CPU and memory limits, the liveness probe as the container's
  health check, and Swarm's own rolling update (one task at a time,
  start-first, monitored, ``failure_action: rollback``). A task joins the
  service's DNS only once its health check passes, and leaves it (with
  Swarm's gossip delay) before it is stopped, so a rollout drops no request;
- the front ``mldeploy-<service>-front``: nginx (Debian's ``nginx-light``),
  proxying to the model service's tasks by Swarm's DNS and checking the
  ``Authorization: Bearer <key>`` header when ``authEnabled`` is true. Where
  it listens is ``MLDEPLOY_SWARM_PUBLISH_MODE``:

  - ``loopback`` (the default): one container on this manager, attached to
    the (attachable) overlay network and published on ``127.0.0.1:<port>``
    only, as the local target serves. Its nginx.conf and keys are copied
    into the container (``put_archive``; the keys file 0600, in no image and
    on no host path) and changed in place with an nginx reload (SIGHUP), so
    a key rotation drops no connection; a new front image or port replaces
    it stop-first.
  - ``host`` / ``ingress``: a global Swarm service publishing the port on
    every node, on every interface (Swarm's published ports take no host
    address), with a Swarm config (nginx.conf) and a Swarm secret (the keys).
    ``ingress`` is the routing mesh, which needs the kernel's IPVS (absent on
    this machine: ``CONFIG_IP_VS`` is not set, and an ingress port is never
    bound); ``host`` publishes on each node directly.

The model service uses ``dnsrr`` endpoints (VIPs are IPVS too), so the front
balances over the healthy tasks through Swarm's DNS.

Registry credentials: the pull-only identity is given to the Docker SDK's
in-memory auth store (``APIClient.login``); the SDK then sends it as the
``X-Registry-Auth`` header of ``create_service``/``update_service``, which is
``docker service create --with-registry-auth``: every node pulls with it and
nothing is written into an image or onto disk.

Everything here is pure spec-building (unit-tested) plus thin calls to the
Docker Engine API; Swarm does the scheduling, health checking, rolling
updates and rollbacks.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker import types as dt

from ..errors import BackendError, NotFound
from ..settings import swarm_publish_mode
from . import docker_engine
from .ownership import LABEL_PORT, LABEL_SERVICE, LABEL_STACK, LABEL_URN, describe, same_owner

LABEL_ROLE = "mldeploy.role"
LABEL_FRONT_SPEC = "mldeploy.front-spec"  # the loopback front's image, port and network: a change replaces the container
LABEL_TAG_PREFIX = "mldeploy.tag."
CONTAINER_PORT = 5001
FRONT_PORT = 8080
FRONT_CONF = "etc/mldeploy/nginx.conf"
FRONT_KEYS = "run/secrets/mldeploy-keys"  # where nginx_conf includes the keys from (the Swarm secret's path)
FRONT_IMAGE_LOCK = "front-image.lock"  # in the cache directory: the front image is built under it, once per machine
FRONT_APPLIED = "etc/mldeploy/applied"  # the generation the running nginx has loaded, written after its reload
PUBLISH_MODES = ("loopback", "host", "ingress")
FRONT_GENERATION_HEADER = "X-Mldeploy-Front"
NS = 1_000_000_000
GIB = 1024**3

# AKS's defaults for the fields the deployment config leaves out.
DEFAULT_PROBE = {"periodSeconds": 10, "initialDelaySeconds": 310, "timeoutSeconds": 2, "failureThreshold": 3}

FRONT_DOCKERFILE = """\
# mldeploy's front for swarm deployments: Debian's nginx, nothing else.
FROM {base}
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light \\
 && rm -rf /var/lib/apt/lists/*
STOPSIGNAL SIGQUIT
CMD ["nginx", "-c", "/etc/mldeploy/nginx.conf", "-g", "daemon off;"]
"""

# Terminal states of a service's UpdateStatus.
_DONE = "completed"
_ROLLED_BACK = ("rollback_completed", "rollback_paused", "paused")
# States of an update Swarm is still rolling out (``Swarm.finish_update`` waits for them to end).
_IN_PROGRESS = ("updating", "rollback_started")


# -- what the deployment config becomes ----------------------------------------------------------
@dataclass(frozen=True)
class Probe:
    period: int
    initial_delay: int
    timeout: int
    failure_threshold: int

    @property
    def monitor_seconds(self) -> int:
        """How long Swarm watches each updated task before taking the next: a full failing probe."""
        return max(3, self.period * self.failure_threshold)


@dataclass(frozen=True)
class ServiceSettings:
    replicas: int
    nano_cpus: int | None
    memory_bytes: int | None
    probe: Probe
    scoring_timeout_ms: int | None
    workers: int | None
    auth_enabled: bool
    tags: dict[str, str] = field(default_factory=dict)


def settings_from_deployment(dc: dict[str, Any]) -> ServiceSettings:
    """The deployment config (camelCase, as ``DeploymentConfig.model_dump(by_alias=True)``) as Swarm settings."""
    res = dc.get("containerResourceRequirements") or {}
    lp = {**DEFAULT_PROBE, **{k: v for k, v in (dc.get("livenessProbeRequirements") or {}).items() if v is not None}}
    cpu, mem = res.get("cpu"), res.get("memoryInGB")
    return ServiceSettings(
        replicas=int(dc.get("numReplicas") or 1),
        nano_cpus=round(float(cpu) * NS) if cpu else None,
        memory_bytes=round(float(mem) * GIB) if mem else None,
        probe=Probe(int(lp["periodSeconds"]), int(lp["initialDelaySeconds"]), int(lp["timeoutSeconds"]), int(lp["failureThreshold"])),
        scoring_timeout_ms=int(dc["scoringTimeoutMs"]) if dc.get("scoringTimeoutMs") else None,
        workers=int(dc["maxConcurrentRequestsPerContainer"]) if dc.get("maxConcurrentRequestsPerContainer") else None,
        auth_enabled=bool(dc.get("authEnabled")),
        tags={str(k): str(v) for k, v in (dc.get("tags") or {}).items()},
    )


# Fields of the source document's deployment config that Swarm cannot honour. Errors: the field asks
# for behaviour that would silently not happen. Ignored: the field names an Azure place, not behaviour.
IGNORED_FIELDS = {
    "location": "an Azure region; a swarm runs where its nodes are",
    "dnsNameLabel": "an Azure DNS label; the service answers on every node's address",
    "namespace": "a Kubernetes namespace; swarm services are named mldeploy-<service_name>",
    "computeTargetName": "an AKS cluster name; the swarm is the one this Docker Engine manages",
    "description": "kept as the service label mldeploy.description",
}


def unsupported(dc: dict[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    """(errors as (field, message), warnings) for fields of ``dc`` the swarm target cannot honour."""
    errors: list[tuple[str, str]] = []
    auto = dc.get("autoScaler") or {}
    if auto and auto.get("autoscaleEnabled") is not False:
        errors.append(
            (
                "autoScaler",
                "Swarm has no autoscaler: it runs exactly numReplicas tasks. Remove autoScaler (or set "
                "autoscaleEnabled to false) and set numReplicas; scale by changing numReplicas and running pulumi up",
            )
        )
    if (dc.get("containerResourceRequirements") or {}).get("gpu"):
        errors.append(("containerResourceRequirements.gpu", "the swarm target schedules CPU tasks only; remove gpu"))
    if dc.get("sslEnabled"):
        errors.append(("sslEnabled", "the swarm target serves plain HTTP; terminate TLS in front of it and set sslEnabled to false"))
    if dc.get("appInsightsEnabled"):
        errors.append(("appInsightsEnabled", "there is no Application Insights here; read logs with `docker service logs mldeploy-<service_name>`"))
    if dc.get("maxQueueWaitMs") is not None:
        errors.append(
            (
                "maxQueueWaitMs",
                "AKS's front-end request queue has no Swarm equivalent; remove it (scoringTimeoutMs and "
                "maxConcurrentRequestsPerContainer are honoured)",
            )
        )
    success = (dc.get("livenessProbeRequirements") or {}).get("successThreshold")
    if success not in (None, 1):
        errors.append(("livenessProbeRequirements.successThreshold", "Docker health checks pass on one success; set it to 1 or remove it"))
    warnings = [f"deployment_config.{k} is ignored by the swarm target: {why}" for k, why in IGNORED_FIELDS.items() if dc.get(k) and k != "description"]
    return errors, warnings


# -- specs ---------------------------------------------------------------------------------------
def names(service: str) -> dict[str, str]:
    return {"model": f"mldeploy-{service}", "front": f"mldeploy-{service}-front", "network": f"mldeploy-{service}"}


def base_labels(service: str, stack: str, urn: str, tags: dict[str, str] | None = None, description: str | None = None) -> dict[str, str]:
    labels = {LABEL_SERVICE: service, LABEL_STACK: stack, LABEL_URN: urn}
    labels.update({LABEL_TAG_PREFIX + k: v for k, v in (tags or {}).items()})
    if description:
        labels["mldeploy.description"] = description
    return labels


def healthcheck(probe: Probe) -> dict[str, Any]:
    """The liveness probe as the container's health check: GET / on the server's port, from inside the task."""
    test = [
        "CMD",
        "python3",
        "-c",
        f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{CONTAINER_PORT}/', timeout={probe.timeout})",
    ]
    check: dict[str, Any] = dt.Healthcheck(
        test=test,
        interval=probe.period * NS,
        timeout=probe.timeout * NS,
        retries=probe.failure_threshold,
        start_period=probe.initial_delay * NS,
    )
    return check


def model_service_spec(
    service: str, image: str, entry_script: str, s: ServiceSettings, labels: dict[str, str], network: str
) -> dict[str, Any]:
    """Keyword arguments of ``APIClient.create_service``/``update_service`` for the model service."""
    env = {"MLDEPLOY_BIND_HOST": "0.0.0.0"}
    if s.scoring_timeout_ms:
        env["SCORING_TIMEOUT_MS"] = str(s.scoring_timeout_ms)
        env["WORKER_TIMEOUT"] = str(max(300, math.ceil(s.scoring_timeout_ms / 1000) + 10))
    if s.workers:
        env["WORKER_COUNT"] = str(s.workers)  # gunicorn sync workers: one request in flight each
    role = {**labels, LABEL_ROLE: "model"}
    container = dt.ContainerSpec(
        image,
        command=["azmlinfsrv"],
        args=["--entry_script", f"/var/azureml-app/{entry_script}", "--port", str(CONTAINER_PORT)],
        env=env,
        labels=role,
        healthcheck=healthcheck(s.probe),
        stop_grace_period=10 * NS,
    )
    monitor = s.probe.monitor_seconds * NS
    return {
        "name": names(service)["model"],
        "labels": role,
        "task_template": dt.TaskTemplate(
            container_spec=container,
            resources=dt.Resources(cpu_limit=s.nano_cpus, mem_limit=s.memory_bytes),
            restart_policy=dt.RestartPolicy(condition="any", delay=2 * NS),
            networks=[network],
        ),
        "mode": dt.ServiceMode("replicated", replicas=s.replicas),
        "update_config": dt.UpdateConfig(
            parallelism=1, delay=0, failure_action="rollback", monitor=monitor, max_failure_ratio=0, order="start-first"
        ),
        "rollback_config": dt.RollbackConfig(parallelism=1, delay=0, failure_action="pause", monitor=monitor, order="start-first"),
        "endpoint_spec": {"Mode": "dnsrr"},
    }


def front_service_spec(
    service: str,
    image: str,
    port: int,
    publish_mode: str,
    config: tuple[str, str],
    secret: tuple[str, str] | None,
    labels: dict[str, str],
    network: str,
) -> dict[str, Any]:
    """The nginx front: one task per node, publishing ``port``. ``config``/``secret`` are (id, name)."""
    role = {**labels, LABEL_ROLE: "front"}
    container = dt.ContainerSpec(
        image,
        labels={**role, LABEL_PORT: str(port)},
        configs=[dt.ConfigReference(config[0], config[1], filename="/etc/mldeploy/nginx.conf")],
        secrets=[dt.SecretReference(secret[0], secret[1], filename="mldeploy-keys")] if secret else [],
        stop_grace_period=5 * NS,
    )
    host = publish_mode == "host"
    return {
        "name": names(service)["front"],
        "labels": role,
        "task_template": dt.TaskTemplate(
            container_spec=container,
            resources=dt.Resources(cpu_limit=NS // 2, mem_limit=128 * 1024**2),
            restart_policy=dt.RestartPolicy(condition="any", delay=1 * NS),
            networks=[network],
        ),
        "mode": dt.ServiceMode("global"),
        # A host-mode port cannot be held by two tasks on one node: replace the front stop-first there.
        "update_config": dt.UpdateConfig(
            parallelism=1, delay=0, failure_action="rollback", monitor=3 * NS, order="stop-first" if host else "start-first"
        ),
        "endpoint_spec": {
            "Mode": "dnsrr" if host else "vip",
            "Ports": [{"Protocol": "tcp", "PublishedPort": int(port), "TargetPort": FRONT_PORT, "PublishMode": publish_mode}],
        },
    }


def nginx_conf(
    model_service: str, auth_enabled: bool, scoring_timeout_ms: int | None, backend: str | None = None, generation: str | None = None
) -> str:
    """nginx's configuration for the front. Keys, when required, come from the keys secret.

    ``backend`` (``host:port``): a fixed upstream instead of the model service by Swarm's DNS (the kubernetes
    target's front proxies to the model container on the pod's loopback). ``generation``: sent as the
    ``X-Mldeploy-Front`` header of the liveness route, so a reload can be seen to have taken effect."""
    read_timeout = math.ceil((scoring_timeout_ms or 60_000) / 1000) + 5
    auth_map = (
        "  map $http_authorization $mldeploy_key_ok {\n    default 0;\n    include /run/secrets/mldeploy-keys;\n  }\n"
        if auth_enabled
        else ""
    )
    auth_check = (
        "      if ($mldeploy_key_ok = 0) {\n"
        "        add_header WWW-Authenticate 'Bearer realm=\"mldeploy\"' always;\n"
        '        return 401 \'{"error": "missing or invalid key: send Authorization: Bearer <key>"}\\n\';\n'
        "      }\n"
        "      proxy_set_header Authorization \"\";\n"
        "      proxy_set_header Host $host;\n"
        "      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
        if auth_enabled
        else ""
    )
    resolver = (
        ""
        if backend
        else "  # Swarm's DNS: the model service's name resolves to its healthy tasks (dnsrr endpoints).\n"
        "  resolver 127.0.0.11 valid=1s ipv6=off;\n  resolver_timeout 2s;\n"
    )
    gen_header = f'      add_header {FRONT_GENERATION_HEADER} "{generation}" always;\n' if generation else ""
    return f"""# Written by mldeploy: the front of {'the model server at ' + backend if backend else 'swarm service ' + model_service}.
worker_processes 1;
pid /tmp/nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  default_type application/octet-stream;
  client_body_temp_path /tmp/nginx-body;
  proxy_temp_path /tmp/nginx-proxy;
  fastcgi_temp_path /tmp/nginx-fastcgi;
  uwsgi_temp_path /tmp/nginx-uwsgi;
  scgi_temp_path /tmp/nginx-scgi;
  client_max_body_size 100m;
  map_hash_bucket_size 128;  # room for "Bearer <43-character key>"
{resolver}{auth_map}  server {{
    listen {FRONT_PORT};
    set $mldeploy_backend "{backend or f"{model_service}:{CONTAINER_PORT}"}";
    proxy_connect_timeout 2s;
    proxy_read_timeout {read_timeout}s;
    proxy_next_upstream error timeout;
    proxy_next_upstream_tries 3;
    # The liveness route stays open, as on Azure.
    location = / {{
{gen_header}      proxy_pass http://$mldeploy_backend;
    }}
    location / {{
{auth_check}      proxy_pass http://$mldeploy_backend;
    }}
  }}
}}
"""


def keys_file(primary: str, secondary: str) -> str:
    """The keys secret: an nginx ``map`` body accepting either key as a Bearer token."""
    return f'"Bearer {primary}" 1;\n"Bearer {secondary}" 1;\n'


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def ipvs_available() -> bool:
    return os.path.exists("/proc/net/ip_vs")


def publish_mode() -> str:
    """Where the front listens: ``MLDEPLOY_SWARM_PUBLISH_MODE``, ``loopback`` (127.0.0.1 on this manager) by default.

    ``host`` and ``ingress`` publish on every interface of every node; ``ingress`` needs the kernel's IPVS."""
    mode = swarm_publish_mode()
    if mode not in PUBLISH_MODES:
        raise BackendError(f"MLDEPLOY_SWARM_PUBLISH_MODE={mode!r}: use 'loopback' (the default: 127.0.0.1 on this manager), 'host' or 'ingress'")
    if mode == "ingress" and not ipvs_available():
        raise BackendError(
            "MLDEPLOY_SWARM_PUBLISH_MODE=ingress: this kernel has no IPVS (/proc/net/ip_vs), so Swarm's routing mesh "
            "never binds the port; use 'loopback' (the default) or 'host'"
        )
    return mode


def front_files(conf: str, keys: str | None) -> dict[str, tuple[bytes, int]]:
    """The loopback front's files: path (relative to /) -> (content, mode). The keys file is readable by root only
    (nginx's master reads it at (re)load; workers never do)."""
    files = {FRONT_CONF: (conf.encode(), 0o644)}
    files[FRONT_KEYS] = ((keys or "").encode(), 0o600)
    return files


def tar_files(files: dict[str, tuple[bytes, int]]) -> bytes:
    """A tar of ``files`` (with their parent directories, 0755) for ``put_archive`` at /."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dirs = sorted({str(p) for f in files for p in _parents(f)})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for path, (data, mode) in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _parents(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def front_container_spec(
    service: str, image: str, port: int, network: str, labels: dict[str, str]
) -> dict[str, Any]:
    """Keyword arguments of ``APIClient.create_container`` for the loopback front, except ``host_config``'s
    construction (``front_host_config``). ``LABEL_FRONT_SPEC`` names what a change of replaces the container."""
    spec_hash = short_hash(f"{image} {port} {network}")
    return {
        "image": image,
        "name": names(service)["front"],
        "labels": {**labels, LABEL_ROLE: "front", LABEL_PORT: str(port), LABEL_FRONT_SPEC: spec_hash},
        "ports": [FRONT_PORT],
        "stop_signal": "SIGQUIT",
    }


def front_host_config(port: int, network: str) -> dict[str, Any]:
    """``APIClient.create_host_config`` arguments: published on 127.0.0.1 only, on the deployment's overlay."""
    return {
        "port_bindings": {FRONT_PORT: ("127.0.0.1", int(port))},
        "network_mode": network,
        "restart_policy": {"Name": "unless-stopped"},
        "nano_cpus": NS // 2,
        "mem_limit": 128 * 1024**2,
        "security_opt": ["no-new-privileges"],
    }


# -- the engine ----------------------------------------------------------------------------------
def _explain(exc: Exception) -> str:
    return str(getattr(exc, "explanation", None) or exc)


class RolledBack(BackendError):
    """Swarm rolled an update back: the previous version keeps serving."""


class Swarm:
    """Thin calls to a swarm manager's Engine API. Make one per provider call."""

    def __init__(self, progress: Callable[[str], None], registry: str | None = None, pull_auth: dict[str, str] | None = None) -> None:
        self.progress = progress
        self.api: docker.APIClient = docker_engine.client(timeout=300).api
        if registry and pull_auth:
            try:
                # In memory only: the SDK sends it as X-Registry-Auth with create/update_service.
                self.api.login(pull_auth["username"], pull_auth["password"], registry=registry, reauth=True)
            except docker.errors.APIError as exc:
                raise BackendError(f"logging in to {registry} with the pull identity: {_explain(exc)}") from exc

    # -- swarm -------------------------------------------------------------------------------------
    def require_manager(self) -> dict[str, Any]:
        info = self.api.info().get("Swarm") or {}
        if info.get("LocalNodeState") != "active":
            raise BackendError(
                f"this Docker Engine is not in a swarm (state: {info.get('LocalNodeState') or 'inactive'}); "
                "run `make setup` (it runs docker swarm init) or join it to your swarm as a manager"
            )
        if not info.get("ControlAvailable"):
            raise BackendError("this Docker Engine is a swarm worker; run pulumi against a manager node (DOCKER_HOST)")
        return info

    # -- networks, configs, secrets ------------------------------------------------------------------
    def network(self, name: str) -> dict[str, Any] | None:
        for n in self.api.networks(names=[name]):
            if n["Name"] == name and n.get("Scope") == "swarm":
                return dict(n)
        return None

    def ensure_network(self, name: str, labels: dict[str, str]) -> str:
        """The overlay network, attachable so that the loopback front (a plain container) can join it."""
        found = self.network(name)
        if found is not None:
            return str(found["Id"])
        try:
            return str(self.api.create_network(name, driver="overlay", labels=labels, attachable=True, check_duplicate=True)["Id"])
        except docker.errors.APIError as exc:
            raise BackendError(f"creating overlay network {name}: {_explain(exc)}") from exc

    def ensure_config(self, name: str, data: str, labels: dict[str, str]) -> tuple[str, str]:
        for c in self.api.configs(filters={"name": name}):
            if c["Spec"]["Name"] == name:
                return str(c["ID"]), name
        try:
            return str(self.api.create_config(name, data.encode(), labels=labels)["ID"]), name
        except docker.errors.APIError as exc:
            raise BackendError(f"creating swarm config {name}: {_explain(exc)}") from exc

    def ensure_secret(self, name: str, data: str, labels: dict[str, str]) -> tuple[str, str]:
        for s in self.api.secrets(filters={"name": name}):
            if s["Spec"]["Name"] == name:
                return str(s["ID"]), name
        try:
            return str(self.api.create_secret(name, data.encode(), labels=labels)["ID"]), name
        except docker.errors.APIError as exc:
            raise BackendError(f"creating swarm secret {name}: {_explain(exc)}") from exc

    def prune_objects(self, service: str, keep: set[str]) -> None:
        """Remove this deployment's configs and secrets that nothing uses any more."""
        flt = {"label": f"{LABEL_SERVICE}={service}"}
        for kind, items, remove in (
            ("config", self.api.configs(filters=flt), self.api.remove_config),
            ("secret", self.api.secrets(filters=flt), self.api.remove_secret),
        ):
            for obj in items:
                if obj["Spec"]["Name"] in keep:
                    continue
                try:
                    remove(obj["ID"])
                except docker.errors.NotFound:
                    pass
                except docker.errors.APIError as exc:
                    self.progress(f"left {kind} {obj['Spec']['Name']} in place: {_explain(exc)}")

    # -- the loopback front: a container on this manager ---------------------------------------------
    def front_container(self, service: str) -> dict[str, Any] | None:
        """The loopback front's container (inspected), if any."""
        try:
            return dict(self.api.inspect_container(names(service)["front"]))
        except docker.errors.NotFound:
            return None

    def run_front(
        self,
        service: str,
        image: str,
        port: int,
        network: str,
        labels: dict[str, str],
        files: dict[str, tuple[bytes, int]],
        generation: str,
        pull_auth: dict[str, str] | None,
        timeout: float,
    ) -> None:
        """Converge the loopback front on ``image`` publishing 127.0.0.1:``port``, serving ``files`` (configuration
        ``generation``, which nginx.conf sends in the ``X-Mldeploy-Front`` header).

        A front with another image, port or network (or not running) is replaced stop-first; one that only needs
        new files gets them in place and reloads nginx (SIGHUP: new workers take the new configuration, old ones
        finish their requests), then records the generation (``FRONT_APPLIED``) so an interrupted reload is redone.
        """
        spec = front_container_spec(service, image, port, network, labels)
        name = spec["name"]
        current = self.front_container(service)
        if current is not None:
            theirs = current["Config"].get("Labels") or {}
            if not same_owner(theirs, labels):
                raise BackendError(f"container {name} belongs to {describe(theirs)}; not touching it")
            if theirs.get(LABEL_FRONT_SPEC) != spec["labels"][LABEL_FRONT_SPEC] or not current["State"].get("Running"):
                why = "it is not running" if theirs.get(LABEL_FRONT_SPEC) == spec["labels"][LABEL_FRONT_SPEC] else "its image or port changed"
                self.progress(f"{name}: replacing the front container ({why}; stop-first, port {port} answers again once it is up)")
                self._remove_container(current["Id"])
                current = None
        if current is None:
            self._create_front(spec, front_host_config(port, network), files, generation, pull_auth, timeout)
            return
        if self._applied(current["Id"]) != generation:
            cid = current["Id"]
            self.api.put_archive(cid, "/", tar_files(files))
            self._nginx_test(cid, name)
            self.api.kill(cid, signal="SIGHUP")
            self.api.put_archive(cid, "/", tar_files({FRONT_APPLIED: (generation.encode(), 0o644)}))
            self.progress(f"{name}: configuration reloaded in place (nginx reload, no connection dropped)")

    def _create_front(
        self,
        spec: dict[str, Any],
        host: dict[str, Any],
        files: dict[str, tuple[bytes, int]],
        generation: str,
        pull_auth: dict[str, str] | None,
        timeout: float,
    ) -> None:
        name = spec["name"]
        try:
            self.api.inspect_image(spec["image"])
        except docker.errors.NotFound:
            self.progress(f"{name}: pulling {spec['image']}")
            try:
                self.api.pull(spec["image"], auth_config=pull_auth)
            except docker.errors.APIError as exc:
                raise BackendError(f"pulling the front image {spec['image']}: {_explain(exc)}") from exc
        try:
            cid = self.api.create_container(**spec, host_config=self.api.create_host_config(**host))["Id"]
        except docker.errors.APIError as exc:
            raise BackendError(f"creating the front container {name}: {_explain(exc)}") from exc
        try:
            self.api.put_archive(cid, "/", tar_files({**files, FRONT_APPLIED: (generation.encode(), 0o644)}))
            deadline = time.monotonic() + min(timeout, 60)
            while True:  # a front service being removed (a publish-mode change) holds the port for a moment
                try:
                    self.api.start(cid)
                    break
                except docker.errors.APIError as exc:
                    busy = "already allocated" in _explain(exc) or "address already in use" in _explain(exc)
                    if not busy or time.monotonic() > deadline:
                        raise BackendError(f"starting the front container {name}: {_explain(exc)}") from exc
                    time.sleep(0.5)
        except BaseException:
            self._remove_container(cid)
            raise

    def _applied(self, cid: str) -> str | None:
        try:
            stream, _ = self.api.get_archive(cid, "/" + FRONT_APPLIED)
        except docker.errors.NotFound:
            return None
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.extractfile(tar.getmembers()[0])
            return member.read().decode().strip() if member else None

    def _nginx_test(self, cid: str, name: str) -> None:
        exec_id = self.api.exec_create(cid, ["nginx", "-t", "-c", "/" + FRONT_CONF])["Id"]
        out = self.api.exec_start(exec_id).decode(errors="replace")
        if self.api.exec_inspect(exec_id).get("ExitCode"):
            raise BackendError(f"{name}: nginx refused the new configuration, the old one keeps serving:\n{out}")

    def _remove_container(self, cid: str) -> None:
        try:
            self.api.remove_container(cid, force=True)
        except docker.errors.NotFound:
            pass

    def prune_task_containers(self, name: str, keep_image: str | None, timeout: float) -> None:
        """Remove this node's finished task containers of service ``name`` (all but ``keep_image``'s), once they have stopped.

        Swarm keeps a service's last tasks (the swarm's task history limit) with their containers, and a container keeps its
        image: without this, a replaced or destroyed deployment's derived images could never be removed from this node.
        """
        flt = {"label": f"com.docker.swarm.service.name={name}"}
        deadline = time.monotonic() + timeout
        while True:
            stopping = []
            for c in self.api.containers(all=True, filters=flt):
                if keep_image is not None and c.get("Image") == keep_image:
                    continue
                if c.get("State") in ("running", "restarting", "removing"):
                    stopping.append(c["Names"][0].lstrip("/"))
                    continue
                self._remove_container(c["Id"])
            if not stopping:
                return
            if time.monotonic() > deadline:
                self.progress(f"{name}: left {len(stopping)} task container(s) still stopping after {timeout:.0f}s: {', '.join(stopping)}")
                return
            time.sleep(0.5)

    def front_containers(self, service: str) -> list[dict[str, Any]]:
        """Loopback front containers labelled with ``service`` (not Swarm's task containers)."""
        flt = {"label": [f"{LABEL_SERVICE}={service}", f"{LABEL_ROLE}=front", LABEL_FRONT_SPEC]}
        return [dict(c) for c in self.api.containers(all=True, filters=flt)]

    def remove_front_containers(self, service: str, ours: dict[str, str] | None) -> int:
        """Remove the loopback front containers of ``service`` (only ``ours``' when given); returns how many."""
        removed = 0
        for c in self.front_containers(service):
            if ours is not None and not same_owner(c.get("Labels"), ours):
                self.progress(f"left container {c['Names'][0].lstrip('/')} alone: it belongs to {describe(c.get('Labels'))}")
                continue
            self._remove_container(c["Id"])
            removed += 1
        return removed

    # -- services ----------------------------------------------------------------------------------
    def inspect(self, name: str) -> dict[str, Any]:
        try:
            return dict(self.api.inspect_service(name))
        except docker.errors.NotFound as exc:
            raise NotFound(f"swarm service {name} does not exist") from exc
        except docker.errors.APIError as exc:
            raise BackendError(f"inspecting swarm service {name}: {_explain(exc)}") from exc

    def apply(self, spec: dict[str, Any], timeout: float = 300) -> tuple[bool, str]:
        """Create the service, or update it to ``spec``, once an update Swarm is still rolling out is done
        (``finish_update``, waiting at most ``timeout`` seconds).

        Returns (rollout, since): whether Swarm must replace its tasks, and the service's UpdatedAt
        (manager time), after which any failed task belongs to this change.
        """
        name = spec["name"]
        try:
            current = self.finish_update(name, timeout)
        except NotFound:
            try:
                self.api.create_service(**spec)
            except docker.errors.APIError as exc:
                raise BackendError(f"creating swarm service {name}: {_explain(exc)}") from exc
            return False, str(self.inspect(name)["UpdatedAt"])
        before = current["Spec"]["TaskTemplate"]
        try:
            self.api.update_service(current["ID"], current["Version"]["Index"], **{k: v for k, v in spec.items() if k != "name"}, name=name)
        except docker.errors.APIError as exc:
            raise BackendError(f"updating swarm service {name}: {_explain(exc)}") from exc
        after = self.inspect(name)
        return bool(_strip_force(before) != _strip_force(after["Spec"]["TaskTemplate"])), str(after["UpdatedAt"])

    def finish_update(self, name: str, timeout: float) -> dict[str, Any]:
        """The service once Swarm has finished the update (or rollback) it is rolling out, if any; at most ``timeout`` seconds.

        Such an update was started by an earlier run that was interrupted (``kill -9``) during its wait. Updating
        the service now, even to the same spec, would cancel it: Swarm goes on replacing the tasks, but unmonitored
        (no rollback) and with no UpdateStatus, so the wait could not tell when the last old task stops answering.
        After ``timeout`` the update goes ahead anyway (the new spec supersedes a stuck one).
        """
        deadline = time.monotonic() + timeout
        said = False
        while True:
            svc = self.inspect(name)
            state = (svc.get("UpdateStatus") or {}).get("State")
            if state not in _IN_PROGRESS:
                return svc
            if time.monotonic() > deadline:
                self.progress(f"{name}: Swarm's update in progress ({state}) did not finish within {timeout:.0f}s; updating it anyway")
                return svc
            if not said:
                self.progress(f"{name}: Swarm is still rolling out an earlier update ({state}; was a run interrupted?); waiting for it to finish")
                said = True
            time.sleep(0.5)

    def exists(self, name: str) -> bool:
        try:
            self.inspect(name)
            return True
        except NotFound:
            return False

    def remove_service(self, name: str) -> None:
        try:
            self.api.remove_service(name)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            raise BackendError(f"removing swarm service {name}: {_explain(exc)}") from exc

    def tasks(self, name: str, desired: str | None = None) -> list[dict[str, Any]]:
        flt: dict[str, Any] = {"service": name}
        if desired:
            flt["desired-state"] = desired
        try:
            return [t for t in self.api.tasks(filters=flt) if t.get("ServiceID") == self.inspect(name)["ID"]]
        except docker.errors.APIError as exc:
            raise BackendError(f"listing tasks of swarm service {name}: {_explain(exc)}") from exc

    def task_logs(self, task_id: str, lines: int = 40) -> str:
        """A task's last log lines, wherever in the swarm it ran (``docker service logs <task>``)."""
        try:
            res = self.api._get(
                self.api._url("/tasks/{0}/logs", task_id), params={"stdout": 1, "stderr": 1, "tail": lines, "follow": 0}, stream=True
            )
            return b"".join(self.api._get_result_tty(True, res, False)).decode(errors="replace")
        except (docker.errors.APIError, OSError) as exc:
            return f"(logs unavailable: {_explain(exc)})"

    def _failed(self, name: str, image: str, since: str | None = None) -> list[dict[str, Any]]:
        failed = [
            t
            for t in self.tasks(name)
            if t["Spec"]["ContainerSpec"]["Image"] == image
            and (t["Status"]["State"] in ("failed", "rejected") or (t["Status"].get("Err") and t["Status"]["State"] != "running"))
            and (since is None or t["CreatedAt"] >= since)
        ]
        return sorted(failed, key=lambda t: t["UpdatedAt"], reverse=True)

    def _failure_report(self, name: str, image: str, since: str | None) -> str:
        failed = self._failed(name, image, since)
        if not failed:
            return "no failed task was recorded"
        t = failed[0]
        err = t["Status"].get("Err") or t["Status"].get("Message") or t["Status"]["State"]
        return f"task {t['ID'][:12]} ({t['Status']['State']}: {err}); its last log lines:\n{self.task_logs(t['ID'])}"

    def wait(self, name: str, image: str, replicas: int | None, rollout: bool, timeout: float, since: str | None = None) -> None:
        """Wait until ``replicas`` tasks of ``image`` run healthy (``None``: one per node, for global services).

        During a rollout, wait for Swarm's update to finish; a rollback raises ``RolledBack`` with the
        failing task's error and last log lines. Outside a rollout (a create), a failing task raises.
        """
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            svc = self.inspect(name)
            status = svc.get("UpdateStatus") or {}
            state = status.get("State")
            if rollout and state in _ROLLED_BACK:
                raise RolledBack(
                    f"Swarm rolled back the update of {name} ({status.get('Message', state)}); the previous version keeps serving.\n"
                    f"failing {self._failure_report(name, image, since)}"
                )
            running = [
                t
                for t in self.tasks(name, desired="running")
                if t["Status"]["State"] == "running" and t["Spec"]["ContainerSpec"]["Image"] == image
            ]
            want = replicas if replicas is not None else self.ready_nodes()
            done_updating = (state == _DONE) if rollout else True
            if done_updating and len(running) >= want:
                return
            if not rollout and any(_fatal(t) for t in self._failed(name, image, since)):
                raise BackendError(f"swarm service {name} did not start: {self._failure_report(name, image, since)}")
            line = f"{name}: {len(running)}/{want} tasks running healthy" + (f", update {state or 'pending'}" if rollout else "")
            if line != last:
                self.progress(line)
                last = line
            if time.monotonic() > deadline:
                raise BackendError(
                    f"swarm service {name} did not converge within {timeout:.0f}s ({line}); "
                    f"{self._failure_report(name, image, since)}"
                )
            time.sleep(0.5)

    def ready_nodes(self) -> int:
        nodes = self.api.nodes()
        return max(1, sum(1 for n in nodes if n["Status"]["State"] == "ready" and n["Spec"].get("Availability") == "active"))

    def foreign_services(self, service: str, ours: dict[str, str]) -> list[dict[str, Any]]:
        """The services labelled with this service name that another stack owns."""
        return [s for s in self.api.services(filters={"label": f"{LABEL_SERVICE}={service}"}) if not same_owner(s["Spec"].get("Labels"), ours)]

    def remove_deployment(self, service: str, ours: dict[str, str] | None = None, timeout: float = 90) -> None:
        """Remove the deployment's services, then its network, configs and secrets (once nothing uses them).

        Objects whose labels name another stack than ``ours`` are left alone, with a progress line.
        """
        flt = {"label": f"{LABEL_SERVICE}={service}"}

        def mine(kind: str, name: str, labels: dict[str, str] | None) -> bool:
            if ours is None or same_owner(labels, ours):
                return True
            self.progress(f"left {kind} {name} alone: it belongs to {describe(labels)}")
            return False

        self.remove_front_containers(service, ours)
        removed = []
        for s in self.api.services(filters=flt):
            if not mine("service", s["Spec"]["Name"], s["Spec"].get("Labels")):
                continue
            try:
                self.api.remove_service(s["ID"])
                removed.append(s["Spec"]["Name"])
            except docker.errors.NotFound:
                pass
        deadline = time.monotonic() + timeout
        for name in removed:  # their task containers hold the images the caller removes next
            self.prune_task_containers(name, None, max(1.0, deadline - time.monotonic()))
        pending: list[str] = []
        while True:
            pending = []
            for n in self.api.networks(filters={**flt, "driver": "overlay"}):
                if not mine("network", n["Name"], n.get("Labels")):
                    continue
                # Removed by the manager, a network stays listed on a node until its last endpoint is gone.
                try:
                    self.api.remove_network(n["Id"])
                    pending.append(f"network {n['Name']}: removing")
                except docker.errors.NotFound:
                    pending.append(f"network {n['Name']}: still attached on this node")
                except docker.errors.APIError as exc:
                    pending.append(f"network {n['Name']}: {_explain(exc)}")
            for kind, items, remove in (
                ("config", self.api.configs(filters=flt), self.api.remove_config),
                ("secret", self.api.secrets(filters=flt), self.api.remove_secret),
            ):
                for obj in items:
                    if not mine(kind, obj["Spec"]["Name"], obj["Spec"].get("Labels")):
                        continue
                    try:
                        remove(obj["ID"])
                    except docker.errors.NotFound:
                        pass
                    except docker.errors.APIError as exc:
                        pending.append(f"{kind} {obj['Spec']['Name']}: {_explain(exc)}")
            if not pending:
                return
            if time.monotonic() > deadline:
                raise BackendError(f"removing swarm deployment {service}: still in use after {timeout:.0f}s: {'; '.join(pending)}")
            time.sleep(1)


# -- a deployment, end to end ---------------------------------------------------------------------
def front_image(registry: str, base_os_image: str, push_auth: dict[str, str], log_path: str, lock_path: Path, progress: Callable[[str], None]) -> str:
    """The nginx front image, built once FROM the base OS image and pushed; returns it by digest.

    ``lock_path``: the file the check and the build hold (exclusive ``flock``; the swarm and kubernetes targets
    share the image, so they pass the same file). Two stacks deploying at once on a
    machine without the image would otherwise both build it, and the second build (a new apt-get layer, so a
    new digest) would take the tag: the first stack's next ``up`` would then see another front image and
    replace its front, stop-first, for nothing. Under the lock the second finds the first's image.
    """
    import fcntl
    import tempfile

    from .docker_engine import DockerEngine

    dockerfile = FRONT_DOCKERFILE.format(base=base_os_image)
    repo = f"{registry}/mldeploy/swarm-front"
    ref = f"{repo}:{short_hash(dockerfile)}"
    engine = DockerEngine(progress=progress)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"waiting for another deployment building or pushing the nginx front image {ref}")
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            engine.inspect(ref)
        except NotFound:
            with tempfile.TemporaryDirectory(prefix="mldeploy-front-") as ctx:
                (Path(ctx) / "Dockerfile").write_text(dockerfile)
                progress(f"building the nginx front image {ref} (log: {log_path})")
                engine.build(ctx, "Dockerfile", ref, {}, log_path, label="front image")
        return f"{repo}@{engine.push(ref, push_auth)}"


def deploy(
    *,
    service: str,
    image: str,
    front: str,
    entry_script: str,
    deployment: dict[str, Any],
    port: int,
    labels: dict[str, str],
    keys: tuple[str, str] | None,
    registry: str,
    pull_auth: dict[str, str],
    timeout: float,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Create or update the deployment's network, model service, front, config and secret; wait for Swarm.

    Order: the model service first (a rollout that Swarm rolls back stops here, with the front and the
    keys untouched), then the front's configuration and the front. An update Swarm is still rolling out
    (an interrupted run's) is left to finish first (``Swarm.finish_update``). Returns facts for the outputs.
    """
    sw = Swarm(progress, registry, pull_auth)
    sw.require_manager()
    s = settings_from_deployment(deployment)
    n = names(service)
    mode = publish_mode()
    net = sw.network(n["network"])
    if mode == "loopback" and net is not None and not net.get("Attachable"):
        # Made by an mldeploy before the loopback front: a container cannot join it, and a network cannot be changed.
        progress(f"{n['network']}: the overlay network predates the loopback front (not attachable); recreating the deployment")
        sw.remove_deployment(service, labels)
    sw.ensure_network(n["network"], labels)

    spec = model_service_spec(service, image, entry_script, s, labels, n["network"])
    rollout, since = sw.apply(spec, timeout)
    progress(
        f"{n['model']}: {'rolling update (start-first, one task at a time)' if rollout else 'converging'} to {s.replicas} "
        f"replica(s) of {image.rsplit('/', 1)[-1][:40]}"
    )
    try:
        sw.wait(n["model"], image, s.replicas, rollout, timeout, since)
    except RolledBack:  # the failed version's task containers, so that the caller can remove its image
        sw.prune_task_containers(n["model"], sw.inspect(n["model"])["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"], 10)
        raise
    if rollout:  # the replaced version's task containers, so that its image can be removed from this node
        sw.prune_task_containers(n["model"], image, 30)

    if s.auth_enabled and not keys:
        raise BackendError("authEnabled is true but no keys were generated")
    body = keys_file(*keys) if s.auth_enabled and keys else None
    if mode == "loopback":
        if sw.exists(n["front"]):  # a front service from another publish mode (or an older mldeploy) holds the port
            progress(f"{n['front']}: replacing the front service by a container on 127.0.0.1:{port}")
            sw.remove_service(n["front"])
        plain = nginx_conf(n["model"], s.auth_enabled, s.scoring_timeout_ms)
        generation = short_hash(plain + (body or ""))
        conf = nginx_conf(n["model"], s.auth_enabled, s.scoring_timeout_ms, generation=generation)
        sw.run_front(service, front, port, n["network"], labels, front_files(conf, body), generation, pull_auth, timeout)
        sw.prune_objects(service, set())
        wait_http(f"http://127.0.0.1:{port}/", timeout=min(timeout, 60), poll=0.2, generation=generation)
        where = f"127.0.0.1:{port}"
    else:
        if sw.remove_front_containers(service, labels):
            progress(f"{n['front']}: replaced the front container by a {mode}-mode service (every interface)")
        conf = nginx_conf(n["model"], s.auth_enabled, s.scoring_timeout_ms)
        config = sw.ensure_config(f"{n['front']}-conf-{short_hash(conf)}", conf, labels)
        secret = sw.ensure_secret(f"{n['front']}-keys-{short_hash(body)}", body, labels) if body else None
        fspec = front_service_spec(service, front, port, mode, config, secret, labels, n["network"])
        frollout, fsince = sw.apply(fspec, timeout)
        sw.wait(n["front"], front, None, frollout, timeout, fsince)
        sw.prune_objects(service, {config[1]} | ({secret[1]} if secret else set()))
        wait_http(f"http://127.0.0.1:{port}/", timeout=min(timeout, 60))
        where = f"port {port} on every interface ({mode} mode publish)"
    progress(f"serving on {where}{', keys required' if s.auth_enabled else ''}")
    return {"replicas": s.replicas, "image": image, "publish_mode": mode, "network": n["network"], "front_service": n["front"], "swarm_service": n["model"]}


def wait_http(url: str, timeout: float, what: str = "the front", poll: float = 0.5, generation: str | None = None) -> None:
    """``what`` answers ``url`` with 200 within ``timeout`` seconds (the swarm front through to a model task,
    the kubernetes node port); else a ``BackendError`` with the last answer or error. With ``generation``, the answer
    must come from that configuration of the front (its ``X-Mldeploy-Front`` header: a reload has taken effect)."""
    import requests

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            r = requests.get(url, timeout=3)
            seen = r.headers.get(FRONT_GENERATION_HEADER)
            if r.status_code == 200 and generation in (None, seen):
                return
            last = f"HTTP {r.status_code}" + (f", configuration {seen or '(none)'}, not {generation}" if generation else "")
        except requests.RequestException as exc:
            last = str(exc)
        time.sleep(poll)
    raise BackendError(f"{what} does not answer {url} after {timeout:.0f}s: {last}")


def read(service: str) -> dict[str, Any]:
    """What runs: replicas and image of the model service, and whether the front is there. ``NotFound`` if the model service is gone."""
    sw = Swarm(lambda _m: None)
    n = names(service)
    svc = sw.inspect(n["model"])
    spec = svc["Spec"]
    running = [t for t in sw.tasks(n["model"], desired="running") if t["Status"]["State"] == "running"]
    container = sw.front_container(service)
    front = sw.exists(n["front"]) or bool(container and container["State"].get("Running"))
    return {
        "replicas": int(spec["Mode"].get("Replicated", {}).get("Replicas", 0)),
        "image": spec["TaskTemplate"]["ContainerSpec"]["Image"],
        "running": len(running),
        "front": front,
    }


def remove(service: str, ours: dict[str, str] | None = None, progress: Callable[[str], None] = lambda _m: None) -> None:
    """Remove the deployment's services, network, configs and secrets (only ``ours``' when given). Not in a swarm:
    there is nothing to remove."""
    sw = Swarm(progress)
    if (sw.api.info().get("Swarm") or {}).get("LocalNodeState") != "active":
        return
    try:
        sw.remove_deployment(service, ours)
    except docker.errors.APIError as exc:
        raise BackendError(f"removing swarm deployment {service}: {_explain(exc)}") from exc


def _fatal(task: dict[str, Any]) -> bool:
    """A task failure that retrying will not fix: the server exited (e.g. init() raised), or the node refused the task
    (e.g. the image cannot be pulled). Swarm's own transient errors (e.g. moby/moby#31698) are retried by Swarm."""
    status = task["Status"]
    return status["State"] == "rejected" or "non-zero exit" in (status.get("Err") or "")


def _strip_force(template: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in template.items() if k != "ForceUpdate"}


__all__ = [
    "DEFAULT_PROBE",
    "FRONT_DOCKERFILE",
    "Probe",
    "RolledBack",
    "ServiceSettings",
    "Swarm",
    "deploy",
    "front_container_spec",
    "front_files",
    "front_host_config",
    "front_image",
    "front_service_spec",
    "keys_file",
    "model_service_spec",
    "nginx_conf",
    "publish_mode",
    "read",
    "remove",
    "settings_from_deployment",
    "tar_files",
    "unsupported",
    "wait_http",
]
