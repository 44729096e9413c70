"""The ``swarm`` target: a Swarm service with ``numReplicas`` tasks behind an nginx front (``docker_swarm`` builds the
specs and makes the Engine API calls; Swarm schedules, health-checks, rolls out and rolls back).

Docker's exceptions are translated into ``mldeploy.errors`` here, around each
call into ``docker_swarm`` (``docker_engine.translate``). Ownership
(``backends/ownership.py``): services of the same name that another stack owns
fail ``preflight`` naming that stack, ``deploy`` refuses to update them, and
``remove`` leaves every object of another stack alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import BackendError, ValidationError
from ..settings import Settings
from . import docker_swarm as sw
from .docker_engine import translate
from .local_runtime import check_port
from .ownership import describe
from .protocols import DeploySpec, LiveState, check_compute_type

COMPUTE_TYPES = ("aks", "local")
MAX_SERVICE_NAME = 48  # services are named mldeploy-<name>-front (63 characters at most)


class SwarmRuntime:
    """``Runtime`` on this Docker Engine's swarm. Holds nothing; make one per provider call."""

    target = "swarm"
    builds_image = True

    def validate(self, deployment: dict[str, Any], source: str, warn: Callable[[str], None]) -> None:
        check_compute_type(deployment, source, "swarm", COMPUTE_TYPES)
        errors, warnings = sw.unsupported(deployment)
        for w in warnings:
            warn(f"warning: {w}")
        if errors:
            field = errors[0][0] if len(errors) == 1 else "(several fields)"
            detail = "; ".join(f"{f}: {m}" for f, m in errors)
            raise ValidationError(f"deployment_config.{field}", f"the swarm target cannot honour this (in {source}): {detail}")

    def preflight(self, spec: DeploySpec, progress: Callable[[str], None]) -> None:
        if len(spec.service) > MAX_SERVICE_NAME:
            raise ValidationError(
                "service_name", f"{spec.service!r}: at most {MAX_SERVICE_NAME} characters on the swarm target (services are named mldeploy-<name>-front)"
            )
        with translate(f"checking who runs swarm service {spec.service}"):
            foreign = sw.Swarm(progress).foreign_services(spec.service, spec.labels)
        if foreign:
            s = foreign[0]["Spec"]
            raise ValidationError(
                "service_name",
                f"service {spec.service!r} is already deployed by {describe(s.get('Labels'))} (swarm service {s['Name']}); "
                "choose another service_name, or destroy it in that stack first",
            )
        check_port(spec)

    def deploy(self, spec: DeploySpec, progress: Callable[[str], None]) -> dict[str, Any]:
        if not spec.image_ref:
            raise BackendError("the swarm target runs a derived image: image_ref is required")
        settings = Settings.from_env()
        replicas = int(spec.deployment.get("numReplicas") or 1)
        with translate(f"deploying swarm service {spec.service}"):
            foreign = sw.Swarm(progress).foreign_services(spec.service, spec.labels)
            if foreign:
                raise BackendError(f"swarm service {foreign[0]['Spec']['Name']} belongs to {describe(foreign[0]['Spec'].get('Labels'))}; not touching it")
            front = sw.front_image(
                settings.registry, settings.base_os_image, spec.push_auth, str(settings.logs_dir / "swarm-front-build.log"),
                settings.cache_dir / sw.FRONT_IMAGE_LOCK, progress,
            )  # fmt: skip
            try:
                facts = sw.deploy(
                    service=spec.service, image=spec.image_ref, front=front, entry_script=spec.entry_script, deployment=spec.deployment,
                    port=spec.port, labels=spec.labels, keys=spec.keys, registry=spec.registry, pull_auth=spec.pull_auth,
                    timeout=spec.health_timeout * max(1, replicas), progress=progress,
                )  # fmt: skip
            except Exception:
                if spec.previous is None:  # a failed create leaves nothing half-made behind
                    try:
                        sw.remove(spec.service, spec.labels, progress)
                    except Exception as exc:
                        progress(f"could not clean up the failed deployment: {exc}")
                raise
        return {
            "container_id": None,
            "container_name": facts["swarm_service"],
            "replicas": facts["replicas"],
            "running_image": spec.image_ref,
            "front_image": front,
            "publish_mode": facts["publish_mode"],
            "state": "running",
            "scoring_uri": f"http://127.0.0.1:{spec.port}/score",
            "swagger_uri": f"http://127.0.0.1:{spec.port}/swagger.json",
        }

    def read(self, service: str, outputs: dict[str, Any]) -> LiveState:
        with translate(f"reading swarm service {service}"):
            facts = sw.read(service)
        state = "running" if facts["front"] and facts["running"] >= facts["replicas"] else "degraded"
        return LiveState(state=state, replicas=facts["replicas"], image=facts["image"])

    def remove(self, service: str, outputs: dict[str, Any], labels: dict[str, str], progress: Callable[[str], None]) -> None:
        with translate(f"removing swarm deployment {service}"):
            sw.remove(service, labels, progress)


__all__ = ["COMPUTE_TYPES", "SwarmRuntime"]
