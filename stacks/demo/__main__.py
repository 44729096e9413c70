"""The demo stack: the source document's deployment as a Pulumi program.

    make demo        # pulumi up on stack 'local', then a prediction
    make demo-down   # pulumi destroy

Everything the document does by hand is a resource here: the custom base
image (built from base/Dockerfile, checked, pushed, pinned by digest), the
registered model (model/, trained by make_model.py), a push identity for the
builds, a pull-only identity for the deployment, and the local web service
built from inferenceconfig.json and deploymentconfig.json.
"""

from pathlib import Path

import pulumi

from mldeploy import BaseImageSpec, ModelService

HERE = Path(__file__).parent
cfg = pulumi.Config()

service = ModelService(
    "demo",
    service_name=cfg.get("serviceName") or "demo-iris",
    models={"iris": str(HERE / "model")},
    inference_config=str(HERE / "inferenceconfig.json"),
    deployment_config=str(HERE / "deploymentconfig.json"),
    base_image=BaseImageSpec(context=str(HERE / "base"), tag="v1"),
    model_tags={"framework": "scikit-learn", "dataset": "iris"},
)

pulumi.export("scoring_uri", service.scoring_uri)
pulumi.export("swagger_uri", service.swagger_uri)
pulumi.export("image_ref", service.image_ref)
pulumi.export("base_image_ref", service.base_image_ref)
pulumi.export("model_uris", service.model_uris)
