"""The Azure ML model layout through the real engine and the real inference server.

One deployment with two models (a registered folder and a registered file), then the same
service with the file model alone. The entry script joins paths exactly as Microsoft's
documentation does ("Advanced entry script authoring", v1, section "Load registered models"):

    os.path.join(os.getenv('AZUREML_MODEL_DIR'), first_model_name, first_model_version, 'my_first_model.pkl')   # several
    os.path.join(os.getenv('AZUREML_MODEL_DIR'), 'sklearn_regression_model.pkl')                                 # one file
    os.path.join(os.getenv('AZUREML_MODEL_DIR'), 'my_model_folder', 'sklearn_regression_model.pkl')              # one folder

and reports what it found under ``AZUREML_MODEL_DIR``, so the test checks the layout the server saw.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import requests

from .conftest import copy_demo
from .harness import Project

PORT = 19210
SAMPLE = {"data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}

SEVERAL = '''
import json, os
import joblib, numpy as np

def init():
    global model, labels, seen
    root = os.getenv("AZUREML_MODEL_DIR")
    model = joblib.load(os.path.join(root, "{iris}", "1", "model", "model.joblib"))
    labels = json.load(open(os.path.join(root, "{labels}", "1", "labels.json")))
    seen = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)

def run(raw):
    data = np.array(json.loads(raw)["data"])
    mode = oct(os.stat(os.path.join(os.getenv("AZUREML_MODEL_DIR"), "{iris}", "1", "model", "model.joblib")).st_mode & 0o777)
    return {{"predictions": [labels[i] for i in model.predict(data)], "dir": os.getenv("AZUREML_MODEL_DIR"), "files": seen, "mode": mode}}
'''

ONE_FILE = '''
import json, os

def init():
    global labels, seen
    root = os.getenv("AZUREML_MODEL_DIR")
    labels = json.load(open(os.path.join(root, "labels.json")))
    seen = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)

def run(raw):
    return {"labels": labels, "dir": os.getenv("AZUREML_MODEL_DIR"), "files": seen}
'''


def _program(demo: Path, svc: str, base: str, models: str) -> str:
    return f"""
import pulumi
from mldeploy import InferenceDeployment, ModelVersion, ServicePrincipal
D = {str(demo)!r}
iris = ModelVersion("iris", model_name="{svc}-iris", path=D + "/model")
labels = ModelVersion("labels", model_name="{svc}-labels", path=D + "/labels.json")
push = ServicePrincipal("push", role="AcrPush", display_name="{svc}-push")
pull = ServicePrincipal("pull", role="AcrPull", display_name="{svc}-pull")
dep = InferenceDeployment("svc", service_name="{svc}", inference_config=D + "/inferenceconfig.json",
    deployment_config={{"computeType": "local", "port": {PORT}}}, models=[{models}], push_identity=push, pull_identity=pull,
    base_image={base!r}, health_timeout=90)
pulumi.export("scoring_uri", dep.scoring_uri)
"""


def test_several_models_then_one_file_as_azure_ml_lays_them_out(project: Project, tmp_path: Path, demo_base: str) -> None:
    demo = copy_demo(tmp_path / "demo")
    (demo / "labels.json").write_text(json.dumps(["setosa", "versicolor", "virginica"]))
    os.chmod(demo / "model" / "model.joblib", 0o640)  # kept in the image layer, never loosened
    svc = f"it-layout-{project.name[-6:]}"
    iris, labels = f"{svc}-iris", f"{svc}-labels"
    (demo / "src" / "score.py").write_text(SEVERAL.format(iris=iris, labels=labels))
    project.write(_program(demo, svc, demo_base, "iris, labels"))
    project.up()
    uri = project.outputs()["scoring_uri"]
    r = requests.post(uri, json=SAMPLE, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "predictions": ["setosa", "virginica"],
        "dir": "/var/azureml-app/azureml-models",
        "files": [f"{iris}/1/model/model.joblib", f"{labels}/1/labels.json"],
        "mode": "0o640",
    }

    (demo / "src" / "score.py").write_text(ONE_FILE)
    project.write(_program(demo, svc, demo_base, "labels"))
    project.up()
    r = requests.post(uri, json=SAMPLE, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == {"labels": ["setosa", "versicolor", "virginica"], "dir": f"/var/azureml-app/azureml-models/{labels}/1", "files": ["labels.json"]}
    project.destroy()
