"""Containment of user paths (mldeploy.paths) and the Azure ML model layout, on fixture folders.

Each case builds a small project under tmp_path with symlinks in and out, ``..`` and absolute
paths, and checks that the input is accepted, or refused with an error naming the input and the
offending path. The autouse fixture of tests/unit/conftest.py allows pytest's tmp directory as a
root; these tests replace that with exactly the project they build.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from mldeploy import paths
from mldeploy.backends.mlflow_registry import MlflowModelRegistry
from mldeploy.config import InferenceConfig
from mldeploy.derived_image import dockerfile, model_dir, write_context
from mldeploy.errors import ValidationError
from mldeploy.hashing import tree_digest, tree_files
from mldeploy.paths import Policy, contain, walk
from mldeploy.resources.base_image import contained_context
from mldeploy.resources.model_version import ModelVersionProvider


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory as the cwd (as pulumi runs the program and the provider), and outside it a secret."""
    proj = tmp_path / "proj"
    proj.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "shadow").write_text("root:secret\n")
    os.chmod(outside / "shadow", 0o640)
    monkeypatch.delenv(paths.ENV_ROOTS, raising=False)
    monkeypatch.delenv(paths.ENV_MAX_GB, raising=False)
    monkeypatch.delenv(paths.ENV_MAX_FILES, raising=False)
    monkeypatch.setenv("MLDEPLOY_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(proj)
    return proj


def _model(proj: Path) -> Path:
    m = proj / "model"
    (m / "sub").mkdir(parents=True)
    (m / "weights.bin").write_bytes(b"w" * 10)
    (m / "sub" / "conf.json").write_text("{}")
    return m


# -- contain: (setup, given path, accepted?, words the error must hold) ---------------------------
def _link(src: Path, target: Path) -> Path:
    src.parent.mkdir(parents=True, exist_ok=True)
    src.symlink_to(target)
    return src


CONTAIN_CASES: list[tuple[str, Callable[[Path], str], bool, list[str]]] = [
    ("relative inside", lambda p: (_model(p), "model")[1], True, []),
    ("dot-dot inside", lambda p: (_model(p), "model/sub/../sub")[1], True, []),
    ("dot-dot out", lambda p: "../outside/shadow", False, ["'../outside/shadow'", "outside/shadow'", "outside the project", "allowedRoots"]),
    ("absolute out", lambda p: "/etc/passwd", False, ["'/etc/passwd'", "outside the project"]),
    ("link to a file out", lambda p: str(_link(p / "model.pkl", p.parent / "outside" / "shadow")), False, ["symlink", "outside/shadow", "model.pkl"]),
    ("link to a dir out", lambda p: str(_link(p / "model", p.parent / "outside")), False, ["symlink", "/outside'"]),
    ("link inside", lambda p: (_model(p), str(_link(p / "current", p / "model")))[1], True, []),
    ("missing (reported by the caller)", lambda p: "nope/", True, []),
]


@pytest.mark.parametrize(("case", "setup", "ok", "words"), CONTAIN_CASES, ids=[c[0] for c in CONTAIN_CASES])
def test_contain(project: Path, case: str, setup: Callable[[Path], str], ok: bool, words: list[str]) -> None:
    given = setup(project)
    policy = Policy.current()
    if ok:
        assert paths.is_inside(contain(given, "path", policy), project)
        return
    with pytest.raises(ValidationError) as exc:
        contain(given, "path", policy, what="the model path")
    assert exc.value.field == "path"
    for w in words:
        assert w in exc.value.message, (w, exc.value.message)


def test_allowed_roots_from_env_and_from_the_policy_input(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outside = project.parent / "outside"
    with pytest.raises(ValidationError):
        contain(outside / "shadow", "path", Policy.current())
    assert contain(outside / "shadow", "path", Policy.current({"allowed_roots": [str(outside)]})) == outside / "shadow"
    monkeypatch.setenv(paths.ENV_ROOTS, f"/nonexistent{os.pathsep}{outside}")
    assert contain(outside / "shadow", "path", Policy.current()) == outside / "shadow"


# -- walk inside a model folder: (setup, accepted?, words) ------------------------------------------
WALK_CASES: list[tuple[str, Callable[[Path], None], bool, list[str]]] = [
    ("plain", lambda m: None, True, []),
    ("link to a file inside: followed", lambda m: _link(m / "alias.bin", m / "weights.bin") and None, True, []),
    ("link to a dir inside: followed", lambda m: _link(m / "again", m / "sub") and None, True, []),
    ("link to a file outside the folder (inside the project)", lambda m: (m.parent / "x.txt").write_text("x") and _link(m / "x", m.parent / "x.txt") and None, False, ["symlink", "/model/x'", "x.txt", "outside the folder"]),
    ("link to /etc/shadow-like", lambda m: _link(m / "sub" / "s", m.parent.parent / "outside" / "shadow") and None, False, ["/model/sub/s'", "outside/shadow"]),
    ("dangling link", lambda m: _link(m / "gone", m / "nothing") and None, False, ["dangling", "/model/gone'"]),
    ("loop", lambda m: _link(m / "sub" / "up", m) and None, False, ["loops", "/model/sub/up'"]),
]


@pytest.mark.parametrize(("case", "setup", "ok", "words"), WALK_CASES, ids=[c[0] for c in WALK_CASES])
def test_model_folder_links(project: Path, case: str, setup: Callable[[Path], None], ok: bool, words: list[str]) -> None:
    m = _model(project)
    setup(m)
    if ok:
        names = [rel for rel, _ in tree_files(m)]
        assert names[0].startswith("model/") and all(n.startswith("model/") for n in names)
        return
    with pytest.raises(ValidationError) as exc:
        tree_digest(m)
    assert exc.value.field == "path"
    for w in words:
        assert w in exc.value.message, (w, exc.value.message)


def test_followed_links_are_registered_by_their_content(project: Path) -> None:
    m = _model(project)
    _link(m / "alias.bin", m / "weights.bin")
    _link(m / "again", m / "sub")
    names = [rel for rel, _ in tree_files(m)]
    assert names == ["model/again/conf.json", "model/alias.bin", "model/sub/conf.json", "model/weights.bin"]
    assert tree_digest(m)[1] == 2 * 10 + 2 * 2


@pytest.mark.parametrize(
    ("limits", "words"),
    [({"max_files": 2}, ["more than 2 files", "mldeploy:maxTreeFiles"]), ({"max_gb": 5 / paths.GIB}, ["GiB", "mldeploy:maxTreeGB"])],
)
def test_size_guard_names_the_override(project: Path, limits: dict[str, float], words: list[str]) -> None:
    m = _model(project)
    (m / "more.bin").write_bytes(b"m")
    with pytest.raises(ValidationError) as exc:
        tree_digest(m, limits=Policy.current(limits))
    for w in words:
        assert w in exc.value.message


def test_size_guard_defaults_and_env(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = Policy.current()
    assert (p.max_bytes, p.max_files) == (20 * paths.GIB, 100_000)
    monkeypatch.setenv(paths.ENV_MAX_FILES, "7")
    monkeypatch.setenv(paths.ENV_MAX_GB, "0.5")
    p = Policy.current()
    assert (p.max_bytes, p.max_files) == (paths.GIB // 2, 7)
    assert Policy.current({"max_files": 9}).max_files == 9  # the stack config (path_policy input) wins


def test_walk_stops_early_on_a_huge_tree(project: Path) -> None:
    big = project / "big"
    big.mkdir()
    for i in range(50):
        (big / f"f{i}").write_bytes(b"")
    with pytest.raises(ValidationError) as exc:
        walk(big, "sourceDirectory", Policy.current({"max_files": 10}))
    assert "11 files" in exc.value.message  # stopped at the first file over the limit


# -- the inference config's paths -----------------------------------------------------------------
@pytest.fixture
def app(project: Path) -> Path:
    src = project / "src"
    src.mkdir()
    (src / "score.py").write_text("def init(): pass\ndef run(d): return d\n")
    (src / "env.yml").write_text("dependencies:\n  - numpy=2.3.1\n")
    return project


IC_CASES: list[tuple[str, dict[str, object], Callable[[Path], None], str, list[str]]] = [
    ("sourceDirectory ../..", {"sourceDirectory": "../.."}, lambda p: None, "sourceDirectory", ["'../..'", "outside the project"]),
    ("entryScript to /etc/passwd", {"entryScript": "../" * 12 + "etc/passwd"}, lambda p: None, "entryScript", ["etc/passwd", "'/etc/passwd'", "outside the project"]),
    ("entryScript ../../../../etc/passwd", {"entryScript": "../../../../etc/passwd"}, lambda p: None, "entryScript", ["../../../../etc/passwd", "outside"]),
    ("entryScript outside sourceDirectory", {"entryScript": "../other.py"}, lambda p: (p / "other.py").write_text("") and None, "entryScript", ["outside sourceDirectory"]),
    ("condaFile absolute", {"condaFile": "/etc/passwd"}, lambda p: None, "condaFile", ["/etc/passwd", "outside the project"]),
    ("condaFile a link out", {"condaFile": "env2.yml"}, lambda p: _link(p / "src" / "env2.yml", p.parent / "outside" / "shadow") and None, "condaFile", ["symlink", "outside/shadow"]),
    ("extraDockerfileSteps out", {"extraDockerfileSteps": "../../outside/shadow"}, lambda p: None, "extraDockerfileSteps", ["outside the project"]),
    ("a link out inside sourceDirectory", {}, lambda p: _link(p / "src" / "creds", p.parent / "outside" / "shadow") and None, "sourceDirectory", ["symlink", "/src/creds'", "outside/shadow"]),
    ("sourceDirectory a link out", {"sourceDirectory": "code"}, lambda p: _link(p / "code", p.parent / "outside") and None, "sourceDirectory", ["symlink", "/outside'"]),
]


@pytest.mark.parametrize(("case", "over", "setup", "field", "words"), IC_CASES, ids=[c[0] for c in IC_CASES])
def test_inference_config_paths_are_contained(
    app: Path, case: str, over: dict[str, object], setup: Callable[[Path], None], field: str, words: list[str]
) -> None:
    setup(app)
    ic = InferenceConfig.model_validate({"entryScript": "score.py", "sourceDirectory": "src", **over})
    with pytest.raises(ValidationError) as exc:
        ic.resolve(app, Policy.current())
    assert exc.value.field == field, exc.value
    for w in words:
        assert w in exc.value.message, (w, exc.value.message)


def test_inference_config_inside_the_project_resolves(app: Path) -> None:
    r = InferenceConfig.model_validate({"entryScript": "score.py", "sourceDirectory": "src", "condaFile": "env.yml"}).resolve(app, Policy.current())
    assert r.source_dir == str(app / "src") and r.conda_file == str(app / "src" / "env.yml")


def test_inference_config_file_itself_is_contained(app: Path) -> None:
    (app.parent / "outside" / "ic.json").write_text('{"entryScript": "score.py"}')
    with pytest.raises(ValidationError) as exc:
        InferenceConfig.from_file(app.parent / "outside" / "ic.json", Policy.current())
    assert exc.value.field == "inference_config" and "outside the project" in exc.value.message


# -- a BaseImage's context and Dockerfile ---------------------------------------------------------
def test_build_context_and_dockerfile_are_contained(project: Path) -> None:
    ctx = project / "base"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    policy = Policy.current()
    contained_context(str(ctx), "Dockerfile", policy)
    with pytest.raises(ValidationError) as exc:
        contained_context(str(ctx), "../../outside/shadow", policy)
    assert exc.value.field == "dockerfile" and "outside the project" in exc.value.message
    _link(project / "ctx2", project.parent / "outside")
    with pytest.raises(ValidationError) as exc:
        contained_context(str(project / "ctx2"), "Dockerfile", policy)
    assert exc.value.field == "context" and "symlink" in exc.value.message
    for i in range(5):
        (ctx / f"f{i}").write_text("x")
    with pytest.raises(ValidationError) as exc:
        contained_context(str(ctx), "Dockerfile", Policy.current({"max_files": 3}))
    assert exc.value.field == "context" and "mldeploy:maxTreeFiles" in exc.value.message


# -- the provider's check: a link to a secret fails before anything is read -----------------------
def test_model_version_check_refuses_a_link_out_and_reads_nothing(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = _model(project)
    _link(m / "shadow", project.parent / "outside" / "shadow")
    read: list[str] = []
    real_open = open

    def spy(file, *a, **k):  # type: ignore[no-untyped-def]
        read.append(str(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr("builtins.open", spy)
    res = ModelVersionProvider().check({}, {"model_name": "m", "path": str(m), "digest": None})
    monkeypatch.undo()
    assert [f.property for f in res.failures] == ["path"]
    assert "outside/shadow" in res.failures[0].reason and "/model/shadow'" in res.failures[0].reason
    assert not any("outside" in r for r in read)


# -- modes: the artifact store and the image context keep them ------------------------------------
def test_modes_are_kept_in_the_artifact_store_and_the_build_context(project: Path, tmp_path: Path) -> None:
    m = _model(project)
    os.chmod(m / "weights.bin", 0o640)
    os.chmod(m / "sub" / "conf.json", 0o600)
    (m / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(m / "run.sh", 0o750)
    store = MlflowModelRegistry(tmp_path / "mlflow")
    digest, _ = tree_digest(m)
    stored = Path(store.create("modes", str(m), digest, "", {}, {}).download.removeprefix("file://"))
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert (mode(stored / "model" / "weights.bin"), mode(stored / "model" / "sub" / "conf.json"), mode(stored / "model" / "run.sh")) == (0o640, 0o600, 0o750)
    assert mode(stored) & 0o077 == 0  # the stored directory is private
    src = project / "src"
    src.mkdir()
    (src / "score.py").write_text("")
    os.chmod(src / "score.py", 0o600)
    ctx = write_context(
        tmp_path / "ctx", "base@sha256:1", {"source_dir": str(src), "entry_script": "score.py"},
        [{"name": "modes", "version": 1, "digest": digest, "download": f"file://{stored}"}], [],
    )
    assert mode(ctx / "models" / "modes" / "1" / "model" / "weights.bin") == 0o640
    assert mode(ctx / "models" / "modes" / "1" / "model" / "sub" / "conf.json") == 0o600
    assert mode(ctx / "app" / "score.py") == 0o600


# -- the Azure ML layout ------------------------------------------------------------------------
def _register(store: MlflowModelRegistry, name: str, path: Path) -> dict[str, object]:
    digest, _ = tree_digest(path)
    mv = store.create(name, str(path), digest, "", {}, {})
    return {"name": name, "version": mv.version, "digest": digest, "download": mv.download}


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_layout_one_folder_one_file_and_several_models(project: Path, tmp_path: Path) -> None:
    """As "Advanced entry script authoring" (v1) and "Specify model to deploy for use in online endpoint" (v2) say:
    a folder keeps its name under <name>/<version>, a file its basename; AZUREML_MODEL_DIR is <name>/<version>
    for one model and the models' root for several."""
    folder = project / "model"
    folder.mkdir()
    (folder / "sklearn_regression_model.pkl").write_bytes(b"pkl")
    single = project / "outputs"
    single.mkdir()
    (single / "sample_m1.pkl").write_bytes(b"m1")
    src = project / "src"
    src.mkdir()
    (src / "score.py").write_text("")
    store = MlflowModelRegistry(tmp_path / "mlflow")
    reg = _register(store, "sklearn-model", folder)
    one = _register(store, "m1", single / "sample_m1.pkl")
    inf = {"source_dir": str(src), "entry_script": "score.py"}

    ctx = write_context(tmp_path / "a", "b@sha256:1", inf, [reg], [])
    assert _files(ctx / "models") == ["sklearn-model/1/model/sklearn_regression_model.pkl"]
    # The sample's own join: os.path.join(os.getenv("AZUREML_MODEL_DIR"), "model/sklearn_regression_model.pkl")
    assert model_dir([reg]) == "/var/azureml-app/azureml-models/sklearn-model/1"
    assert "AZUREML_MODEL_DIR=/var/azureml-app/azureml-models/sklearn-model/1 " in dockerfile("b", inf, [reg], [])
    assert "AML_APP_ROOT=/var/azureml-app " in dockerfile("b", inf, [reg], [])  # v1 Model.get_model_path looks there

    ctx = write_context(tmp_path / "b", "b@sha256:1", inf, [one], [])
    assert _files(ctx / "models") == ["m1/1/sample_m1.pkl"]

    ctx = write_context(tmp_path / "c", "b@sha256:1", inf, [reg, one], [])
    assert _files(ctx / "models") == ["m1/1/sample_m1.pkl", "sklearn-model/1/model/sklearn_regression_model.pkl"]
    assert model_dir([reg, one]) == "/var/azureml-app/azureml-models"
    # v1's Model.get_model_path(name) needs exactly one entry in azureml-models/<name>/<version>/
    for m in ("m1/1", "sklearn-model/1"):
        assert len(os.listdir(ctx / "models" / m)) == 1


def test_model_version_create_checks_again_when_the_path_became_a_link_out(project: Path) -> None:
    """Between preview and up the folder is swapped for a link out of the project: create refuses it, registers nothing."""
    m = _model(project)
    provider = ModelVersionProvider()
    res = provider.check({}, {"model_name": "swapped", "path": str(m), "digest": None})
    assert res.failures == []
    os.rename(m, project / "old")
    m.symlink_to(project.parent / "outside", target_is_directory=True)
    with pytest.raises(ValidationError) as exc:
        provider.create(res.inputs)
    assert exc.value.field == "path" and "outside" in exc.value.message
    assert not (project.parent / "home" / "mlflow" / "artifacts" / "swapped").exists()
