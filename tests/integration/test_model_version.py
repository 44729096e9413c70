"""ModelVersion through the real engine, checked against the real MLflow registry (the same SQLite db)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from mldeploy.hashing import tree_digest
from mldeploy.settings import Settings

from .harness import Project

PROGRAM = """
import pulumi
from mldeploy.resources.model_version import ModelVersion

mv = ModelVersion(
    "model",
    model_name={name!r},
    path={path!r},
    description="iris classifier",
    tags={tags!r},
    properties={{"framework": "sklearn"}},
    opts=pulumi.ResourceOptions(retain_on_delete={retain!r}),
)
for key in ("version", "model_uri", "digest", "size_bytes", "created_at", "download", "tags"):
    pulumi.export(key, getattr(mv, key))
pulumi.export("id", mv.id)
"""


def client(settings: Settings):  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient

    uri = f"sqlite:///{settings.mlflow_dir / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def versions(settings: Settings, name: str) -> dict[int, dict[str, str]]:
    """The versions MLflow has of the model, with their user tags."""
    found = client(settings).search_model_versions(f"name = '{name}'")
    return {int(v.version): {k: val for k, val in v.tags.items() if not k.startswith("mldeploy.")} for v in found}


def local_path(download: str) -> Path:
    assert download.startswith("file://"), download
    return Path(download.removeprefix("file://"))


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    (d / "conf").mkdir(parents=True)
    (d / "model.pkl").write_bytes(b"weights-v1" * 1000)
    (d / "conf" / "params.json").write_text('{"C": 1.0}')
    return d


def write(project: Project, name: str, path: Path, tags: dict[str, str], retain: bool = False) -> None:
    project.write(PROGRAM.format(name=name, path=str(path), tags=tags, retain=retain))


def test_model_version_lifecycle(project: Project, settings: Settings, model_dir: Path) -> None:
    name = f"it-{uuid.uuid4().hex[:8]}"
    write(project, name, model_dir, {"stage": "dev"})

    # Register v1: the files are copied into the registry's artifact store.
    project.up()
    outs = project.outputs()
    assert outs["version"] == 1 and outs["id"] == f"{name}:1" and outs["model_uri"] == f"models:/{name}/1"
    assert outs["size_bytes"] == 10_000 + len('{"C": 1.0}')
    v1_digest, v1_files = outs["digest"], local_path(outs["download"])
    assert v1_digest.startswith("sha256:")
    # Stored as Azure ML stores it: the registered folder under its own name.
    assert v1_files.is_relative_to(settings.mlflow_dir) and (v1_files / "model" / "conf" / "params.json").read_text() == '{"C": 1.0}'
    assert versions(settings, name) == {1: {"stage": "dev"}}

    # Nothing changed: no new version, nothing to do.
    again = project.up()
    assert "2 unchanged" in again.output, again.output
    assert project.ops() == {}
    assert versions(settings, name) == {1: {"stage": "dev"}}

    # Edit a file: the preview shows the digest change; up registers v2 and removes v1.
    (model_dir / "model.pkl").write_bytes(b"weights-v2" * 1000)
    preview = project.preview()
    v2_digest = tree_digest(model_dir)[0]
    assert re.search(rf'~ digest\s*: "{v1_digest}" => "{v2_digest}"', preview.output), preview.output
    assert project.ops() == {"model": "replace"}
    project.up()
    outs = project.outputs()
    assert outs["version"] == 2 and outs["digest"] == v2_digest
    assert versions(settings, name) == {2: {"stage": "dev"}}
    assert not v1_files.exists(), "v1's stored files outlived it"
    assert (local_path(outs["download"]) / "model" / "model.pkl").read_bytes() == b"weights-v2" * 1000

    # Edit tags: updated in place on the same version.
    write(project, name, model_dir, {"stage": "prod", "owner": "ml"})
    assert project.ops() == {"model": "update"}
    project.up()
    assert project.outputs()["version"] == 2
    assert versions(settings, name) == {2: {"stage": "prod", "owner": "ml"}}

    # Deleted outside Pulumi: refresh notices, up registers it again.
    client(settings).delete_model_version(name, "2")
    project.refresh()
    assert project.ops() == {"model": "create"}
    project.up()
    outs = project.outputs()
    assert versions(settings, name) == {outs["version"]: {"stage": "prod", "owner": "ml"}}
    assert (local_path(outs["download"]) / "model" / "model.pkl").read_bytes() == b"weights-v2" * 1000

    # Destroy removes it (and the now empty registered model).
    project.destroy()
    assert versions(settings, name) == {}
    assert not (settings.mlflow_dir / "artifacts" / name).exists()


def test_bad_input_fails_at_preview_naming_it(project: Project, settings: Settings, tmp_path: Path) -> None:
    name = f"it-{uuid.uuid4().hex[:8]}"
    write(project, name, tmp_path / "missing-model", {})
    res = project.preview(check=False)
    assert res.returncode != 0
    assert "path" in res.output and "does not exist" in res.output, res.output

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "w.bin").write_bytes(b"w")
    write(project, "bad/name", tmp_path / "m", {})
    res = project.up(check=False)
    assert res.returncode != 0
    assert "model_name" in res.output and "invalid model name" in res.output, res.output
    assert versions(settings, name) == {}


def test_retain_on_delete_keeps_the_version(project: Project, settings: Settings, model_dir: Path) -> None:
    name = f"it-{uuid.uuid4().hex[:8]}"
    write(project, name, model_dir, {}, retain=True)
    project.up()
    project.destroy()
    try:
        assert versions(settings, name) == {1: {}}
    finally:
        from mldeploy.backends.select import model_registry

        model_registry("local").delete(name, 1)
    assert versions(settings, name) == {}
