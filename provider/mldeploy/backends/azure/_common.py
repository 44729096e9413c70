"""Target parsing and the one place Azure SDK exceptions become mldeploy errors."""

from __future__ import annotations

import re
import time
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
    status = status_of(exc)
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
        return f"{code}: {_one_line(str(msg))}" if code else _one_line(str(msg))
    text = getattr(exc, "message", None) or str(exc)
    # azure-ai-ml's messages often start with a newline (MlException("\nThe name for an endpoint must ...")):
    # keep every non-empty line, never just the first one.
    return _one_line(str(text)) or name_of(exc)


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _root(exc: BaseException) -> BaseException:
    """The library's exception behind an mldeploy error translated from it."""
    while isinstance(exc, MldeployError) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def error_code(exc: BaseException) -> str:
    """The service's error code (ARM ``error.code``, Graph ``error.code`` and ``error.details[].code``), '' if none."""
    exc = _root(exc)
    err = getattr(exc, "error", None)
    codes = [str(getattr(err, "code", None) or "")]
    for d in getattr(err, "details", None) or []:
        codes.append(str(getattr(d, "code", None) or (d.get("code") if isinstance(d, dict) else "") or ""))
    return " ".join(c for c in codes if c)


def status_of(exc: BaseException) -> int | None:
    exc = _root(exc)
    status = getattr(exc, "status_code", None) or getattr(exc, "response_status_code", None)
    response = getattr(exc, "response", None)
    if status is None and response is not None:
        status = getattr(response, "status_code", None)
    return int(status) if status else None


def retry_after(exc: BaseException) -> float | None:
    """Seconds from a ``Retry-After`` header on the failed response, if any."""
    exc = _root(exc)
    headers = getattr(getattr(exc, "response", None), "headers", None) or getattr(exc, "response_headers", None) or {}
    try:
        value = headers.get("Retry-After") or headers.get("retry-after")
        return float(value) if value is not None else None
    except (TypeError, ValueError, AttributeError):
        return None


@dataclass
class Backoff:
    """Bounded exponential back-off: ``attempts`` tries, waits ``first * factor**n`` capped at ``cap`` seconds
    (or the answer's ``Retry-After``). ``sleep`` is injectable so unit tests run instantly."""

    attempts: int = 10
    first: float = 2.0
    factor: float = 2.0
    cap: float = 30.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, n: int) -> float:
        return min(self.cap, self.first * self.factor**n)


def with_retry(
    what: str,
    fn: Callable[[], T],
    transient: Callable[[BaseException], str | None],
    backoff: Backoff,
    progress: Callable[[str], None] = lambda m: None,
) -> T:
    """``fn()``, retried while ``transient(exc)`` names what is being waited for (then it is logged through ``progress``);
    any other failure, or the last attempt's, propagates unchanged."""
    waited = 0.0
    for n in range(backoff.attempts):
        try:
            return fn()
        except Exception as exc:
            reason = transient(exc)
            if reason is None:
                raise
            if n == backoff.attempts - 1:
                cause = translate(exc, what)
                raise type(cause)(f"{what}: still waiting after {backoff.attempts} attempts over {waited:g}s: {reason}; {cause}") from exc
            wait = retry_after(exc) or backoff.delay(n)
            waited += wait
            progress(f"{what}: {reason}; retrying in {wait:g}s (attempt {n + 2}/{backoff.attempts})")
            backoff.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def throttled(exc: BaseException) -> str | None:
    return "Azure is throttling requests (HTTP 429)" if status_of(exc) == 429 else None


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
