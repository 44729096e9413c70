"""The ``local`` target: one container on this machine's Docker Engine (``docker_runtime`` does the Docker calls).

deploy: pulls the pushed derived image back by digest with the pull-only
identity (what a deployment does), starts a new container beside the old one
on the same port and waits for its private health port; only then are the
previous containers of this deployment stopped, so a swap leaves no gap, and
a version that never becomes healthy never takes traffic. read: the container
by id. remove: every container labelled with this service and this stack.

Ownership (``backends/ownership.py``): a container of the same service name or
on the same port that another stack owns fails ``preflight`` naming that stack,
and is never stopped or removed here.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from ..errors import MldeployError, ValidationError
from . import docker_runtime as rt
from .docker_engine import DockerEngine, translate
from .ownership import LABEL_SERVICE, LABEL_STACK, LABEL_URN, describe, same_owner
from .protocols import DeploySpec, LiveState, check_compute_type
from .swap_guard import Guard

COMPUTE_TYPES = ("local",)


class LocalRuntime:
    """``Runtime`` on the local Docker Engine. Holds nothing; make one per provider call."""

    target = "local"
    builds_image = True

    def validate(self, deployment: dict[str, Any], source: str, warn: Callable[[str], None]) -> None:
        check_compute_type(deployment, source, "local", COMPUTE_TYPES, " (or target='kubernetes' or 'swarm' for 'aks')")
        if deployment.get("authEnabled"):
            raise ValidationError(
                "deployment_config.authEnabled",
                f"the local target serves on 127.0.0.1 without keys (in {source}); remove authEnabled, or deploy with target='swarm'",
            )

    def preflight(self, spec: DeploySpec, progress: Callable[[str], None]) -> None:
        """The service name is not another stack's, and the port is free or held by this deployment."""
        with translate(f"checking who runs service {spec.service}"):
            for c in rt.find(spec.service):
                if not same_owner(c.labels, spec.labels):
                    raise ValidationError(
                        "service_name",
                        f"service {spec.service!r} is already deployed by {describe(c.labels)} (container {c.name}); "
                        "choose another service_name, or destroy it in that stack first",
                    )
        check_port(spec)

    def deploy(self, spec: DeploySpec, progress: Callable[[str], None]) -> dict[str, Any]:
        if not spec.image_ref:
            raise MldeployError("the local target runs a derived image: image_ref is required")
        engine = DockerEngine(progress=progress)
        engine.pull(spec.image_ref, spec.pull_auth)  # as the deployment: with the pull-only identity
        with translate(f"deploying {spec.service} on the local Docker Engine"):
            for old in self._containers(spec, progress):  # leftovers of a failed or out-of-band-broken deployment
                if old.status != "running":
                    rt.remove(old.id, progress=progress)
            name = f"mldeploy-{spec.service}-{secrets.token_hex(3)}"
            # A detached guard removes the new container if the provider dies before it is healthy, and
            # finishes the swap if it dies after: a killed update never leaves two versions serving.
            gpus = spec.props.get("gpu_device_requests")  # enableGpu: what docker_engine.gpu_support found at preview
            with Guard(name, spec.service, spec.labels) as guard:
                progress(f"starting {name} on 127.0.0.1:{spec.port}")
                c = rt.start(
                    spec.image_ref, name, f"/var/azureml-app/{spec.entry_script}", spec.port, spec.labels, spec.health_timeout, device_requests=gpus
                )
                progress(f"healthy: http://127.0.0.1:{spec.port}/score")
                guard.commit()
                previous = [old for old in self._containers(spec, progress) if old.id != c.id]
                if previous and (why := rt.swap_resets_queued_connections()):
                    progress(f"note: {why}")
                for old in previous:
                    progress(f"stopping previous container {old.name}")
                    rt.remove(old.id, progress=progress)
        return {
            "container_id": c.id,
            "container_name": c.name,
            "state": "running",
            "scoring_uri": f"http://127.0.0.1:{spec.port}/score",
            "swagger_uri": f"http://127.0.0.1:{spec.port}/swagger.json",
        }

    def read(self, service: str, outputs: dict[str, Any]) -> LiveState:
        with translate(f"reading the container of {service}"):
            c = rt.get(outputs.get("container_id") or "")
            # Containers of this deployment the state does not know (an interrupted swap): the next `up` removes them.
            labels = {k: str(outputs.get(v) or "") for k, v in ((LABEL_SERVICE, "service_name"), (LABEL_STACK, "stack"), (LABEL_URN, "resource_urn"))}
            extra = sorted(o.name for o in rt.find(service) if o.id != c.id and same_owner(o.labels, labels))
        return LiveState(state=c.status, facts={"unrecorded_containers": extra} if extra else {})

    def remove(self, service: str, outputs: dict[str, Any], labels: dict[str, str], progress: Callable[[str], None]) -> None:
        with translate(f"removing the containers of {service}"):
            for c in rt.find(service):
                if same_owner(c.labels, labels):
                    rt.remove(c.id, progress=progress)
                else:
                    progress(f"left container {c.name} alone: it belongs to {describe(c.labels)}")

    @staticmethod
    def _containers(spec: DeploySpec, progress: Callable[[str], None]) -> list[rt.Container]:
        """This deployment's containers; another stack's of the same service name are left alone, with a progress line."""
        mine = []
        for c in rt.find(spec.service):
            if same_owner(c.labels, spec.labels):
                mine.append(c)
            else:
                progress(f"left container {c.name} alone: it belongs to {describe(c.labels)}")
        return mine


def check_port(spec: DeploySpec) -> None:
    """The port must be free, or held by this deployment (under its new or, when it is being renamed, its old name)."""
    if not rt.port_in_use(spec.port):
        return
    with translate(f"finding who serves port {spec.port}"):
        owner = rt.owner_of_port(spec.port)
    ours = {spec.service, (spec.previous or {}).get("service_name")} - {None}
    if owner is not None and owner.labels.get(LABEL_SERVICE) in ours and same_owner(owner.labels, spec.labels):
        return
    if owner is None:
        who = "another process"
    elif not same_owner(owner.labels, spec.labels):
        who = f"container {owner.name} of {describe(owner.labels)}"
    else:
        who = f"container {owner.name}"
    raise ValidationError("deployment_config.port", f"port {spec.port} is in use by {who}; choose a free port in the deployment config")


__all__ = ["COMPUTE_TYPES", "LocalRuntime", "check_port"]
