"""Which stack owns a runtime object: the labels every deployment object carries, read the same way by every runtime.

Every container, service, network, config and secret a runtime creates carries
``mldeploy.service`` (the service name), ``mldeploy.stack`` (the Pulumi stack)
and ``mldeploy.urn`` (the resource's URN, ``urn:pulumi:<stack>::<project>::...``).
The owner is ``<project>/<stack>`` from the URN label (the stack label alone when
an older object has no URN label). A runtime never updates or removes an object
whose owner is another stack, and its ``preflight`` fails naming that stack.
"""

from __future__ import annotations

from collections.abc import Mapping

LABEL_SERVICE = "mldeploy.service"
LABEL_STACK = "mldeploy.stack"
LABEL_URN = "mldeploy.urn"
LABEL_PORT = "mldeploy.port"
# On a derived image: the URN of the deployment it was built for. Deployments of one service name on two targets
# (a swarm or kubernetes stack and a local one deployed before it) push to the same repository, mldeploy/<service>; without
# it, two stacks deploying the same folder built one image, and one stack's destroy deleted the other's manifest.
# A key of its own: containers inherit their image's labels, and mldeploy.service/.urn on every container of an
# image would make the local target's lookups see other targets' containers.
LABEL_BUILT_FOR = "mldeploy.built-for"


def owner(labels: Mapping[str, str] | None) -> str | None:
    """``<project>/<stack>`` from the URN label; the bare stack label without one; None when unlabelled."""
    labels = labels or {}
    urn = labels.get(LABEL_URN) or ""
    if urn.startswith("urn:pulumi:") and "::" in urn:
        stack, project = urn.removeprefix("urn:pulumi:").split("::")[:2]
        return f"{project}/{stack}"
    return labels.get(LABEL_STACK) or None


def same_owner(theirs: Mapping[str, str] | None, ours: Mapping[str, str]) -> bool:
    """Whether an object labelled ``theirs`` belongs to the stack whose labels are ``ours``.

    Unlabelled objects and objects of an unknown stack belong to nobody else; labels from before the URN
    label compare by stack name only.
    """
    theirs = theirs or {}
    mine, other = owner(ours), owner(theirs)
    if other is None or mine is None:
        return True
    if not theirs.get(LABEL_URN) or not ours.get(LABEL_URN):
        return (theirs.get(LABEL_STACK) or None) in (None, ours.get(LABEL_STACK))
    return mine == other


def describe(labels: Mapping[str, str] | None) -> str:
    """``stack <project>/<stack> (resource <urn>)`` for error messages."""
    labels = labels or {}
    urn = labels.get(LABEL_URN)
    return f"stack {owner(labels) or '(unknown)'}" + (f" (resource {urn})" if urn else "")


__all__ = ["LABEL_BUILT_FOR", "LABEL_PORT", "LABEL_SERVICE", "LABEL_STACK", "LABEL_URN", "describe", "owner", "same_owner"]
