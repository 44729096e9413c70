"""An example consumer of mldeploy: a second model, from the installed wheel.

This project does what your own project would do: mldeploy comes from a wheel
installed in this project's own virtualenv (.venv, from requirements.txt),
not from the repository's source tree.

    make wheel                                  # dist/mldeploy-<version>-py3-none-any.whl
    cd stacks/consumer
    python3 -m venv .venv && .venv/bin/pip install -r requirements.txt
    .venv/bin/python make_model.py              # needs scikit-learn==1.7.0 and joblib (see make_model.py)
    source ../../scripts/lib.sh                 # the local target's environment (MLDEPLOY_HOME, backend, ...)
    export PATH="$PWD/.venv/bin:$PATH"          # this project's venv first: pulumi runs whatever python is first
    pulumi stack select --create dev
    pulumi up

Config (all optional):
    serviceName   the service's name (default "consumer-wine")
    port          overrides deploymentconfig.json's port (8895)
"""

from pathlib import Path

import pulumi

from mldeploy import BaseImageSpec, DeploymentConfig, ModelService

HERE = Path(__file__).parent
cfg = pulumi.Config()

# The deployment config is a pydantic model: validate the JSON file, then
# override what this stack configures.
deployment = DeploymentConfig.model_validate_json((HERE / "deploymentconfig.json").read_text())
if (port := cfg.get_int("port")) is not None:
    deployment = deployment.model_copy(update={"port": port})

service = ModelService(
    "consumer",
    service_name=cfg.get("serviceName") or "consumer-wine",
    models={"wine": str(HERE / "model")},
    inference_config=str(HERE / "inferenceconfig.json"),
    deployment_config=deployment.model_dump(by_alias=True, exclude_none=True),
    base_image=BaseImageSpec(context=str(HERE / "base"), tag="v1"),
    model_tags={"framework": "scikit-learn", "dataset": "wine"},
)

pulumi.export("scoring_uri", service.scoring_uri)
pulumi.export("image_ref", service.image_ref)
pulumi.export("base_image_ref", service.base_image_ref)
pulumi.export("model_uris", service.model_uris)
