"""Entry script for the consumer's wine classifier: Azure ML's init()/run() contract."""

import json
import os

import joblib
import numpy as np

CLASSES = ["class_0", "class_1", "class_2"]
model = None


def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "model.joblib"))


def run(raw_data):
    data = np.array(json.loads(raw_data)["data"], dtype=float)
    return {"predictions": [CLASSES[i] for i in model.predict(data)]}
