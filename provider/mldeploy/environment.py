"""Conda environment files, resolved offline into a pinned lock of wheels.

Azure ML solves a deployment's conda file with conda at deployment time.
Here no conda channel is reachable and no image build may use the network,
so the environment is resolved on the host, once, by pip's own resolver for
the base image's Python version and platform, into a lock (name, version,
sha256 of each wheel). The wheels go into the wheelhouse, and the derived
image installs exactly the lock with ``pip install --no-index --require-hashes
--no-deps``.

Conda match specs are read as conda reads them:

    pkg            any version
    pkg=1.2        1.2.*  (conda's "=" is a prefix match)
    pkg==1.2       exactly 1.2
    pkg>=1.2,<2    a range
    pkg=1.2=build  1.2.*; the build string is conda's own and is dropped (noted)

Conda names that differ on PyPI are mapped by ``CONDA_TO_PYPI``. Entries
that are conda's own are handled explicitly (``CONDA_ONLY``): ``python`` is
the interpreter pin, checked against the base image; the others are skipped
with a note shown in the preview. Anything else that PyPI does not have
fails at preview naming the entry.

A lock is cached under the cache directory by the hash of what it was
resolved from, so a no-op preview queries no package index.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from pydantic import BaseModel

from .errors import BackendError, ValidationError

#: conda package name -> PyPI project name, where they differ.
CONDA_TO_PYPI: dict[str, str] = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "py-xgboost": "xgboost",
    "py-xgboost-cpu": "xgboost",
    "py-lightgbm": "lightgbm",
    "matplotlib-base": "matplotlib",
    "msgpack-python": "msgpack",
    "pytables": "tables",
    "tensorflow-cpu": "tensorflow-cpu",
    "opencv": "opencv-python-headless",
    "py-opencv": "opencv-python-headless",
}

#: conda's own packages with no PyPI wheel to install: skipped with a note.
CONDA_ONLY: dict[str, str] = {
    "pip": "pip comes with the base image's Python",
    "cudatoolkit": "CUDA is not installed from wheels here (and this target runs CPU images)",
    "cudnn": "CUDA libraries are not installed from wheels here",
    "mkl": "numpy/scipy wheels bundle their own BLAS",
    "mkl-service": "numpy/scipy wheels bundle their own BLAS",
    "blas": "numpy/scipy wheels bundle their own BLAS",
    "openblas": "numpy/scipy wheels bundle their own BLAS",
    "libgcc-ng": "a system library, part of the base image",
    "libstdcxx-ng": "a system library, part of the base image",
    "_libgcc_mutex": "a conda metapackage",
    "_openmp_mutex": "a conda metapackage",
    "ca-certificates": "a system package, part of the base image",
    "openssl": "a system library, part of the base image",
    "nomkl": "a conda metapackage",
}

#: the inference server, pinned unless the file names a version itself.
INFERENCE_SERVER = "azureml-inference-server-http"
INFERENCE_SERVER_VERSION = "1.5.1"
#: packages that depend on the inference server with their own version range (Azure ML's older samples
#: list ``azureml-defaults``): when the file names one, the server's version is left to it.
BRINGS_INFERENCE_SERVER = ("azureml-defaults",)
#: the platforms the wheels are resolved for (the base images are linux x86_64 glibc).
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "linux_x86_64", "any")

_SPEC = re.compile(r"^\s*(?P<name>[A-Za-z0-9_.\-]+)\s*(?P<rest>.*)$")


class MatchSpec(BaseModel):
    """One conda dependency, as written, with its line."""

    name: str
    version: str | None = None  # PEP 440 specifier, translated from conda's syntax
    build: str | None = None
    raw: str
    line: int


class PipEntry(BaseModel):
    raw: str
    line: int


class CondaEnvironment(BaseModel):
    """A conda environment file: ``name``, ``channels``, ``dependencies`` (with a nested ``pip:``)."""

    path: str
    name: str | None = None
    channels: list[str] = []
    dependencies: list[MatchSpec] = []
    pip: list[PipEntry] = []

    @property
    def python(self) -> MatchSpec | None:
        return next((d for d in self.dependencies if d.name == "python"), None)

    @classmethod
    def from_file(cls, path: str | Path) -> "CondaEnvironment":
        path = Path(path)
        text = path.read_text()
        try:
            root = yaml.compose(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark else ""
            raise ValidationError("condaFile", f"{path}: {where}does not parse as YAML: {getattr(exc, 'problem', exc)}") from exc
        if root is None or not isinstance(root, yaml.MappingNode):
            raise ValidationError("condaFile", f"{path}: expected a mapping with 'name', 'channels' and 'dependencies'")
        env = cls(path=str(path))
        for key, value in root.value:
            k = key.value
            if k == "name":
                env.name = str(value.value)
            elif k == "channels":
                if not isinstance(value, yaml.SequenceNode):
                    raise ValidationError("condaFile", f"{path}: line {value.start_mark.line + 1}: 'channels' must be a list")
                env.channels = [str(v.value) for v in value.value]
            elif k == "dependencies":
                if not isinstance(value, yaml.SequenceNode):
                    raise ValidationError("condaFile", f"{path}: line {value.start_mark.line + 1}: 'dependencies' must be a list")
                for item in value.value:
                    line = item.start_mark.line + 1
                    if isinstance(item, yaml.ScalarNode):
                        env.dependencies.append(parse_match_spec(str(item.value), line, path))
                    elif isinstance(item, yaml.MappingNode) and len(item.value) == 1 and item.value[0][0].value == "pip":
                        entries = item.value[0][1]
                        if not isinstance(entries, yaml.SequenceNode) or not all(isinstance(e, yaml.ScalarNode) for e in entries.value):
                            raise ValidationError("condaFile", f"{path}: line {line}: 'pip:' must be a list of requirement strings")
                        for e in entries.value:
                            env.pip.append(_pip_entry(str(e.value), e.start_mark.line + 1, path))
                    else:
                        raise ValidationError("condaFile", f"{path}: line {line}: unexpected dependency entry; use 'pkg=1.2' or a 'pip:' list")
            elif k in ("prefix", "variables"):
                continue
            else:
                raise ValidationError("condaFile", f"{path}: line {key.start_mark.line + 1}: unknown key {k!r}; expected name, channels, dependencies")
        return env


def parse_match_spec(raw: str, line: int, path: Path | str) -> MatchSpec:
    """Translate a conda match spec into a name and a PEP 440 specifier."""
    m = _SPEC.match(raw)
    if not m:
        raise ValidationError("condaFile", f"{path}: line {line}: {raw!r} is not a conda match spec (e.g. 'numpy=2.3.1')")
    name, rest = m.group("name").lower(), m.group("rest").replace(" ", "")
    if "::" in raw:  # channel::pkg
        raise ValidationError("condaFile", f"{path}: line {line}: {raw!r}: channel-qualified specs are not supported; drop the 'channel::'")
    build = None
    version: str | None
    if not rest:
        version = None
    elif rest.startswith("=") and not rest.startswith("=="):
        parts = rest[1:].split("=")
        if len(parts) > 2 or not parts[0]:
            raise ValidationError("condaFile", f"{path}: line {line}: {raw!r} is not a conda match spec")
        ver = parts[0]
        build = parts[1] if len(parts) == 2 else None
        version = f"=={ver.rstrip('*').rstrip('.')}.*"
    elif rest.startswith(("==", ">=", "<=", ">", "<", "!=", "~=")):
        version = rest
    else:
        raise ValidationError("condaFile", f"{path}: line {line}: {raw!r}: cannot read the version part {rest!r}")
    if version:
        try:
            from packaging.specifiers import SpecifierSet

            SpecifierSet(version)
        except Exception as exc:
            raise ValidationError("condaFile", f"{path}: line {line}: {raw!r}: {exc}") from exc
    return MatchSpec(name=name, version=version, build=build, raw=raw, line=line)


def _pip_entry(raw: str, line: int, path: Path) -> PipEntry:
    try:
        from packaging.requirements import Requirement

        Requirement(raw)
    except Exception as exc:
        raise ValidationError("condaFile", f"{path}: line {line}: pip entry {raw!r} is not a requirement specifier: {exc}") from exc
    return PipEntry(raw=raw, line=line)


class Requirements(BaseModel):
    """What to resolve: PEP 508 requirements, with where each came from, and the notes for the preview."""

    requirements: list[str]
    origins: dict[str, str]  # PyPI name -> "file: line N: entry"
    notes: list[str]
    python_pin: str | None


def to_requirements(env: CondaEnvironment) -> Requirements:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    reqs: list[str] = []
    origins: dict[str, str] = {}
    notes: list[str] = []
    python_pin = None
    for dep in env.dependencies:
        where = f"{env.path}: line {dep.line}: {dep.raw!r}"
        if dep.name == "python":
            python_pin = (dep.version or "").removeprefix("==").removesuffix(".*") or None
            continue
        if dep.name in CONDA_ONLY:
            notes.append(f"skipped {where}: {CONDA_ONLY[dep.name]}")
            continue
        name = CONDA_TO_PYPI.get(dep.name, dep.name)
        if name != dep.name:
            notes.append(f"{where}: conda's {dep.name} is {name} on PyPI")
        if dep.build:
            notes.append(f"{where}: build string {dep.build!r} is conda's own and is ignored")
        reqs.append(f"{name}{dep.version or ''}")
        origins[str(canonicalize_name(name))] = where
    for entry in env.pip:
        reqs.append(entry.raw)
        origins[str(canonicalize_name(Requirement(entry.raw).name))] = f"{env.path}: line {entry.line}: {entry.raw!r}"
    names = {str(canonicalize_name(Requirement(r).name)) for r in reqs}
    bundles = sorted(names.intersection(BRINGS_INFERENCE_SERVER))
    if INFERENCE_SERVER not in names and bundles:
        notes.append(f"{env.path}: {bundles[0]} brings {INFERENCE_SERVER}; its version is left to {bundles[0]}")
    elif INFERENCE_SERVER not in names:
        reqs.append(f"{INFERENCE_SERVER}=={INFERENCE_SERVER_VERSION}")
    return Requirements(requirements=reqs, origins=origins, notes=notes, python_pin=python_pin)


def check_python(req: Requirements, image_python: str, accept_image_python: bool, conda_file: str) -> str | None:
    """Compare the file's python pin with the image's Python (major.minor). Returns a warning, or raises."""
    if not req.python_pin:
        return None
    pin = ".".join(req.python_pin.split(".")[:2])
    have = ".".join(image_python.split(".")[:2])
    if pin == have:
        return None
    message = (
        f"{conda_file} pins python={req.python_pin} but the base image has Python {image_python}; "
        f"change the pin to python={have}, or use a base image with Python {pin}"
    )
    if accept_image_python:
        return f"warning: {message}. accept_image_python is set: using the image's Python {image_python}"
    raise ValidationError("inference_config.condaFile", message + ", or set accept_image_python=True to use the image's Python")


class LockedWheel(BaseModel):
    name: str
    version: str
    sha256: str
    filename: str


class Lock(BaseModel):
    python: str
    platform: str
    wheels: list[LockedWheel]

    def requirements_txt(self) -> str:
        return "".join(f"{w.name}=={w.version} --hash=sha256:{w.sha256}\n" for w in self.wheels)

    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.requirements_txt().encode()).hexdigest()


def _pip() -> list[str]:
    return [sys.executable, "-m", "pip"]


def _target_args(python: str) -> list[str]:
    mm = ".".join(python.split(".")[:2])
    abi = "cp" + mm.replace(".", "")
    args = ["--only-binary=:all:", "--python-version", mm, "--implementation", "cp", "--abi", abi]
    for p in PLATFORMS:
        args += ["--platform", p]
    return args


def lock_key(req: Requirements, python: str) -> str:
    doc = {"requirements": sorted(req.requirements), "python": ".".join(python.split(".")[:2]), "platforms": PLATFORMS}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def cached_lock(req: Requirements, python: str, cache_dir: Path) -> Lock | None:
    path = cache_dir / "locks" / f"{lock_key(req, python)}.json"
    return Lock.model_validate_json(path.read_text()) if path.exists() else None


def resolve(req: Requirements, python: str, cache_dir: Path, wheelhouse: Path, progress: object = None) -> Lock:
    """The pinned set for ``req`` on the target Python, from the cache or from pip's resolver; wheels land in the wheelhouse."""
    hit = cached_lock(req, python, cache_dir)
    if hit is not None and all((wheelhouse / w.filename).exists() for w in hit.wheels):
        return hit
    say = progress if callable(progress) else (lambda m: None)
    say(f"resolving {len(req.requirements)} requirements for Python {python} with pip")
    with tempfile.TemporaryDirectory(prefix="mldeploy-resolve-") as tmp:
        report = Path(tmp) / "report.json"
        cmd = [*_pip(), "install", "--dry-run", "--quiet", "--ignore-installed", "--target", f"{tmp}/t", "--report", str(report)]
        cmd += _target_args(python) + req.requirements
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise _resolution_error(proc.stderr, req, python)
        data = json.loads(report.read_text())
    wheels = []
    for item in data.get("install", []):
        info = item["download_info"]
        sha = (info.get("archive_info") or {}).get("hashes", {}).get("sha256")
        filename = info["url"].rsplit("/", 1)[-1]
        if not sha:
            raise BackendError(f"resolving the environment: pip reported no sha256 for {filename}")
        wheels.append(LockedWheel(name=item["metadata"]["name"], version=item["metadata"]["version"], sha256=sha, filename=filename))
    wheels.sort(key=lambda w: w.name.lower())
    lock = Lock(python=".".join(python.split(".")[:2]), platform="linux_x86_64", wheels=wheels)
    _download(lock, python, wheelhouse, say)
    path = cache_dir / "locks" / f"{lock_key(req, python)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(lock.model_dump_json(indent=2))
    return lock


def _download(lock: Lock, python: str, wheelhouse: Path, say: object) -> None:
    missing = [w for w in lock.wheels if not (wheelhouse / w.filename).exists()]
    if not missing:
        return
    if callable(say):
        say(f"downloading {len(missing)} wheels into the wheelhouse")
    with tempfile.TemporaryDirectory(prefix="mldeploy-lock-") as tmp:
        reqs = Path(tmp) / "lock.txt"
        reqs.write_text("".join(f"{w.name}=={w.version} --hash=sha256:{w.sha256}\n" for w in missing))
        cmd = [*_pip(), "download", "--quiet", "--no-deps", "--require-hashes", "-d", str(wheelhouse), "-r", str(reqs)] + _target_args(python)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BackendError(f"downloading wheels into {wheelhouse}: {proc.stderr.strip()[-800:]}")


def _resolution_error(stderr: str, req: Requirements, python: str) -> Exception:
    from packaging.utils import canonicalize_name

    m = re.search(r"No matching distribution found for ([A-Za-z0-9_.\-\[\]]+)", stderr) or re.search(
        r"Could not find a version that satisfies the requirement ([A-Za-z0-9_.\-\[\]]+)", stderr
    )
    if m:
        name = str(canonicalize_name(re.split(r"[<>=!~\[]", m.group(1))[0]))
        where = req.origins.get(name, f"requirement {m.group(1)!r}")
        return ValidationError(
            "inference_config.condaFile",
            f"{where}: no wheel of {name} matches for Python {python} on linux x86_64 (PyPI). "
            "Check the name (conda names may differ on PyPI) and the version pin.",
        )
    tail = "\n".join(stderr.strip().splitlines()[-8:])
    if "conflict" in stderr.lower() or "ResolutionImpossible" in stderr:
        return ValidationError("inference_config.condaFile", f"the environment's pins conflict for Python {python}:\n{tail}")
    return BackendError(f"resolving the environment for Python {python} with pip failed:\n{tail}")
