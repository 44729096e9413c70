"""Azure ML naming rules, checked at preview (no I/O), exactly as azure-ai-ml checks them.

azure-ai-ml validates online endpoint and deployment names in
``azure.ai.ml.entities._endpoint._endpoint_helpers.validate_endpoint_or_deployment_name``
(1.35.2): 3 to 32 characters (``EndpointConfigurations.MIN_NAME_LENGTH`` /
``MAX_NAME_LENGTH``) matching ``EndpointConfigurations.NAME_REGEX_PATTERN``
``^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$``: a letter first, then letters, digits
and '-', not ending in '-'. The SDK raises that as a ``ValidationException``
deep inside ``begin_create_or_update``, after the model and code are
uploaded; here the same rule runs before anything is created.

An endpoint's name is also its DNS label (``<name>.<region>.inference.ml.azure.com``),
so it is unique per region across every subscription: ``default_endpoint_name``
derives a name unique to one stack and workspace. A just-deleted name answers
404 for a while before it can be reused.

Preview hooks (for the azure runtime's ``validate``/``preflight``):
``check_endpoint_name(service_name, field="service_name")``.
"""

from __future__ import annotations

import hashlib
import re

from ...errors import ValidationError

MIN_NAME_LENGTH = 3
MAX_NAME_LENGTH = 32
NAME_REGEX_PATTERN = r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$"
_NAME = re.compile(NAME_REGEX_PATTERN)


def _check(kind: str, name: object, field: str) -> None:
    fix = "use 3-32 letters, digits or '-', starting with a letter and not ending with '-'"
    if not isinstance(name, str):
        raise ValidationError(field, f"{kind} name must be a string, not {type(name).__name__}; {fix}")
    if not MIN_NAME_LENGTH <= len(name) <= MAX_NAME_LENGTH:
        raise ValidationError(field, f"{name!r} has {len(name)} characters; an Azure ML {kind} name needs {MIN_NAME_LENGTH}-{MAX_NAME_LENGTH}: {fix}")
    if not _NAME.match(name):
        raise ValidationError(field, f"{name!r} is not a valid Azure ML {kind} name: {fix}")


def check_endpoint_name(name: object, field: str = "service_name") -> None:
    """``ValidationError(field)`` unless azure-ai-ml would accept ``name`` as an online endpoint name."""
    _check("online endpoint", name, field)


def check_deployment_name(name: object, field: str = "deployment_name") -> None:
    """``ValidationError(field)`` unless azure-ai-ml would accept ``name`` as an online deployment name."""
    _check("online deployment", name, field)


def default_endpoint_name(service: str, *scope: str) -> str:
    """A valid endpoint name for ``service``, unique to ``scope`` (e.g. subscription, workspace, project, stack).

    ``<service, cut>-<8 hex of sha256(scope)>``: lowercase, starts with a letter, at most 32 characters.
    The same inputs always give the same name (no drift between ``pulumi up`` runs).
    """
    suffix = hashlib.sha256("\0".join((service, *scope)).encode()).hexdigest()[:8]
    base = re.sub(r"[^a-z0-9-]+", "-", service.lower()).strip("-")
    base = re.sub(r"^[^a-z]+", "", base) or "ep"
    base = base[: MAX_NAME_LENGTH - len(suffix) - 1].rstrip("-")
    name = f"{base}-{suffix}"
    check_endpoint_name(name)
    return name


__all__ = ["NAME_REGEX_PATTERN", "check_deployment_name", "check_endpoint_name", "default_endpoint_name"]
