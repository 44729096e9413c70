"""The Azure ML sample cli/endpoints/online/model-1 (the managed/sample blue deployment), deployed unchanged with mldeploy.

Azure's files are used as they are (see PROVENANCE.md); only this program,
inferenceconfig.json and deploymentconfig.json are mldeploy's.

    pulumi config set baseImage <image ref>   # optional: an existing custom base image
    pulumi up

Without baseImage the plain base recipe (stacks/demo/base) is built and pushed.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/samples/sample_program.py: the program all samples share

from sample_program import deploy  # noqa: E402

# The sample's conda file pins python=3.12: the image's Python 3.11 is accepted, with a warning.
deploy(HERE, model_name="sample-model-1", model_path=HERE / "model")
