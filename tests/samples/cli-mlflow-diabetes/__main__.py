"""The Azure ML sample cli/endpoints/online/ncd (sklearn-deployment-with-script.yaml), deployed unchanged with mldeploy.

Azure's files are used as they are (see PROVENANCE.md); only this program,
inferenceconfig.json and deploymentconfig.json are mldeploy's.

    pulumi config set baseImage <image ref>   # optional: an existing custom base image
    pulumi up

Without baseImage the plain base recipe (stacks/demo/base) is built and pushed.
"""

from pathlib import Path

import pulumi
from mldeploy import BaseImage, InferenceDeployment, ModelVersion, ServicePrincipal

HERE = Path(__file__).resolve().parent
cfg = pulumi.Config()
service = cfg.get("serviceName") or "sample-cli-mlflow-diabetes"

push = ServicePrincipal("push", role="AcrPush", display_name=f"{service}-push")
pull = ServicePrincipal("pull", role="AcrPull", display_name=f"{service}-pull")
base = cfg.get("baseImage") or BaseImage(
    "base",
    context=str(HERE.parents[2] / "stacks" / "demo" / "base"),
    repository=f"mldeploy/{service}-base",
    tag="v1",
    service_principal=push,
).image_ref

# Registered as the sample registers it: a folder keeps its name under
# AZUREML_MODEL_DIR, a file sits directly in it.
models = [
    ModelVersion("model", model_name="mir-sample-sklearn-mlflow-model", path=str(HERE / "sklearn-diabetes" / "model")),
]

deployment = InferenceDeployment(
    "svc",
    service_name=service,
    inference_config=str(HERE / "inferenceconfig.json"),
    deployment_config=str(HERE / "deploymentconfig.json"),
    models=models,
    push_identity=push,
    pull_identity=pull,
    base_image=base,
    # The sample's conda file pins python=3.12; the base image has Debian's Python 3.11
    # (no conda here to make another one). Accept the image's Python, with a warning.
    accept_image_python=True,
)

pulumi.export("scoring_uri", deployment.scoring_uri)
pulumi.export("image_ref", deployment.image_ref)
pulumi.export("container_id", deployment.container_id)
pulumi.export("model_uris", pulumi.Output.all(*[m.model_uri for m in models]))
