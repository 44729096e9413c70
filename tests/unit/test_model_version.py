"""ModelVersion's provider logic against an in-memory ModelRegistry: check, diff, create/read/update/delete, pickling."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path
from typing import Any

import dill
import pytest
from mldeploy.backends import select
from mldeploy.backends.mlflow_registry import MlflowModelRegistry
from mldeploy.backends.protocols import ModelRegistry, RegisteredModel
from mldeploy.errors import BackendError, NotFound, ValidationError
from mldeploy.hashing import tree_digest
from mldeploy.resources.model_version import ModelVersionProvider
from pulumi.runtime import rpc


class FakeRegistry:
    """An in-memory ModelRegistry with the local registry's name rules."""

    location = "memory://"

    def __init__(self) -> None:
        self.versions: dict[tuple[str, int], RegisteredModel] = {}
        self.fail_get: Exception | None = None

    def validate_name(self, name: str, field: str = "model_name") -> None:
        MlflowModelRegistry(Path("/nonexistent")).validate_name(name, field)

    def create(self, name: str, path: str, digest: str, description: str, tags: dict[str, str], properties: dict[str, str]) -> RegisteredModel:
        now, size = tree_digest(path)
        if now != digest:
            raise ValidationError("path", "changed")
        version = 1 + max((v for n, v in self.versions if n == name), default=0)
        m = RegisteredModel(name, version, f"models:/{name}/{version}", digest, size, "2025-01-01T00:00:00Z", f"memory://{name}/{version}", description, dict(tags), dict(properties))
        self.versions[(name, version)] = m
        return m

    def get(self, name: str, version: int) -> RegisteredModel:
        if self.fail_get:
            raise self.fail_get
        try:
            return self.versions[(name, version)]
        except KeyError:
            raise NotFound(f"{name}:{version}") from None

    def update(self, name: str, version: int, description: str, tags: dict[str, str]) -> RegisteredModel:
        m = replace(self.get(name, version), description=description, tags=dict(tags))
        self.versions[(name, version)] = m
        return m

    def delete(self, name: str, version: int) -> None:
        self.versions.pop((name, version), None)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLDEPLOY_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeRegistry:
    reg = FakeRegistry()
    real = select.model_registry

    def choose(registry: str | None, field: str = "registry") -> ModelRegistry:
        real(registry, field)  # unknown registries still fail the same way
        return reg

    monkeypatch.setattr(select, "model_registry", choose)
    return reg


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    (d / "model.pkl").write_bytes(b"weights-v1")
    (d / "meta.json").write_text('{"framework": "sklearn"}')
    return d


def inputs(model_dir: Path, **over: Any) -> dict[str, Any]:
    news = {
        "model_name": "mymodel",
        "path": str(model_dir),
        "digest": tree_digest(model_dir)[0],
        "description": "first",
        "tags": {"stage": "dev"},
        "properties": {"framework": "sklearn"},
        "registry": "local",
    }
    news.update(over)
    return news


def failures(news: dict[str, Any]) -> dict[str, str]:
    res = ModelVersionProvider().check({}, news)
    return dict(f.reason.split(": ", 1) for f in res.failures)  # each reason starts with the input it names


def test_valid_inputs_pass_check_with_defaults_filled(fake: FakeRegistry, model_dir: Path) -> None:
    res = ModelVersionProvider().check({}, {"model_name": "mymodel", "path": str(model_dir), "digest": None})
    assert res.failures == []
    assert res.inputs["registry"] == "local"
    assert res.inputs["digest"] == tree_digest(model_dir)[0]  # filled when the program could not compute it
    assert res.inputs["tags"] == {} and res.inputs["properties"] == {} and res.inputs["description"] == ""


@pytest.mark.parametrize(
    ("over", "field", "words"),
    [
        ({"path": "/nonexistent/model"}, "path", "does not exist"),
        ({"model_name": "my/model"}, "model_name", "invalid model name"),
        ({"model_name": "my model"}, "model_name", "invalid model name"),
        ({"model_name": ""}, "model_name", "invalid model name"),
        ({"registry": "azureml-nowhere"}, "registry", "valid values: 'local'"),
        ({"tags": {"mldeploy.digest": "x"}}, "tags", "reserved"),
        ({"tags": {"n": 1}}, "tags", "strings"),
        ({"properties": ["framework"]}, "properties", "mapping"),
        ({"digest": "md5:abc"}, "digest", "sha256:"),
    ],
)
def test_bad_input_is_a_check_failure_naming_it(fake: FakeRegistry, model_dir: Path, over: dict[str, Any], field: str, words: str) -> None:
    got = failures(inputs(model_dir, **over))
    assert field in got, got
    assert words in got[field]
    assert fake.versions == {}


def test_an_empty_directory_is_a_check_failure(fake: FakeRegistry, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    got = failures({"model_name": "m", "path": str(tmp_path / "empty"), "digest": None})
    assert "no files" in got["path"]


def test_unknown_values_are_left_for_later(fake: FakeRegistry) -> None:
    got = failures({"model_name": rpc.UNKNOWN, "path": rpc.UNKNOWN, "digest": rpc.UNKNOWN, "registry": "local", "tags": rpc.UNKNOWN})
    assert got == {}


def test_diff_replaces_on_content_name_registry_properties_and_updates_description_tags(model_dir: Path) -> None:
    p = ModelVersionProvider()
    olds = {**inputs(model_dir), "version": 1}

    def d(**over: Any):  # type: ignore[no-untyped-def]
        return p.diff("mymodel:1", olds, inputs(model_dir, **over))

    same = d()
    assert same.changes is False and same.replaces == []
    assert d(path="/moved/elsewhere").changes is False  # only content counts
    content = d(digest="sha256:" + "1" * 64)
    assert content.changes is None and content.replaces == ["digest"] and content.delete_before_replace is False
    assert d(model_name="other").replaces == ["model_name"]
    assert d(properties={"framework": "onnx"}).replaces == ["properties"]
    tags = d(tags={"stage": "prod"})
    assert tags.changes is None and tags.replaces == []
    desc = d(description="second")
    assert desc.changes is None and desc.replaces == []
    assert d(digest=rpc.UNKNOWN).replaces == ["digest"]


def test_lifecycle_against_the_fake(fake: FakeRegistry, model_dir: Path) -> None:
    p = ModelVersionProvider()
    news = p.check({}, inputs(model_dir)).inputs
    created = p.create(news)
    assert created.id == "mymodel:1"
    outs = created.outs
    assert outs["version"] == 1 and outs["model_uri"] == "models:/mymodel/1"
    assert outs["digest"] == news["digest"] and outs["size_bytes"] == len(b"weights-v1") + len('{"framework": "sklearn"}')
    assert outs["download"] == "memory://mymodel/1"

    # A replacement: the new version is created first, then the old one deleted.
    (model_dir / "model.pkl").write_bytes(b"weights-v2")
    news2 = p.check(outs, inputs(model_dir)).inputs
    assert p.diff("mymodel:1", outs, news2).replaces == ["digest"]
    v2 = p.create(news2)
    assert v2.id == "mymodel:2"
    p.delete("mymodel:1", outs)
    assert set(fake.versions) == {("mymodel", 2)}

    updated = p.update("mymodel:2", v2.outs, {**news2, "description": "better", "tags": {"stage": "prod"}})
    assert updated.outs["version"] == 2 and updated.outs["tags"] == {"stage": "prod"} and updated.outs["description"] == "better"
    assert fake.versions[("mymodel", 2)].tags == {"stage": "prod"}

    read = p.read("mymodel:2", updated.outs)
    assert read.id == "mymodel:2" and read.outs["tags"] == {"stage": "prod"}

    fake.versions.clear()  # deleted out of band
    gone = p.read("mymodel:2", updated.outs)
    assert gone.id is None and gone.outs == {}
    p.delete("mymodel:2", updated.outs)  # already gone: not an error


def test_read_raises_on_anything_but_a_definite_not_found(fake: FakeRegistry, model_dir: Path) -> None:
    p = ModelVersionProvider()
    created = p.create(p.check({}, inputs(model_dir)).inputs)
    fake.fail_get = BackendError("database is locked")
    with pytest.raises(BackendError):
        p.read(created.id, created.outs)


@pytest.mark.parametrize("dumps,loads", [(pickle.dumps, pickle.loads), (dill.dumps, dill.loads)])
def test_provider_pickles_and_holds_nothing(dumps, loads) -> None:  # type: ignore[no-untyped-def]
    p = ModelVersionProvider()
    assert vars(p) == {}
    again = loads(dumps(p))
    assert isinstance(again, ModelVersionProvider) and vars(again) == {}


def test_dill_by_value_as_pulumi_serializes_it(model_dir: Path) -> None:
    """Pulumi serializes the provider with dill; it must come back usable in a fresh process."""
    import subprocess
    import sys

    blob = dill.dumps(ModelVersionProvider(), protocol=pickle.DEFAULT_PROTOCOL, recurse=True)
    code = "import dill,sys; p=dill.loads(sys.stdin.buffer.read()); print(type(p).__name__, p.diff('m:1', {'digest': 'a'}, {'digest': 'b'}).replaces)"
    out = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, check=True).stdout.decode()
    assert out.strip() == "ModelVersionProvider ['digest']"


def test_mlflow_registry_rejects_bad_names_without_io(tmp_path: Path) -> None:
    reg = select.model_registry("local")
    reg.validate_name("mymodel")
    reg.validate_name("my-model_v2.onnx")
    for bad in ("", "a/b", "a:b", "..", " x", "x" * 256):
        with pytest.raises(ValidationError) as exc:
            reg.validate_name(bad)
        assert exc.value.field == "model_name"
    assert not (tmp_path / "home" / "mlflow" / "mlflow.db").exists()
