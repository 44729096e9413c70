"""Model versions a killed run registered: adopted by the next create, removed by destroy.

A ``ModelVersion`` registers its version with two tags: ``mldeploy.urn`` (the
resource's URN: which stack resource owns it) and ``mldeploy.pending`` (set
until the create has returned the version to the engine's provider call).
A run killed while registering (say, during a 20 s wait for a locked
database) leaves a version the state does not know. The next ``create`` of the
same resource adopts a version with its URN and the same digest instead of
registering another, and removes its pending versions with another digest;
``delete`` removes the recorded version and any pending one of the resource, so
nothing registered by a killed run survives ``destroy``. Only the embedded MLflow registry.
"""

from __future__ import annotations

from typing import Any

from .mlflow_registry import DIGEST_TAG, MlflowModelRegistry
from .protocols import RegisteredModel

OWNER_TAG = "mldeploy.urn"
PENDING_TAG = "mldeploy.pending"


def _owned(reg: MlflowModelRegistry, name: str, owner: str) -> list[Any]:
    client = reg._client()
    try:
        found = reg._call(client.search_model_versions, f"list versions of {name}", f"name = '{name}'")
    except Exception:
        return []
    return [v for v in found if (v.tags or {}).get(OWNER_TAG) == owner]


def registration_tags(owner: str | None) -> dict[str, str]:
    return {OWNER_TAG: owner, PENDING_TAG: "1"} if owner else {}


def adopt_or_clean(reg: Any, name: str, digest: str, owner: str | None, say: Any) -> RegisteredModel | None:
    """Before registering: a version of this resource with the same digest (adopted), after removing its pending others."""
    if not owner or not isinstance(reg, MlflowModelRegistry):
        return None
    adopted = None
    for v in _owned(reg, name, owner):
        tags = v.tags or {}
        if tags.get(DIGEST_TAG) == digest and adopted is None:
            adopted = v
        elif PENDING_TAG in tags:
            say(f"removing {name}:{v.version}, registered by an interrupted run and never recorded")
            reg.delete(name, int(v.version))
    if adopted is None:
        return None
    say(f"adopting {name}:{adopted.version}, registered by an interrupted run with the same content")
    confirm(reg, name, int(adopted.version))
    return reg.get(name, int(adopted.version))


def confirm(reg: Any, name: str, version: int) -> None:
    """The create is returning this version: it is no longer pending."""
    if isinstance(reg, MlflowModelRegistry):
        client = reg._client()
        reg._call(client.delete_model_version_tag, f"confirm {name}:{version}", name, str(version), PENDING_TAG)


def delete_pending(reg: Any, name: str, owner: str | None, keep: int, say: Any) -> None:
    """On delete: the resource's pending versions (a killed run's) go with it."""
    if not owner or not isinstance(reg, MlflowModelRegistry):
        return
    for v in _owned(reg, name, owner):
        if int(v.version) != keep and PENDING_TAG in (v.tags or {}):
            say(f"removing {name}:{v.version}, registered by an interrupted run and never recorded")
            reg.delete(name, int(v.version))


__all__ = ["OWNER_TAG", "PENDING_TAG", "adopt_or_clean", "confirm", "delete_pending", "registration_tags"]
