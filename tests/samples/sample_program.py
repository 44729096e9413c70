"""The Pulumi program of every vendored sample: each sample's ``__main__.py`` names its model and calls ``deploy``.

Push and pull identities, the plain base recipe (stacks/demo/base) unless the
stack's ``baseImage`` names an existing custom base image, the sample's model
registered as the sample registers it (a folder keeps its name under
AZUREML_MODEL_DIR, a file sits directly in it), and an InferenceDeployment of
the sample's own inferenceconfig.json and deploymentconfig.json.

The samples' conda files pin a Python (3.8 to 3.12) other than the base image's,
Debian's 3.11, and there is no conda here to make another one: the deployment
accepts the image's Python, with a warning (``accept_image_python``).
"""

from pathlib import Path

import pulumi
from mldeploy import BaseImage, InferenceDeployment, ModelVersion, ServicePrincipal


def deploy(here: Path, model_name: str, model_path: Path) -> None:
    """Deploy the sample in ``here``; the stack's ``serviceName`` defaults to ``sample-<directory name>``."""
    cfg = pulumi.Config()
    service = cfg.get("serviceName") or f"sample-{here.name}"

    push = ServicePrincipal("push", role="AcrPush", display_name=f"{service}-push")
    pull = ServicePrincipal("pull", role="AcrPull", display_name=f"{service}-pull")
    base = (
        cfg.get("baseImage")
        or BaseImage(
            "base",
            context=str(here.parents[2] / "stacks" / "demo" / "base"),
            repository=f"mldeploy/{service}-base",
            tag="v1",
            service_principal=push,
        ).image_ref
    )

    models = [ModelVersion("model", model_name=model_name, path=str(model_path))]
    deployment = InferenceDeployment(
        "svc",
        service_name=service,
        inference_config=str(here / "inferenceconfig.json"),
        deployment_config=str(here / "deploymentconfig.json"),
        models=models,
        push_identity=push,
        pull_identity=pull,
        base_image=base,
        accept_image_python=True,
    )

    pulumi.export("scoring_uri", deployment.scoring_uri)
    pulumi.export("image_ref", deployment.image_ref)
    pulumi.export("container_id", deployment.container_id)
    pulumi.export("model_uris", pulumi.Output.all(*[m.model_uri for m in models]))
