"""Vendor Azure ML samples unchanged from a snapshot of Azure/azureml-examples, and write PROVENANCE.md.

    python tests/samples/vendor.py <git dir of Azure/azureml-examples> [sample ...]

Each file is written byte for byte from ``git cat-file blob <commit>:<path>``;
PROVENANCE.md lists the repository, the commit, each upstream path, its git
blob id and the sha256 of the file as vendored, and how the sample's answers
were recorded (answers/recording.json, written by record_answers.py).
Without a git dir, only PROVENANCE.md is rewritten from the files in place
(the commit and blob ids are then taken from the existing table).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPOSITORY = "https://github.com/Azure/azureml-examples"
COMMIT = "085cd6ea399038c1e07843acff811f34261c0887"
LICENSE = "MIT (Copyright (c) Microsoft Corporation), the repository's LICENSE file"

CLI = "cli/endpoints/online"
SDK = "sdk/python/endpoints/online"

#: sample -> (local path -> upstream path)
VENDORED: dict[str, dict[str, str]] = {
    "cli-model-1": {
        f: f"{CLI}/model-1/{f}"
        for f in ("model/sklearn_regression_model.pkl", "onlinescoring/score.py", "environment/conda.yaml", "sample-request.json")
    },
    "cli-model-2": {
        f: f"{CLI}/model-2/{f}"
        for f in ("model/sklearn_regression_model.pkl", "onlinescoring/score.py", "environment/conda.yaml", "sample-request.json")
    },
    "sdk-model-1": {
        f: f"{SDK}/model-1/{f}"
        for f in ("model/sklearn_regression_model.pkl", "onlinescoring/score.py", "environment/conda.yaml", "sample-request.json")
    },
    "multimodel": {
        **{
            f: f"{CLI}/custom-container/minimal/multimodel/{f}"
            for f in (
                "models/diabetes.sav",
                "models/iris.sav",
                "code/minimal-multimodel-score.py",
                "test-data/diabetes-test-data.json",
                "test-data/iris-test-data.json",
            )
        },
        "online-endpoints-multimodel.yml": "sdk/python/assets/environment/conda-yamls/online-endpoints-multimodel.yml",
    },
    "cli-mlflow-diabetes": {
        **{
            f"sklearn-diabetes/{f}": f"{CLI}/ncd/sklearn-diabetes/{f}"
            for f in ("model/MLmodel", "model/conda.yaml", "model/model.pkl", "model/requirements.txt", "src/score.py", "environment/conda.yaml")
        },
        "sample-request-sklearn.json": f"{CLI}/ncd/sample-request-sklearn.json",
    },
    "sdk-mlflow-diabetes": {
        **{
            f"sklearn-diabetes/{f}": f"{SDK}/mlflow/sklearn-diabetes/{f}"
            for f in (
                "model/MLmodel",
                "model/conda.yaml",
                "model/model.pkl",
                "model/python_env.yaml",
                "model/requirements.txt",
                "src/score.py",
                "environment/conda.yaml",
            )
        },
        "sample-request-sklearn.json": f"{SDK}/mlflow/sample-request-sklearn.json",
    },
}

#: what the sample is upstream, and what this project found running it.
ABOUT: dict[str, str] = {
    "cli-model-1": (
        "The scikit-learn regression model of the CLI's managed online endpoint samples: the `blue` deployment of "
        "`cli/endpoints/online/managed/sample/blue-deployment.yml` (model `path: ../../model-1/model/`, a folder; "
        "code `../../model-1/onlinescoring/`, `score.py`; conda file `../../model-1/environment/conda.yaml`)."
    ),
    "cli-model-2": (
        "The `green` deployment of the same safe-rollout sample (`cli/endpoints/online/managed/sample/green-deployment.yml`): "
        "same model file (a folder), a `score.py` whose `init()` loads the model and whose `run()` answers a fixed "
        "`[0.5, 0.5]` so the rollout is easy to see."
    ),
    "sdk-model-1": (
        "The SDK's simple deployment (`sdk/python/endpoints/online/managed/online-endpoints-simple-deployment.ipynb`): "
        '`Model(path="../model-1/model/sklearn_regression_model.pkl")`, a single file, so `score.py` reads '
        "`$AZUREML_MODEL_DIR/sklearn_regression_model.pkl`. Its conda file pins Python 3.9-era packages "
        "(`python=3.9`, `numpy=1.23.5`, `azureml-defaults==1.53.0`, `inference-schema[numpy-support]==1.5.1`). "
        "`inference-schema` 1.5.1 requires Python < 3.11 and the only Python here is 3.11, so this machine cannot "
        "serve it: `pulumi preview` refuses it naming the conda file's line and the pin, and creates nothing. "
        "No answer is recorded (no Python < 3.11 on this machine to record it with)."
    ),
    "multimodel": (
        "Two models in one registered folder: `cli/endpoints/online/custom-container/minimal/multimodel` "
        "(model `path: models`, code `code/minimal-multimodel-score.py`, which loads every file in "
        "`$AZUREML_MODEL_DIR/models` and picks one by the request's `model` key), with the conda file the SDK "
        "notebook `sdk/python/endpoints/online/managed/online-endpoints-multimodel.ipynb` uses for the same files "
        "(`sdk/python/assets/environment/conda-yamls/online-endpoints-multimodel.yml`; the CLI variant installs the "
        "same packages in a Dockerfile FROM an mcr.microsoft.com image instead). Nothing in the conda file is pinned, "
        "so the answers are for the versions resolved on the recording day (see answers/recording.json)."
    ),
    "cli-mlflow-diabetes": (
        "An MLflow model (a folder) with a scoring script: `cli/endpoints/online/ncd/sklearn-deployment-with-script.yaml` "
        "(model `path: sklearn-diabetes/model`, code `sklearn-diabetes/src`, conda file "
        "`sklearn-diabetes/environment/conda.yaml`). As published it does not start: the conda file leaves `mlflow` "
        "unpinned, today's mlflow (3.x) no longer has `mlflow.pyfunc.scoring_server.infer_and_parse_json_input`, and "
        "`score.py` fails to import, on the host as in the image (answers/startup-failure.log). The test asserts "
        "that `pulumi up` fails with that error in its output and that destroy leaves nothing."
    ),
    "sdk-mlflow-diabetes": (
        "The SDK's variant of the MLflow sample (`sdk/python/endpoints/online/mlflow/online-endpoints-deploy-mlflow-model-with-script.ipynb`: "
        '`Model(path="sklearn-diabetes/model", type=MLFLOW_MODEL)`, code `sklearn-diabetes/src`, conda file '
        "`sklearn-diabetes/environment/conda.yaml`, request `sample-request-sklearn.json`). Its `score.py` uses "
        "`infer_and_parse_data`, which mlflow 3 still has, and it serves."
    ),
}

OURS = """\
## Written by mldeploy (not from the sample)

- `__main__.py`, `Pulumi.yaml`: the Pulumi program, registering the model as the sample does.
- `inferenceconfig.json`, `deploymentconfig.json`: the source document's two JSON files pointing at the sample's files.
- `answers/`: the recorded answers (`record_answers.py`).
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def vendor(git_dir: str, sample: str) -> None:
    for local, upstream in VENDORED[sample].items():
        dest = HERE / sample / local
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(subprocess.run(["git", "--git-dir", git_dir, "cat-file", "blob", f"{COMMIT}:{upstream}"], capture_output=True, check=True).stdout)


def blob_id(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def provenance(sample: str) -> str:
    d = HERE / sample
    rows = [
        f"| `{local}` | `{upstream}` | `{blob_id(d / local)}` | `{sha256(d / local)}` | {(d / local).stat().st_size} |"
        for local, upstream in VENDORED[sample].items()
    ]
    rec = d / "answers" / "recording.json"
    if rec.exists():
        r = json.loads(rec.read_text())
        answers = sorted(p.name for p in (d / "answers").iterdir() if p.name != "recording.json")
        recording = (
            "## How the answers were recorded\n\n"
            "`source .env.sh && python tests/samples/record_answers.py "
            f"{sample}`: the sample's conda file resolved for the host's Python {r['python']} into the same pinned lock a "
            "deployment uses, installed into a scratch venv (`python3.11 -m venv`, `pip install --no-index --require-hashes "
            "--no-deps`), the models laid out as Azure ML lays them out "
            f"({', '.join(f'`{k}` at `{v}`' for k, v in r['model_layout'].items())}), and the sample's code served "
            f"directly on the host:\n\n```\n{r['command']}\n```\n\n"
            f"Inference server: `{r['inference_server']}`. The full lock is in `answers/recording.json`. "
            f"Recorded: {', '.join(f'`answers/{a}`' for a in answers)}.\n"
        )
    else:
        recording = "## How the answers were recorded\n\nNot recorded: this machine cannot serve this sample (see above).\n"
    return (
        f"# Provenance: {sample}\n\n{ABOUT[sample]}\n\n"
        f"- Repository: {REPOSITORY}\n- Commit: `{COMMIT}`\n- Licence: {LICENSE}\n"
        "- Vendored unchanged: each file below is byte for byte the upstream blob (same git blob id).\n"
        "  Model files are small and stored in git itself (no Git LFS pointers).\n\n"
        "| file | upstream path | git blob id | sha256 | bytes |\n| --- | --- | --- | --- | --- |\n"
        + "\n".join(rows)
        + "\n\n"
        + OURS
        + "\n"
        + recording
    )


def main(argv: list[str]) -> None:
    git_dir = argv[0] if argv and argv[0] not in VENDORED else None
    names = [a for a in argv if a in VENDORED] or list(VENDORED)
    for sample in names:
        if git_dir:
            vendor(git_dir, sample)
        (HERE / sample / "PROVENANCE.md").write_text(provenance(sample))
        print(f"{sample}: PROVENANCE.md written")


if __name__ == "__main__":
    main(sys.argv[1:])
