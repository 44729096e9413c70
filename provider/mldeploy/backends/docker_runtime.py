"""Running inference containers on the local Docker Engine (images: ``docker_engine``).

Containers run on the host network: measured here, that serves as fast as
the server started directly on the host, while Docker's userland proxy for
published ports costs about 30% of throughput. The server binds 127.0.0.1
only (``MLDEPLOY_BIND_HOST``, see ``mldeploy.derived_image``).

A new container starts beside the old one on the same port (SO_REUSEPORT),
with a second, private health port of its own; only once that answers is the
old container stopped, so a swap leaves no gap and a new version that never
becomes healthy never takes traffic. Closing the old container's socket would
reset the connections the kernel had queued on it but the old server had not
yet accepted, unless ``net.ipv4.tcp_migrate_req`` is 1 (Linux 5.14+): then
they move to the new container's socket. ``make setup`` sets it;
``swap_resets_queued_connections`` says when it is not set.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BackendError, NotFound
from . import docker_engine
from .docker_engine import translate
from .ownership import LABEL_PORT, LABEL_SERVICE, LABEL_STACK, LABEL_URN

if TYPE_CHECKING:
    import docker


@dataclass
class Container:
    id: str
    name: str
    status: str
    image: str
    labels: dict[str, str]


def client() -> docker.DockerClient:
    return docker_engine.client(timeout=300)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _container(c: Any) -> Container:
    return Container(id=c.id, name=c.name, status=c.status, image=c.attrs["Config"]["Image"], labels=c.labels or {})


def get(container_id: str) -> Container:
    import docker.errors

    try:
        return _container(client().containers.get(container_id))
    except docker.errors.NotFound as exc:
        raise NotFound(f"container {container_id[:12]} does not exist") from exc
    except docker.errors.APIError as exc:
        raise BackendError(f"inspecting container {container_id[:12]}: {exc}") from exc


def _listed(label: str, all: bool, what: str) -> list[Container]:
    """Containers with ``label``, from the engine's list (``docker_engine.list_containers``: no Docker SDK on the no-op path).

    ``image`` is the list's, which names the image id once the reference no longer resolves; ``get`` inspects.
    """
    entries = docker_engine.list_containers(label, all=all)
    if entries is not None:
        return [
            Container(
                id=str(e["Id"]),
                name=str((e.get("Names") or ["/"])[0]).lstrip("/"),
                status=str(e.get("State") or ""),
                image=str(e.get("Image") or ""),
                labels=dict(e.get("Labels") or {}),
            )
            for e in entries
        ]
    import docker.errors

    try:
        return [_container(c) for c in client().containers.list(all=all, filters={"label": label})]
    except docker.errors.APIError as exc:
        raise BackendError(f"{what}: {exc}") from exc


def find(service: str) -> list[Container]:
    return _listed(f"{LABEL_SERVICE}={service}", True, f"listing containers of service {service}")


def owner_of_port(port: int) -> Container | None:
    found = _listed(f"{LABEL_PORT}={port}", False, f"finding the container serving port {port}")
    return found[0] if found else None


def start(
    image_ref: str,
    name: str,
    entry_script: str,
    port: int,
    labels: dict[str, str],
    timeout: float,
    log_lines: int = 40,
    device_requests: list[dict[str, Any]] | None = None,
) -> Container:
    """Start a container serving on ``port`` and wait until its own health port answers.

    On failure the container's last log lines are in the error and the container is removed.
    """
    import docker.errors
    import docker.types

    health_port = free_port()
    cmd = ["azmlinfsrv", "--entry_script", entry_script, "--port", str(port), "--health_port", str(health_port)]
    try:
        c = client().containers.run(
            image_ref,
            cmd,
            name=name,
            detach=True,
            network_mode="host",
            environment={"SEPERATE_HEALTH_ENDPOINT": "true"},
            labels={**labels, LABEL_PORT: str(port)},
            restart_policy={"Name": "unless-stopped"},
            # Docker's "local" log driver: measured, json-file costs 5-10% of serving throughput here.
            log_config={"Type": "local", "Config": {"max-size": "20m"}},
            # enableGpu: what docker_engine.gpu_support found this engine offers (nvidia runtime or CDI devices)
            device_requests=[
                docker.types.DeviceRequest(driver=r.get("Driver", ""), count=r.get("Count", 0), device_ids=r.get("DeviceIDs"), capabilities=r.get("Capabilities"))
                for r in device_requests or []
            ]
            or None,
        )
    except docker.errors.APIError as exc:
        raise BackendError(f"starting container {name} from {image_ref}: {exc.explanation or exc}") from exc
    with translate(f"waiting for container {name} to answer its health route"):
        return _wait_healthy(c, name, health_port, timeout, log_lines)


def _wait_healthy(c: Any, name: str, health_port: int, timeout: float, log_lines: int) -> Container:
    import requests

    deadline = time.monotonic() + timeout
    while True:
        c.reload()
        if c.status in ("exited", "dead") or c.attrs["RestartCount"] > 0:
            break
        try:
            if requests.get(f"http://127.0.0.1:{health_port}/", timeout=2).status_code == 200:
                return _container(c)
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    logs = c.logs(tail=log_lines).decode(errors="replace")
    reason = "exited" if c.status in ("exited", "dead") or c.attrs["RestartCount"] > 0 else f"did not answer its health route within {timeout:.0f}s"
    remove(c.id)
    raise BackendError(f"deployment {name} {reason}; the previous deployment (if any) keeps serving.\nlast {log_lines} log lines:\n{logs}")


MIGRATE_REQ = Path("/proc/sys/net/ipv4/tcp_migrate_req")


def swap_resets_queued_connections() -> str | None:
    """Why stopping the old container of a swap may reset a request queued on its socket; None when it cannot."""
    try:
        value = MIGRATE_REQ.read_text().strip()
    except OSError:
        return (
            "this kernel has no net.ipv4.tcp_migrate_req (Linux < 5.14): a request that reaches the previous container's "
            "socket in the instant it closes is reset"
        )
    if value == "0":
        return (
            "net.ipv4.tcp_migrate_req is 0, so a request that reaches the previous container's socket in the instant it "
            "closes is reset; `sysctl -w net.ipv4.tcp_migrate_req=1` (as root) hands such requests to the new container "
            "(make setup sets it)"
        )
    return None


def remove(container_id: str, grace: int = 10, progress: Callable[[str], None] | None = None) -> None:
    """Stop (gracefully) and remove a container. A missing container is not an error."""
    import docker.errors

    try:
        c = client().containers.get(container_id)
        try:
            c.stop(timeout=grace)
        except docker.errors.APIError as exc:
            if progress:
                progress(f"container {c.name} did not stop gracefully ({exc.explanation or exc}); removing it by force")
        c.remove(force=True)
    except docker.errors.NotFound:
        return
    except docker.errors.APIError as exc:
        raise BackendError(f"removing container {container_id[:12]}: {exc}") from exc


def logs(container_id: str, lines: int = 40) -> str:
    """A container's last log lines, or a note saying why there are none."""
    import docker.errors

    try:
        return str(client().containers.get(container_id).logs(tail=lines).decode(errors="replace"))
    except docker.errors.DockerException as exc:
        return f"(logs unavailable: {exc})"


__all__ = [
    "LABEL_PORT",
    "LABEL_SERVICE",
    "LABEL_STACK",
    "LABEL_URN",
    "Container",
    "find",
    "free_port",
    "get",
    "logs",
    "owner_of_port",
    "port_in_use",
    "remove",
    "start",
]

