"""ModelService: one call that wires a model, identities, an optional base image and a deployment.

    ModelService(
        "iris",
        service_name="iris",
        models={"iris": "model/"},                      # name -> file or directory
        inference_config="inferenceconfig.json",        # the document's JSON files
        deployment_config="deploymentconfig.json",
        base_image=BaseImageSpec(context="base"),       # or an image reference string
    )

Creates, as children: a ``ModelVersion`` per model; an ``AcrPush``
``ServicePrincipal`` for builds (unless ``push_identity`` is given); an
``AcrPull`` ``ServicePrincipal`` for the deployment (unless ``pull_identity`` is given); a ``BaseImage`` when a
``BaseImageSpec`` is given; and the ``InferenceDeployment``. Outputs:
``scoring_uri``, ``swagger_uri``, ``image_ref``, ``base_image_ref``,
``model_uris``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pulumi
from pulumi import ComponentResource, Input, Output, ResourceOptions

from ..resources.base_image import BaseImage
from ..resources.inference_deployment import InferenceDeployment
from ..resources.model_version import ModelVersion
from ..resources.service_principal import ServicePrincipal


@dataclass
class BaseImageSpec:
    """A custom base image to build with the service (see ``BaseImage`` for the fields)."""

    context: str
    dockerfile: str = "Dockerfile"
    repository: str | None = None
    tag: str = "latest"
    build_args: dict[str, str] = field(default_factory=dict)
    requirements: dict[str, Any] | None = None
    #: on the azure target: build on the registry (the document's `az acr build`) instead of the local Docker Engine
    remote_build: bool = False


def _check_own_inputs(name: str, service_name: Any) -> None:
    """``service_name`` also names the base image repository and the identities: a bad one is reported as itself."""
    from ..errors import ValidationError
    from ..resources.inference_deployment import _check_service_name

    try:
        _check_service_name({"service_name": service_name})
    except ValidationError as exc:  # RunError: Pulumi prints the message without a Python traceback
        raise pulumi.RunError(
            f"ModelService {name}: {exc.field}: {exc.message} (it also names the base image repository mldeploy/<service_name>-base)"
        ) from exc


class ModelService(ComponentResource):
    """A model served as a web service, from the source document's two JSON files."""

    scoring_uri: Output[str]
    swagger_uri: Output[str]
    image_ref: Output[str]
    base_image_ref: Output[str]

    def __init__(
        self,
        name: str,
        service_name: str,
        models: dict[str, str],
        inference_config: str,
        deployment_config: str | dict[str, Any] | None = None,
        base_image: BaseImageSpec | Input[str] | None = None,
        registry: str = "local",
        push_identity: ServicePrincipal | None = None,
        model_tags: dict[str, str] | None = None,
        target: Input[str] | None = None,
        pull_identity: ServicePrincipal | None = None,
        health_timeout: int = 120,
        base_python_version: Input[str] | None = None,
        accept_image_python: bool = False,
        regenerate_key: Input[str] | None = None,
        base_image_registry: dict[str, Any] | None = None,
        opts: ResourceOptions | None = None,
    ) -> None:
        """``target``: ``"local"``/``"swarm"``/``"kubernetes"`` (or unset: the deployment's default), or the azure
        target ``azure:<workspace ARM id>`` (a string or an Output, e.g. from a pulumi-azure-native Workspace):
        then the models go to the workspace's registry, the identities are Entra service principals on
        the workspace's container registry, the base image is pushed there, and the deployment is a
        managed online endpoint. The rest of the program does not change.

        Every other ``InferenceDeployment`` option is passed through (``health_timeout``,
        ``base_python_version`` (default: the BaseImage's), ``accept_image_python``, ``regenerate_key``,
        ``base_image_registry``);
        ``push_identity``/``pull_identity`` replace the ServicePrincipals the component would create."""
        _check_own_inputs(name, service_name)  # before any name is derived from them
        super().__init__("mldeploy:index:ModelService", name, None, opts)
        child = ResourceOptions(parent=self)
        on_azure = target is not None and (not isinstance(target, str) or target.startswith("azure:"))
        model_registry: Input[str] = "local"
        if on_azure:
            registry = target  # type: ignore[assignment]
            model_registry = target  # type: ignore[assignment]

        tags: dict[str, Input[str]] | None = dict(model_tags) if model_tags else None
        versions = [
            ModelVersion(f"{name}-{model}", model_name=model, path=path, tags=tags, registry=model_registry, opts=child) for model, path in models.items()
        ]
        push = push_identity or ServicePrincipal(f"{name}-push", role="AcrPush", display_name=f"{service_name}-push", registry=registry, opts=child)
        pull = pull_identity or ServicePrincipal(f"{name}-pull", role="AcrPull", display_name=f"{service_name}-pull", registry=registry, opts=child)

        base_ref: Input[str] | None
        base_python: Input[str] | None = None
        if isinstance(base_image, BaseImageSpec):
            base = BaseImage(
                f"{name}-base",
                context=str(Path(base_image.context).resolve()),
                dockerfile=base_image.dockerfile,
                repository=base_image.repository or f"mldeploy/{service_name}-base",
                tag=base_image.tag,
                build_args=base_image.build_args,
                registry="local" if on_azure else registry,  # on azure: the push identity's registry
                service_principal=push,
                # Azure ML builds the environment with the base image's conda (the document's image requirements).
                requirements=base_image.requirements if base_image.requirements is not None or not on_azure else {"conda": True},
                build_on=target if on_azure and base_image.remote_build else None,
                opts=child,
            )
            base_ref = base.image_ref
            base_python = cast("Output[str]", base.python_version)  # None (not probed) is what InferenceDeployment treats as unset
        else:
            base_ref = base_image

        deployment = InferenceDeployment(
            f"{name}-deployment",
            service_name=service_name,
            inference_config=inference_config,
            deployment_config=deployment_config,
            models=versions,
            push_identity=push,
            pull_identity=pull,
            base_image=base_ref,
            base_python_version=base_python_version or base_python,
            target=target,
            health_timeout=health_timeout,
            accept_image_python=accept_image_python,
            regenerate_key=regenerate_key,
            base_image_registry=base_image_registry,
            opts=child,
        )
        self.scoring_uri = deployment.scoring_uri
        self.swagger_uri = deployment.swagger_uri
        self.image_ref = deployment.image_ref
        self.base_image_ref = Output.from_input(base_ref) if base_ref is not None else Output.from_input("")
        self.model_uris = Output.all(*[v.model_uri for v in versions])
        self.register_outputs(
            {
                "scoring_uri": self.scoring_uri,
                "swagger_uri": self.swagger_uri,
                "image_ref": self.image_ref,
                "base_image_ref": self.base_image_ref,
                "model_uris": self.model_uris,
            }
        )


__all__ = ["BaseImageSpec", "ModelService"]
