"""Conda files: match specs, the pip list, the python pin, name mapping, conda-only entries, errors with lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from mldeploy.environment import CondaEnvironment, Lock, LockedWheel, check_python, parse_match_spec, to_requirements
from mldeploy.errors import ValidationError


@pytest.mark.parametrize(
    ("raw", "name", "version", "build"),
    [
        ("numpy", "numpy", None, None),
        ("numpy=2.3.1", "numpy", "==2.3.1.*", None),
        ("numpy=2.3", "numpy", "==2.3.*", None),
        ("numpy=2.3.*", "numpy", "==2.3.*", None),
        ("numpy==2.3.1", "numpy", "==2.3.1", None),
        ("numpy>=1.2,<2", "numpy", ">=1.2,<2", None),
        ("numpy >=1.2", "numpy", ">=1.2", None),
        ("numpy=1.26.4=py311h64a7726_0", "numpy", "==1.26.4.*", "py311h64a7726_0"),
        ("Scikit-Learn=1.7.0", "scikit-learn", "==1.7.0.*", None),
    ],
)
def test_match_specs(raw: str, name: str, version: str | None, build: str | None) -> None:
    spec = parse_match_spec(raw, 3, "env.yml")
    assert (spec.name, spec.version, spec.build) == (name, version, build)


@pytest.mark.parametrize("raw", ["numpy=", "numpy=1=2=3", "conda-forge::numpy=1.2", "numpy~1.2", "numpy>=abc"])
def test_bad_match_specs_name_file_and_line(raw: str) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_match_spec(raw, 7, "env.yml")
    assert "env.yml: line 7" in exc.value.message and raw in exc.value.message


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "infenv.yml"
    p.write_text(text)
    return p


def test_full_file_to_requirements(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "name: e\nchannels: [conda-forge, defaults]\ndependencies:\n  - python=3.11\n  - numpy=2.3.1\n  - pytorch=2.4\n"
        "  - py-xgboost>=2\n  - cudatoolkit=11.8\n  - pip\n  - pip:\n    - joblib==1.5.1\n    - requests[socks]>=2\n",
    )
    env = CondaEnvironment.from_file(p)
    assert env.name == "e" and env.channels == ["conda-forge", "defaults"]
    assert env.python is not None and env.python.line == 4
    req = to_requirements(env)
    assert req.python_pin == "3.11"
    assert req.requirements == [
        "numpy==2.3.1.*",
        "torch==2.4.*",
        "xgboost>=2",
        "joblib==1.5.1",
        "requests[socks]>=2",
        "azureml-inference-server-http==1.5.1",
    ]
    assert any("cudatoolkit" in n and "skipped" in n for n in req.notes)
    assert any("pytorch is torch on PyPI" in n for n in req.notes)
    assert req.origins["torch"].endswith("line 6: 'pytorch=2.4'")


def test_named_inference_server_version_is_honoured(tmp_path: Path) -> None:
    p = _write(tmp_path, "dependencies:\n  - pip:\n    - azureml-inference-server-http==1.4.1\n")
    assert to_requirements(CondaEnvironment.from_file(p)).requirements == ["azureml-inference-server-http==1.4.1"]


def test_azureml_defaults_brings_its_own_inference_server(tmp_path: Path) -> None:
    """Azure's older samples list azureml-defaults, which pins the server to its own range: adding ours would conflict."""
    p = _write(tmp_path, "dependencies:\n  - pip:\n    - azureml-defaults==1.53.0\n    - joblib\n")
    req = to_requirements(CondaEnvironment.from_file(p))
    assert req.requirements == ["azureml-defaults==1.53.0", "joblib"]
    assert any("azureml-defaults brings azureml-inference-server-http" in n for n in req.notes)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("dependencies:\n  - numpy\n   - bad: [\n", "does not parse as YAML"),
        ("dependencies: numpy\n", "line 1: 'dependencies' must be a list"),
        ("name: x\nchanels: [a]\n", "line 2: unknown key 'chanels'"),
        ("dependencies:\n  - pip:\n    - 'not a ===req'\n", "line 3: pip entry"),
        ("dependencies:\n  - {a: 1}\n", "line 2: unexpected dependency entry"),
    ],
)
def test_file_errors_name_file_and_line(tmp_path: Path, text: str, needle: str) -> None:
    p = _write(tmp_path, text)
    with pytest.raises(ValidationError) as exc:
        CondaEnvironment.from_file(p)
    assert str(p) in exc.value.message and needle in exc.value.message


def test_python_pin_against_the_image() -> None:
    env = CondaEnvironment(path="f.yml", dependencies=[parse_match_spec("python=3.9", 2, "f.yml")])
    req = to_requirements(env)
    assert check_python(req, "3.9.18", False, "f.yml") is None
    with pytest.raises(ValidationError) as exc:
        check_python(req, "3.11.2", False, "f.yml")
    assert "f.yml pins python=3.9 but the base image has Python 3.11.2" in exc.value.message
    warning = check_python(req, "3.11.2", True, "f.yml")
    assert warning is not None and warning.startswith("warning:")


def test_lock_requirements_and_digest() -> None:
    lock = Lock(python="3.11", platform="linux_x86_64", wheels=[LockedWheel(name="a", version="1", sha256="0" * 64, filename="a.whl")])
    assert lock.requirements_txt() == f"a==1 --hash=sha256:{'0' * 64}\n"
    other = lock.model_copy(update={"wheels": [LockedWheel(name="a", version="2", sha256="0" * 64, filename="a.whl")]})
    assert lock.digest() != other.digest()


def _tiny_wheel(directory: Path, name: str, version: str) -> str:
    """A minimal valid pure-Python wheel (METADATA, WHEEL, RECORD) for pip to find."""
    import zipfile

    filename = f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(directory / filename, "w") as z:
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "")
    return filename


def test_wheelhouse_index_lists_wheels_a_lock_downloads_later(tmp_path: Path) -> None:
    """pip --find-links on the index page (as image builds read it) finds a wheel downloaded after the page was written."""
    import subprocess
    import sys

    from mldeploy.environment import index_wheelhouse

    house = tmp_path / "wheelhouse"
    house.mkdir()
    _tiny_wheel(house, "mldeploy_tiny_a", "1.0")
    assert index_wheelhouse(house) is True
    late = _tiny_wheel(house, "mldeploy_tiny_b", "2.0")  # what environment._download adds at deploy time

    def pip_finds(name: str) -> bool:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-index", "--no-deps", "-d", str(tmp_path / "out")]
        cmd += ["--find-links", (house / "index.html").as_uri(), name]
        return subprocess.run(cmd, capture_output=True, text=True).returncode == 0

    assert not pip_finds("mldeploy_tiny_b==2.0")  # the stale page: what broke fresh machines' builds
    assert index_wheelhouse(house, [late]) is True
    assert pip_finds("mldeploy_tiny_b==2.0")
    assert index_wheelhouse(house, [late]) is False  # listed already: the page is not rewritten


def test_wheels_enter_the_wheelhouse_only_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock's wheels are downloaded beside the wheelhouse and renamed into it: a stack resolving the same lock at
    the same time never sees (and builds with) a half-written wheel."""
    import hashlib
    import sys

    from mldeploy import environment

    source, house = tmp_path / "source", tmp_path / "wheelhouse"
    source.mkdir()
    house.mkdir()
    filename = _tiny_wheel(source, "mldeploy_tiny_c", "1.0")
    sha = hashlib.sha256((source / filename).read_bytes()).hexdigest()
    # pip, as the provider runs it, but noting which wheels the wheelhouse shows once pip has written them
    seen = tmp_path / "seen.txt"
    wrapper = tmp_path / "pip_wrapper.py"
    wrapper.write_text(
        "import pathlib, runpy, sys\n"
        "sys.argv = ['pip', *sys.argv[1:]]\n"
        "try:\n"
        "    runpy.run_module('pip', run_name='__main__')\n"
        "finally:\n"
        f"    pathlib.Path({str(seen)!r}).write_text(' '.join(p.name for p in pathlib.Path({str(house)!r}).glob('*.whl')))\n"
    )
    monkeypatch.setattr(environment, "_pip", lambda: [sys.executable, str(wrapper)])
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(source))
    lock = Lock(python="3.11", platform="linux_x86_64", wheels=[LockedWheel(name="mldeploy_tiny_c", version="1.0", sha256=sha, filename=filename)])
    environment._download(lock, "3.11", house, None)
    assert seen.read_text() == ""  # pip wrote nothing into the wheelhouse itself
    assert [p.name for p in house.iterdir()] == [filename]  # the wheel, whole; no download directory left
    assert hashlib.sha256((house / filename).read_bytes()).hexdigest() == sha


def test_cached_locks_are_replaced_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock file is written beside its place and renamed over it: another stack reading it meanwhile sees the
    old lock or the new one, never a part (a part would fail its preview with a parse error)."""
    import os

    from mldeploy import environment

    path = tmp_path / "locks" / "k.json"
    path.parent.mkdir()
    path.write_text("old")
    real_replace = os.replace
    seen: list[str] = []

    def replace(src: str, dst: object) -> None:
        seen.append(path.read_text())  # what a reader sees just before the rename
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(environment.os, "replace", replace)
    environment._write_whole(path, '{"new": true}')
    assert seen == ["old"] and path.read_text() == '{"new": true}'
    assert [p.name for p in path.parent.iterdir()] == ["k.json"]
