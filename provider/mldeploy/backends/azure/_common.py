"""Target parsing and the one place Azure SDK exceptions become mldeploy errors."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from ...errors import AuthError, BackendError, MldeployError, NotFound, ValidationError

PREFIX = "azure:"
_ARM = re.compile(
    r"^/subscriptions/(?P<sub>[0-9A-Fa-f-]{36})/resourceGroups/(?P<rg>[-\w._()]{1,90})"
    r"/providers/(?P<provider>Microsoft\.MachineLearningServices/workspaces|Microsoft\.ContainerRegistry/registries)"
    r"/(?P<name>[-\w]{1,260})$",
    re.IGNORECASE,
)
T = TypeVar("T")


@dataclass(frozen=True)
class AzureTarget:
    """A parsed ``azure:<ARM id>``: a Machine Learning workspace, or a container registry."""

    subscription_id: str
    resource_group: str
    kind: str  # "workspace" | "registry"
    name: str

    @property
    def arm_id(self) -> str:
        provider = "Microsoft.MachineLearningServices/workspaces" if self.kind == "workspace" else "Microsoft.ContainerRegistry/registries"
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}/providers/{provider}/{self.name}"

    def __str__(self) -> str:
        return PREFIX + self.arm_id


def is_azure_target(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def parse_target(value: str, field: str = "registry") -> AzureTarget:
    """Parse ``azure:<ARM id of a workspace or registry>``; ``ValidationError(field)`` naming the expected shape."""
    arm = value[len(PREFIX) :] if is_azure_target(value) else value
    m = _ARM.match(arm.rstrip("/"))
    if not m:
        raise ValidationError(
            field,
            f"{value!r} is not an Azure target; expected 'azure:/subscriptions/<subscription id>/resourceGroups/<group>"
            "/providers/Microsoft.MachineLearningServices/workspaces/<workspace>' (or .../Microsoft.ContainerRegistry/registries/<name>)",
        )
    kind = "workspace" if m["provider"].lower().startswith("microsoft.machinelearningservices") else "registry"
    return AzureTarget(m["sub"], m["rg"], kind, m["name"])


def translate(exc: BaseException, what: str) -> MldeployError:
    """An mldeploy error for an azure-core, azure-identity or Graph (kiota) failure."""
    if isinstance(exc, MldeployError):
        return exc
    status = getattr(exc, "status_code", None) or getattr(exc, "response_status_code", None)
    response = getattr(exc, "response", None)
    if status is None and response is not None:
        status = getattr(response, "status_code", None)
    name = type(exc).__name__
    message = _message(exc)
    if name in ("ClientAuthenticationError", "CredentialUnavailableError") or status in (401, 403):
        hint = "" if status == 403 else " (log in: `az login`, or set AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET; see the README)"
        return AuthError(f"{what}: Azure refused the credentials{f' (HTTP {status})' if status else ''}: {message}{hint}")
    if name == "ResourceNotFoundError" or status == 404:
        return NotFound(f"{what}: not found: {message}")
    if status == 409 or name == "ResourceExistsError":
        return BackendError(f"{what}: conflict (HTTP 409): {message}")
    if status:
        return BackendError(f"{what}: Azure answered HTTP {status}: {message}")
    return BackendError(f"{what}: {name}: {message}")


def _message(exc: BaseException) -> str:
    err = getattr(exc, "error", None)  # ODataError.error (Graph) or ODataV4Format (ARM)
    code = getattr(err, "code", None)
    msg = getattr(err, "message", None)
    if msg:
        return f"{code}: {msg}" if code else str(msg)
    text = getattr(exc, "message", None) or str(exc)
    return str(text).splitlines()[0] if text else name_of(exc)


def name_of(exc: BaseException) -> str:
    return type(exc).__name__


@contextmanager
def azure_errors(what: str) -> Iterator[None]:
    """Translate any non-mldeploy exception raised inside into an mldeploy error."""
    try:
        yield
    except MldeployError:
        raise
    except Exception as exc:
        raise translate(exc, what) from exc


def call(what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with azure_errors(what):
        return fn(*args, **kwargs)
