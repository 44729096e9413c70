"""mldeploy: ship ML models to inference services on custom Docker base images, with Pulumi.

Resources: ``ModelVersion``, ``ServicePrincipal``, ``BaseImage``,
``InferenceDeployment``; the ``ModelService`` component wires them. The
pydantic models read the source document's JSON files (``InferenceConfig``,
``DeploymentConfig``) and describe registries and image requirements.
"""

from __future__ import annotations

from .components.model_service import BaseImageSpec, ModelService
from .config import BaseImageRegistry, DeploymentConfig, InferenceConfig
from .errors import AuthError, BackendError, BuildError, MldeployError, NotFound, ValidationError
from .refs import ImageRef, PrivateRegistry, PublicRegistry, WorkspaceRegistry, parse_image_ref
from .requirements import ImageRequirements
from .resources.base_image import BaseImage
from .resources.inference_deployment import InferenceDeployment
from .resources.model_version import ModelVersion
from .resources.service_principal import ServicePrincipal

__version__ = "0.1.0"

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
