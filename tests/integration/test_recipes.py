"""Base image recipes (recipes/): the ONNX Runtime CPU base serving a real ONNX model end to end;
the CUDA and TensorRT recipes limited to what a machine without a GPU can show.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import requests

from .conftest import Creds, local_tags
from .harness import Project
from .test_samples import manifest_status

pytestmark = pytest.mark.integration

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
ONNX_PORT = 19260

SCORE_PY = '''\
import json
import os

import numpy as np
import onnxruntime as ort


def init():
    global session
    path = os.path.join(os.environ["AZUREML_MODEL_DIR"], "iris.onnx")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def run(raw_data):
    x = np.asarray(json.loads(raw_data)["data"], dtype=np.float32)
    label, probabilities = session.run(None, {session.get_inputs()[0].name: x})
    return {"label": label.tolist(), "probabilities": probabilities.tolist(), "onnxruntime": ort.__version__}
'''


def iris_onnx(dest: Path) -> tuple[object, np.ndarray]:
    """A scikit-learn iris classifier converted to ONNX with skl2onnx (bundled data, nothing downloaded)."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    clf = LogisticRegression(max_iter=500).fit(x, y)
    onx = to_onnx(clf, x[:1].astype(np.float32), options={id(clf): {"zipmap": False}}, target_opset=17)
    dest.write_bytes(onx.SerializeToString())
    return clf, x


def test_onnxruntime_cpu_recipe_serves_a_converted_model(tmp_path: Path, settings, docker_client, push_creds: Creds) -> None:  # type: ignore[no-untyped-def]
    """The recipe is built and checked by BaseImage, and serves an ONNX model (converted from scikit-learn here)
    whose answers match the scikit-learn model's; a second preview shows no change; destroy leaves nothing."""
    app = tmp_path / "app"
    (app / "src").mkdir(parents=True)
    (app / "src" / "score.py").write_text(SCORE_PY)
    clf, x = iris_onnx(app / "iris.onnx")
    (app / "inferenceconfig.json").write_text(json.dumps({"entryScript": "score.py", "runtime": "python", "sourceDirectory": "src"}))
    (app / "deploymentconfig.json").write_text(json.dumps({"computeType": "local", "port": ONNX_PORT}))
    p = Project(tmp_path / "proj")
    p.write(
        f"""
        import pulumi
        from mldeploy import BaseImage, InferenceDeployment, ModelVersion, ServicePrincipal
        A = {str(app)!r}
        push = ServicePrincipal("push", role="AcrPush", display_name="recipe-ort-push")
        pull = ServicePrincipal("pull", role="AcrPull", display_name="recipe-ort-pull")
        base = BaseImage("ort", context={str(RECIPES / "onnxruntime-cpu")!r}, repository="mldeploy/recipe-onnxruntime-cpu",
                         tag="1.32.0", service_principal=push)
        mv = ModelVersion("model", model_name="recipe-iris-onnx", path=A + "/iris.onnx")
        dep = InferenceDeployment("svc", service_name="recipe-ort", inference_config=A + "/inferenceconfig.json",
            deployment_config=A + "/deploymentconfig.json", models=[mv], push_identity=push, pull_identity=pull,
            base_image=base.image_ref, base_python_version=base.python_version)
        pulumi.export("scoring_uri", dep.scoring_uri)
        pulumi.export("image_ref", dep.image_ref)
        pulumi.export("base_ref", base.image_ref)
        pulumi.export("container_id", dep.container_id)
        """
    )
    try:
        p.up()
        out = p.outputs()
        sample = x[[0, 60, 120, 149]]
        r = requests.post(out["scoring_uri"], json={"data": sample.tolist()}, timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["onnxruntime"] == "1.32.0"
        assert body["label"] == clf.predict(sample).tolist()  # type: ignore[attr-defined]
        np.testing.assert_allclose(body["probabilities"], clf.predict_proba(sample), atol=1e-4)  # type: ignore[attr-defined]
        p.pulumi("preview", "--expect-no-changes", "--diff")
        p.destroy()
        for ref in (out["image_ref"], out["base_ref"]):
            assert manifest_status(ref, push_creds) == 404, f"{ref} still in the registry after destroy"
        assert docker_client.containers.list(all=True, filters={"label": "mldeploy.service=recipe-ort"}) == []
    finally:
        p.cleanup()


@pytest.mark.parametrize("recipe", ["cuda", "tensorrt"])
def test_gpu_recipes_are_refused_at_preview_without_a_gpu(tmp_path: Path, recipe: str, settings, docker_client) -> None:  # type: ignore[no-untyped-def]
    """A deployment on a GPU recipe asking for a GPU (enableGpu) is refused at preview, naming enableGpu, and
    nothing is built or created. This machine has no GPU and cannot pull the recipes' parent images, so the
    recipes are documented, not built; the preview says the parent image could not be looked up."""
    dockerfile = (RECIPES / recipe / "Dockerfile").read_text()
    assert "WHEELHOUSE_URL" in dockerfile and "azureml-inference-server-http" in dockerfile and "onnxruntime-gpu" in dockerfile
    app = tmp_path / "app"
    (app / "src").mkdir(parents=True)
    (app / "src" / "score.py").write_text("def init():\n    pass\n\n\ndef run(raw):\n    return raw\n")
    (app / "model.onnx").write_bytes(b"not used")
    (app / "inferenceconfig.json").write_text(json.dumps({"entryScript": "score.py", "sourceDirectory": "src", "enableGpu": True}))
    p = Project(tmp_path / "proj")
    p.write(
        f"""
        from mldeploy import BaseImage, InferenceDeployment, ModelVersion, ServicePrincipal
        A = {str(app)!r}
        push = ServicePrincipal("push", role="AcrPush", display_name="recipe-{recipe}-push")
        pull = ServicePrincipal("pull", role="AcrPull", display_name="recipe-{recipe}-pull")
        base = BaseImage("gpu", context={str(RECIPES / recipe)!r}, repository="mldeploy/recipe-{recipe}", tag="v1",
                         service_principal=push)
        mv = ModelVersion("model", model_name="recipe-{recipe}-model", path=A + "/model.onnx")
        dep = InferenceDeployment("svc", service_name="recipe-{recipe}", inference_config=A + "/inferenceconfig.json",
            deployment_config={{"computeType": "local", "port": {ONNX_PORT + 1}}}, models=[mv], push_identity=push,
            pull_identity=pull, base_image=base.image_ref)
        """
    )
    try:
        res = p.preview(check=False)
        assert res.returncode != 0
        assert "enableGpu" in res.output and "no GPU" in res.output
        # the recipe's parent image (Docker Hub / nvcr.io) cannot be looked up from here: said, not hidden
        parent = next(line.split()[1] for line in dockerfile.splitlines() if line.startswith("ARG ") and "_IMAGE=" in line).split("=", 1)[1]
        assert parent in res.output
        assert not any(parent in t for t in local_tags(docker_client))
        assert docker_client.containers.list(all=True, filters={"label": f"mldeploy.service=recipe-{recipe}"}) == []
    finally:
        p.cleanup()
