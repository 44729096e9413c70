"""mldeploy's one exception hierarchy.

    MldeployError                 anything mldeploy raises on purpose
    ├── ValidationError           bad input; becomes a check failure naming the input
    └── BackendError              Docker, the registry, MLflow, Swarm or Azure failed
        ├── NotFound              a definite "does not exist" (drives read and delete)
        ├── AuthError             credentials refused (never means "gone")
        └── BuildError            an image build failed (carries the failing step and log tail)

Backends translate their libraries' exceptions into these once, with
``raise ... from exc``; resources never see a docker, requests or MLflow
exception. Only ``NotFound`` may make ``read`` report a resource as gone.
"""

from __future__ import annotations


class MldeployError(Exception):
    """Base class of every error mldeploy raises on purpose."""


class ValidationError(MldeployError):
    """An input is wrong. ``field`` names the input, ``message`` says what and how to fix it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class BackendError(MldeployError):
    """A backend system (Docker Engine, registry, MLflow, Swarm, Azure) failed."""


class NotFound(BackendError):
    """The backend answered definitely that the object does not exist."""


class AuthError(BackendError):
    """The backend refused the credentials. Never treated as not-found."""


class BuildError(BackendError):
    """An image build failed. ``step`` is the failing Dockerfile step, ``log_tail`` its last lines."""

    def __init__(self, message: str, step: str | None = None, log_tail: str = "", log_path: str | None = None) -> None:
        detail = message
        if step:
            detail += f"\nfailing step: {step}"
        if log_tail:
            detail += "\nlast lines of build output:\n" + log_tail
        if log_path:
            detail += f"\nfull build log: {log_path}"
        super().__init__(detail)
        self.step = step
        self.log_tail = log_tail
        self.log_path = log_path
