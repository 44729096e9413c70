"""The document's JSON files as pydantic models, and the derived image's layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mldeploy.config import DeploymentConfig, InferenceConfig, parse
from mldeploy.derived_image import derived_digest, dockerfile, model_dir
from mldeploy.errors import ValidationError

DOC_IC = {
    "entryScript": "score.py",
    "runtime": "python",
    "condaFile": "infenv.yml",
    "extraDockerfileSteps": None,
    "sourceDirectory": None,
    "enableGpu": False,
    "baseImage": "mcr.microsoft.com/azureml/o16n-sample-user-base/ubuntu-miniconda",
    "baseImageRegistry": "mcr.microsoft.com",
}


def test_documents_inference_config_parses_as_is() -> None:
    ic = InferenceConfig.model_validate(DOC_IC)
    assert ic.entry_script == "score.py" and ic.conda_file == "infenv.yml"
    assert ic.base_image_registry is not None and ic.base_image_registry.address == "mcr.microsoft.com"


def test_registry_password_is_secret() -> None:
    ic = InferenceConfig.model_validate({**DOC_IC, "baseImageRegistry": {"address": "r.example", "username": "u", "password": "hunter2"}})
    assert "hunter2" not in repr(ic) and "hunter2" not in str(ic.model_dump())


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"computeType": "local", "port": 8890, "prot": 1}, "prot: unknown field"),
        ({"computeType": "gke"}, "computeType"),
        ({"computeType": "local", "port": 70000}, "port"),
        ({"computeType": "aks", "numReplicas": 0}, "numReplicas"),
    ],
)
def test_deployment_config_errors_name_field_and_file(data: dict, needle: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValidationError) as exc:
        parse(DeploymentConfig, data, "deploymentconfig.json")
    assert exc.value.field == "deployment_config"
    assert "deploymentconfig.json" in exc.value.message and needle in exc.value.message


def test_aks_fields_parse() -> None:
    dc = DeploymentConfig.model_validate(
        {"computeType": "aks", "numReplicas": 3, "containerResourceRequirements": {"cpu": 0.5, "memoryInGB": 1},
         "livenessProbeRequirements": {"periodSeconds": 5}, "autoScaler": {"autoscaleEnabled": False}, "authEnabled": True}
    )
    assert dc.num_replicas == 3 and dc.container_resource_requirements and dc.container_resource_requirements.memory_in_gb == 1


def test_resolve_finds_files_and_names_missing_ones(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "score.py").write_text("def init(): pass\ndef run(d): return d\n")
    (tmp_path / "src" / "env.yml").write_text("dependencies:\n  - numpy=2.3.1\n")
    ic = InferenceConfig.model_validate({"entryScript": "score.py", "sourceDirectory": "src", "condaFile": "env.yml"})
    r = ic.resolve(tmp_path)
    assert r.entry_script == "score.py" and r.conda_file and r.conda_file.endswith("env.yml")
    with pytest.raises(ValidationError) as exc:
        InferenceConfig.model_validate({"entryScript": "nope.py", "sourceDirectory": "src"}).resolve(tmp_path)
    assert exc.value.field == "entryScript" and "nope.py" in exc.value.message
    # enableGpu is carried to the target, which honours it or refuses it at preview (not refused here for every machine).
    assert InferenceConfig.model_validate({"entryScript": "score.py", "sourceDirectory": "src", "enableGpu": True}).resolve(tmp_path).enable_gpu


def test_from_file_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "ic.json"
    p.write_text("{not json")
    with pytest.raises(ValidationError) as exc:
        InferenceConfig.from_file(p)
    assert str(p) in exc.value.message
    p.write_text(json.dumps({"entryScript": "s.py", "entryscript": "x"}))
    with pytest.raises(ValidationError) as exc:
        InferenceConfig.from_file(p)
    assert "entryscript: unknown field" in exc.value.message


MODELS = [{"name": "iris", "version": 2.0, "digest": "sha256:aa", "download": "/x"}]
INF = {"entry_script": "score.py", "extra_dockerfile_steps": "RUN echo extra"}
LOCK = [{"name": "numpy", "version": "2.3.1", "sha256": "a" * 64}]


def test_dockerfile_layers_in_order() -> None:
    text = dockerfile("reg/base@sha256:1", INF, MODELS, LOCK)
    order = [text.index(k) for k in ("FROM reg/base@sha256:1", "requirements.lock", "COPY models/", "COPY app/", "RUN echo extra", "CMD")]
    assert order == sorted(order)
    assert "AZUREML_MODEL_DIR=/var/azureml-app/azureml-models/iris/2 " in text  # float versions print as ints
    assert "--require-hashes" in text


def test_model_dir_single_vs_many() -> None:
    assert model_dir(MODELS).endswith("/iris/2")
    assert model_dir(MODELS * 2) == "/var/azureml-app/azureml-models"


def test_derived_digest_tracks_inputs() -> None:
    base = derived_digest("b", INF, MODELS, "sha256:src", LOCK)
    assert base == derived_digest("b", INF, [{**MODELS[0], "version": 2}], "sha256:src", LOCK)
    assert base != derived_digest("b", INF, MODELS, "sha256:other", LOCK)
    assert base != derived_digest("b2", INF, MODELS, "sha256:src", LOCK)
    assert base != derived_digest("b", INF, MODELS, "sha256:src", [{**LOCK[0], "version": "2.3.2"}])
