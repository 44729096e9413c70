"""mldeploy: ship ML models to inference services on custom Docker base images, with Pulumi.

Resources: ``ModelVersion``, ``ServicePrincipal``, ``BaseImage``,
``InferenceDeployment``; the ``ModelService`` component wires them.
"""

from __future__ import annotations

from .errors import AuthError, BackendError, BuildError, MldeployError, NotFound, ValidationError
from .resources.service_principal import ServicePrincipal

__version__ = "0.1.0"

__all__ = sorted(
    [
        "AuthError",
        "BackendError",
        "BuildError",
        "MldeployError",
        "NotFound",
        "ServicePrincipal",
        "ValidationError",
    ]
)
