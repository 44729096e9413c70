"""Conda environment files, resolved offline into a pinned lock of wheels.

Azure ML solves a deployment's conda file with conda at deployment time.
Here no conda channel is reachable and no image build may use the network,
so the environment is resolved on the host, once, by pip's own resolver for
the base image's Python version and platform, into a lock (name, version,
sha256 of each wheel). The wheels go into the wheelhouse, and the derived
image installs exactly the lock with ``pip install --no-index --require-hashes
--no-deps``.

The lock is resolved together with what the base image already has
(``with_base``): the base's own top-level packages (those pip installed on
request) join the requirements, pinned at the base's versions, unless the conda
file names them (its pin wins); when those pins cannot be met together, they
are relaxed to names only. Base packages the lock does not contain (say, the
dependencies of a newer inference server than the file pins) are uninstalled
(``Lock.remove``), so the image's environment is exactly the lock plus pip's own
tools and ``pip check`` passes in it.

Conda match specs are read as conda reads them:

    pkg            any version
    pkg=1.2        1.2.*  (conda's "=" is a prefix match)
    pkg==1.2       exactly 1.2
    pkg>=1.2,<2    a range
    pkg=1.2=build  1.2.*; the build string is conda's own and is dropped (noted)

Conda names that differ on PyPI are mapped by ``CONDA_TO_PYPI``. Entries
that are conda's own are handled explicitly (``CONDA_ONLY``): ``python`` is
the interpreter pin, checked against the base image; the others are skipped
with a note, shown once, when the lock is resolved. Anything else that PyPI
does not have fails at preview naming the entry; a package index that does not
answer is reported as such.

A lock is cached under the cache directory by the hash of what it was
resolved from, so a no-op preview queries no package index, and by its own
digest (``load_lock``): a deployment's inputs carry only ``Lock.summary()``
(digest, wheel count and the version of each package the file or the base
image names), so a diff shows which package changed and stays short.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import html
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

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


#: pip's own tools: never locked from the base, never uninstalled.
TOOLS = frozenset({"pip", "setuptools", "wheel", "distribute"})


class InstalledDist(BaseModel):
    """A distribution installed in the base image (``pip inspect``)."""

    name: str
    version: str
    requested: bool = False  # installed on request, not as a dependency
    direct: bool = False  # installed from a URL or path: not on the index
    requires: list[str] = []  # its Requires-Dist

    @classmethod
    def from_inspect(cls, report: dict[str, Any]) -> list["InstalledDist"]:
        """The ``installed`` entries of a ``pip inspect`` report."""
        out = []
        for item in report.get("installed") or []:
            meta = item.get("metadata") or {}
            if meta.get("name") and meta.get("version"):
                out.append(
                    cls(
                        name=meta["name"],
                        version=meta["version"],
                        requested=bool(item.get("requested")),
                        direct=bool(item.get("direct_url")),
                        requires=list(meta.get("requires_dist") or []),
                    )
                )
        return out


def _canon(name: str) -> str:
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))


def named(req: Requirements) -> set[str]:
    """The canonical names the requirements name."""
    from packaging.requirements import Requirement

    return {_canon(Requirement(r).name) for r in req.requirements}


def with_base(req: Requirements, base: list[InstalledDist], pinned: bool = True) -> Requirements:
    """``req`` plus the base image's own top-level packages, at the base's versions (``pinned``) or by name only.

    A package the conda file names keeps the file's pin. Packages installed from a
    URL or path are left as they are (no index has them).
    """
    have = named(req)
    extra, origins = [], dict(req.origins)
    for d in sorted(base, key=lambda d: _canon(d.name)):
        n = _canon(d.name)
        if d.direct:  # kept as it is: what it needs must stay installed
            extra += [r for r in d.requires if "extra" not in r.split(";", 1)[-1] or ";" not in r]
            continue
        if not d.requested or n in TOOLS or n in have:
            continue
        extra.append(f"{n}=={d.version}" if pinned else n)
        origins.setdefault(n, f"the base image's {n} {d.version}")
    return req.model_copy(update={"requirements": req.requirements + extra, "origins": origins})


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
    remove: list[str] = []  # base image packages not in the lock, uninstalled before it is installed
    roots: list[str] = []  # canonical names the conda file or the base image named

    def requirements_txt(self) -> str:
        return "".join(f"{w.name}=={w.version} --hash=sha256:{w.sha256}\n" for w in self.wheels)

    def digest(self) -> str:
        text = self.requirements_txt() + "".join(f"remove {n}\n" for n in self.remove)
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    def versions(self) -> dict[str, str]:
        return {_canon(w.name): w.version for w in self.wheels}

    def summary(self) -> dict[str, object]:
        """What a deployment's inputs carry: short, and a pin bump changes one entry of ``packages``."""
        v = self.versions()
        return {
            "digest": self.digest(),
            "python": self.python,
            "wheels": len(self.wheels),
            "packages": {n: v[n] for n in sorted(self.roots) if n in v},
            "removed_from_base": len(self.remove),
        }


def lock_path(cache_dir: Path, digest: str) -> Path:
    return cache_dir / "locks" / "by-digest" / f"{digest.removeprefix('sha256:')}.json"


def load_lock(cache_dir: Path, digest: str) -> Lock | None:
    """The lock with this digest, as resolved earlier on this machine (``resolve`` stores each one), or None."""
    path = lock_path(cache_dir, digest)
    return Lock.model_validate_json(path.read_text()) if path.exists() else None


def changes(old: Lock | None, new: Lock) -> list[str]:
    """Package by package, what changed between two locks: ``numpy 2.3.1 -> 2.3.2``, ``+ six 1.17.0``, ``- zipp 4.1.2``."""
    if old is None:
        return []
    a, b = old.versions(), new.versions()
    out = [f"{n} {a[n]} -> {b[n]}" for n in sorted(a.keys() & b.keys()) if a[n] != b[n]]
    out += [f"+ {n} {b[n]}" for n in sorted(b.keys() - a.keys())]
    out += [f"- {n} {a[n]}" for n in sorted(a.keys() - b.keys())]
    return out


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


def resolve(
    req: Requirements, python: str, cache_dir: Path, wheelhouse: Path, progress: object = None, base: list[InstalledDist] | None = None
) -> Lock:
    """The pinned set for ``req`` on the target Python, from the cache or from pip's resolver; wheels land in the wheelhouse.

    With ``base`` (the base image's installed packages), the lock is resolved
    together with the base's own packages and says which base packages to remove
    (module docstring). The file's notes are shown only when a lock is resolved,
    that is once per change, not on every preview.
    """
    say = progress if callable(progress) else (lambda m: None)
    candidates = [with_base(req, base, pinned=True), with_base(req, base, pinned=False)] if base else [req]
    lock: Lock | None = None
    for full in candidates:
        hit = cached_lock(full, python, cache_dir)
        if hit is not None and all((wheelhouse / w.filename).exists() for w in hit.wheels):
            lock = hit
            break
    if lock is None:
        for note in req.notes:
            say(note)
        for i, full in enumerate(candidates):
            try:
                lock = _resolve(full, python, say)
                break
            except ValidationError as exc:
                if i + 1 == len(candidates) or "conflict" not in exc.message:
                    raise
                say("the file's pins and the base image's package versions conflict; resolving again with the base packages unpinned")
        assert lock is not None
        _download(lock, python, wheelhouse, say)
        _write_whole(cache_dir / "locks" / f"{lock_key(full, python)}.json", lock.model_dump_json(indent=2))
    # What the file and the base named, and the base packages the lock replaces, follow from the inputs.
    lock = lock.model_copy(update={"roots": sorted(named(full))})
    if base:
        keep = set(lock.versions())
        lock = lock.model_copy(update={"remove": sorted({_canon(d.name) for d in base if not d.direct} - keep - TOOLS)})
    by_digest = lock_path(cache_dir, lock.digest())
    if not by_digest.exists():
        _write_whole(by_digest, lock.model_dump_json(indent=2))
    return lock


def _write_whole(path: Path, text: str) -> None:
    """Write ``path`` through a file of this process's own, renamed over it: a concurrent reader (another stack
    resolving the same file) sees the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _resolve(req: Requirements, python: str, say: Callable[[str], None]) -> Lock:
    say(f"resolving {len(req.requirements)} requirements for Python {python} with pip")
    with tempfile.TemporaryDirectory(prefix="mldeploy-resolve-") as tmp:
        report = Path(tmp) / "report.json"
        cmd = [*_pip(), "install", "--dry-run", "--quiet", "--ignore-installed", "--target", f"{tmp}/t", "--report", str(report)]
        cmd += ["--retries", "1", "--timeout", "15"] + _target_args(python) + req.requirements
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
    return Lock(python=".".join(python.split(".")[:2]), platform="linux_x86_64", wheels=wheels)


def _download(lock: Lock, python: str, wheelhouse: Path, say: object) -> None:
    missing = [w for w in lock.wheels if not (wheelhouse / w.filename).exists()]
    if not missing:
        return
    if callable(say):
        say(f"downloading {len(missing)} wheels into the wheelhouse")
    # Downloaded beside the wheelhouse, then renamed into it: a wheel another provider sees there is whole
    # (a stack resolving the same lock at the same time would otherwise build with a half-written wheel).
    wheelhouse.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".mldeploy-lock-", dir=wheelhouse) as tmp:
        reqs = Path(tmp) / "lock.txt"
        reqs.write_text("".join(f"{w.name}=={w.version} --hash=sha256:{w.sha256}\n" for w in missing))
        got = Path(tmp) / "wheels"
        cmd = [*_pip(), "download", "--quiet", "--no-deps", "--require-hashes", "-d", str(got), "-r", str(reqs)] + _target_args(python)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BackendError(f"downloading wheels into {wheelhouse}: {proc.stderr.strip()[-800:]}")
        for wheel in got.iterdir():
            os.replace(wheel, wheelhouse / wheel.name)


INDEX = "index.html"


def index_wheelhouse(wheelhouse: Path, need: Iterable[str] = ()) -> bool:
    """Make the wheelhouse's ``index.html`` list every wheel in it, unless it already lists each of ``need``.

    Image builds run ``pip install --no-index --find-links $WHEELHOUSE_URL`` against
    the wheelhouse container (busybox httpd, which lists no directory), so pip sees
    only the wheels this page names: a wheel a lock downloaded after ``make setup``
    must be added before a build installs it. Writers take ``.index.lock`` and
    replace the page atomically, so concurrent providers never drop each other's
    wheels. Returns whether the page was rewritten. ``need`` empty: always rewrite.
    """
    page = wheelhouse / INDEX
    want = list(need)
    if want and page.exists():
        text = page.read_text()
        if all(f'href="{html.escape(f)}"' in text for f in want):
            return False
    with open(wheelhouse / ".index.lock", "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        names = sorted(p.name for p in wheelhouse.glob("*.whl"))
        body = "".join(f'<a href="{html.escape(n)}">{html.escape(n)}</a><br>\n' for n in names)
        tmp = wheelhouse / f".{INDEX}.{os.getpid()}"
        tmp.write_text(f"<html><body>\n{body}</body></html>\n")
        tmp.replace(page)
    return True


_UNREACHABLE = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Connection refused|Max retries exceeded|"
    r"Temporary failure in name resolution|Name or service not known|ConnectTimeout|ProxyError|Could not fetch URL"
)
_HOST = re.compile(r"(?:HTTPS?Connection(?:Pool)?\(host='(?P<host>[^']+)', port=(?P<port>\d+)\)|Could not fetch URL (?P<url>\S+?):)")


def _index_unreachable(stderr: str) -> str | None:
    """The index pip could not reach, when its output says so (it then also says no version matches)."""
    if not _UNREACHABLE.search(stderr):
        return None
    m = _HOST.search(stderr)
    if not m:
        return "the package index"
    return m.group("url") or f"{m.group('host')}:{m.group('port')}"


def _resolution_error(stderr: str, req: Requirements, python: str) -> Exception:
    from packaging.utils import canonicalize_name

    index = _index_unreachable(stderr)
    if index:
        return ValidationError(
            "inference_config.condaFile",
            f"cannot resolve the environment: the package index {index} did not answer (pip: "
            f"{_UNREACHABLE.search(stderr).group(0)}). Check the network and pip's index settings "  # type: ignore[union-attr]
            "(PIP_INDEX_URL, pip.conf); locks already resolved are reused without the index.",
        )
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
