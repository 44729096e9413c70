"""Entry script for the demo service: Azure ML's init()/run() contract, unchanged."""

import json
import os

import joblib
import numpy as np

CLASSES = ["setosa", "versicolor", "virginica"]
model = None


def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "model.joblib"))


def run(raw_data):
    data = np.array(json.loads(raw_data)["data"])
    return {"predictions": [CLASSES[i] for i in model.predict(data)]}
