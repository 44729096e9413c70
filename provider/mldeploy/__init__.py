"""mldeploy: ship ML models to inference services on custom Docker base images, with Pulumi.

Resources: ``ModelVersion``, ``ServicePrincipal``, ``BaseImage``,
``InferenceDeployment``; the ``ModelService`` component wires them. The
pydantic models read the source document's JSON files (``InferenceConfig``,
``DeploymentConfig``) and describe registries and image requirements.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .components.model_service import BaseImageSpec, ModelService
from .errors import AuthError, BackendError, BuildError, MldeployError, NotFound, ValidationError
from .resources.base_image import BaseImage
from .resources.inference_deployment import InferenceDeployment
from .resources.model_version import ModelVersion
from .resources.service_principal import ServicePrincipal

if TYPE_CHECKING:
    from .config import BaseImageRegistry, DeploymentConfig, InferenceConfig
    from .refs import ImageRef, PrivateRegistry, PublicRegistry, WorkspaceRegistry, parse_image_ref
    from .requirements import ImageRequirements

__version__ = "0.1.0"

#: The pydantic models, imported when first asked for (``mldeploy._lazy``: a program that only
#: constructs resources does not pay for pydantic).
_LAZY = {
    "BaseImageRegistry": "config",
    "DeploymentConfig": "config",
    "InferenceConfig": "config",
    "ImageRef": "refs",
    "PrivateRegistry": "refs",
    "PublicRegistry": "refs",
    "WorkspaceRegistry": "refs",
    "parse_image_ref": "refs",
    "ImageRequirements": "requirements",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mldeploy' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])

__all__ = [
    "AuthError",
    "BackendError",
    "BaseImage",
    "BaseImageRegistry",
    "BaseImageSpec",
    "BuildError",
    "DeploymentConfig",
    "ImageRef",
    "ImageRequirements",
    "InferenceConfig",
    "InferenceDeployment",
    "MldeployError",
    "ModelService",
    "ModelVersion",
    "NotFound",
    "PrivateRegistry",
    "PublicRegistry",
    "ServicePrincipal",
    "ValidationError",
    "WorkspaceRegistry",
    "parse_image_ref",
]
