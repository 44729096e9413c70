"""The vendored Azure ML samples: what each one registers, serves and is asked.

One row per sample directory under tests/samples/. The files in a sample's
directory are Azure's, byte for byte (see its PROVENANCE.md), except
``__main__.py`` (the Pulumi program), ``inferenceconfig.json``,
``deploymentconfig.json``, ``PROVENANCE.md`` and ``answers/`` (the answers
recorded by ``record_answers.py``).

``models`` are registered as the sample registers them (name -> path
relative to the sample directory): Azure ML keeps a registered folder's
name under ``AZUREML_MODEL_DIR`` and puts a registered file directly in it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Sample:
    name: str
    models: dict[str, str]  # registered name -> path in the sample directory
    requests: tuple[str, ...]  # request files, relative to the sample directory
    refused_at_preview: str | None = None  # why this machine cannot serve it (the test asserts the refusal)
    fails_upstream: str | None = None  # the sample as published does not start (on the host either): the error it fails with
    notes: tuple[str, ...] = field(default=())

    @property
    def dir(self) -> Path:
        return HERE / self.name

    @property
    def inference_config(self) -> dict:
        return json.loads((self.dir / "inferenceconfig.json").read_text())

    @property
    def port(self) -> int:
        return int(json.loads((self.dir / "deploymentconfig.json").read_text())["port"])

    def answer_path(self, request: str) -> Path:
        return self.dir / "answers" / (Path(request).stem + ".answer.json")

    def answer(self, request: str) -> dict:
        return json.loads(self.answer_path(request).read_text())


SAMPLES = [
    Sample("cli-model-1", {"sample-model-1": "model"}, ("sample-request.json",)),
    Sample("cli-model-2", {"sample-model-2": "model"}, ("sample-request.json",)),
    Sample(
        "sdk-model-1",
        {"sample-sdk-model-1": "model/sklearn_regression_model.pkl"},
        ("sample-request.json",),
        refused_at_preview="inference-schema",
    ),
    Sample(
        "multimodel",
        {"minimal-multimodel": "models"},
        ("test-data/iris-test-data.json", "test-data/diabetes-test-data.json"),
    ),
    Sample(
        "cli-mlflow-diabetes",
        {"mir-sample-sklearn-mlflow-model": "sklearn-diabetes/model"},
        ("sample-request-sklearn.json",),
        # its conda file leaves mlflow unpinned; mlflow 3 dropped the function its score.py imports
        fails_upstream="ImportError: cannot import name 'infer_and_parse_json_input'",
    ),
    Sample("sdk-mlflow-diabetes", {"sklearn-diabetes-mlflow-sdk": "sklearn-diabetes/model"}, ("sample-request-sklearn.json",)),
]

BY_NAME = {s.name: s for s in SAMPLES}
