"""The local model registry: MLflow's model registry on SQLite, artifacts in the state directory.

No server: the provider talks to ``<mlflow_dir>/mlflow.db`` through ``MlflowClient``.
Files are copied (never linked) into ``<mlflow_dir>/artifacts/<name>/<digest hex>/``
and each MLflow model version's ``source`` is that directory, so a version never
points at the user's working tree. The directory holds one entry, the registered
file or folder under its own name (``<hex>/model/...`` for ``path="model/"``), as
Azure ML stores it; a deployment copies it under ``<name>/<version>/`` unchanged.
Symlinks inside a model folder are followed (their content is what is stored) only
when they stay inside it. Each file keeps its permission bits (created ``0600``,
then set to the source's mode: never loosened); the staging and stored directories
are ``0700``. Versions of one model with the same content
share the directory; it is removed with the last version that uses it.

mldeploy keeps its own metadata as model version tags under ``mldeploy.``:
``mldeploy.digest``, ``mldeploy.size_bytes`` and ``mldeploy.property.<key>``
(MLflow model versions have no separate immutable properties). User tags may not
use that prefix.

Concurrency: every change (and the first creation of the database) runs under an
exclusive ``flock`` on ``<mlflow_dir>/registry.lock``, so several providers in one
``pulumi up`` (or a test next to it) never race SQLite or the artifact directories.
The copy of a large model happens outside the lock.

MLflow is imported lazily (it takes about a second) and its INFO logging, which
would show up in Pulumi's output, is silenced.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shutil
import stat
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import BackendError, NotFound, ValidationError
from ..hashing import tree_digest, tree_files
from . import sqlite_busy
from .protocols import RegisteredModel

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
TAG_PREFIX = "mldeploy."
DIGEST_TAG = "mldeploy.digest"
SIZE_TAG = "mldeploy.size_bytes"
PROPERTY_PREFIX = "mldeploy.property."
_CHUNK = 1024 * 1024


def _quiet_mlflow() -> None:
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _translate(exc: Exception, what: str, field: str = "model_name") -> Exception:
    """An mldeploy error for an MLflow (or database/file system) failure."""
    if (sqlite := sqlite_busy.explain(exc)) is not None:  # locked / read-only / unopenable: one line with the fix
        return BackendError(f"{what}: {sqlite}")
    code = getattr(exc, "error_code", None)
    message = getattr(exc, "message", None) or str(exc)
    if code == "RESOURCE_DOES_NOT_EXIST":
        return NotFound(f"{what}: {message}")
    if code == "INVALID_PARAMETER_VALUE":
        return ValidationError(field, f"the MLflow registry rejected it: {message}")
    return BackendError(f"{what}: MLflow registry failed: {message}")


def _iso(ms: int | None) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _copy_verified(src: Path, dest: Path, expected: str) -> int:
    """Copy a file or directory's files into ``dest``, hashing the bytes as written; returns the size.

    Raises ``ValidationError("path", ...)`` if what was copied does not have the ``expected`` digest
    (the files changed since the program computed it).
    """
    tree = hashlib.sha256()
    total = 0
    for rel, full in tree_files(src):
        target = dest / rel
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        h = hashlib.sha256()
        with open(full, "rb") as fin:
            mode = stat.S_IMODE(os.fstat(fin.fileno()).st_mode)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fout:
                while chunk := fin.read(_CHUNK):
                    h.update(chunk)
                    fout.write(chunk)
                    total += len(chunk)
                os.fchmod(fout.fileno(), mode)
        tree.update(f"{rel}\0{h.hexdigest()}\n".encode())
    got = f"sha256:{tree.hexdigest()}"
    if got != expected:
        raise ValidationError(
            "path",
            f"the files under {str(src)!r} changed while being registered (digest {got}, the program computed {expected}); "
            "run `pulumi up` again",
        )
    return total


class MlflowModelRegistry:
    """``ModelRegistry`` on the embedded MLflow registry. Holds only its directory; a client is made per call."""

    def __init__(self, mlflow_dir: Path) -> None:
        self.mlflow_dir = Path(mlflow_dir)
        self.db_path = self.mlflow_dir / "mlflow.db"
        self.artifacts = self.mlflow_dir / "artifacts"
        self.location = f"sqlite:///{self.db_path}"

    # --- plumbing -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.mlflow_dir.mkdir(parents=True, exist_ok=True)
        with open(self.mlflow_dir / "registry.lock", "a+") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _client(self) -> Any:
        try:
            from mlflow import MlflowClient
        except ImportError as exc:  # pragma: no cover - a broken install
            raise BackendError(f"the local model registry needs mlflow-skinny: {exc}") from exc
        _quiet_mlflow()
        sqlite_busy.install(self.db_path)
        if not self.db_path.exists():
            with self._lock():  # the first client creates the schema; never twice at once
                client = self._call(MlflowClient, "create the MLflow registry", tracking_uri=self.location, registry_uri=self.location)
                self._call(client.search_registered_models, "open the MLflow registry", max_results=1)
                return client
        # MlflowClient opens the database at once (schema check): a locked or read-only one fails here.
        return self._call(MlflowClient, "open the MLflow registry", tracking_uri=self.location, registry_uri=self.location)

    @staticmethod
    def _call(fn: Any, what: str, *args: Any, field: str = "model_name", **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # MlflowException, sqlalchemy and OS errors alike
            if type(exc).__module__.startswith("mldeploy."):
                raise
            raise _translate(exc, what, field) from exc

    def _model(self, mv: Any) -> RegisteredModel:
        tags = dict(mv.tags or {})
        user_tags = {k: v for k, v in tags.items() if not k.startswith(TAG_PREFIX)}
        properties = {k[len(PROPERTY_PREFIX) :]: v for k, v in tags.items() if k.startswith(PROPERTY_PREFIX)}
        source = str(mv.source or "")
        download = Path(source).as_uri() if source.startswith("/") else source
        return RegisteredModel(
            name=mv.name,
            version=int(mv.version),
            model_uri=f"models:/{mv.name}/{int(mv.version)}",
            digest=tags.get(DIGEST_TAG, ""),
            size_bytes=int(tags.get(SIZE_TAG, "0") or 0),
            created_at=_iso(mv.creation_timestamp),
            download=download,
            description=mv.description or "",
            tags=user_tags,
            properties=properties,
        )

    def _staging(self, name: str) -> Path:
        """A fresh private directory to copy a version into before it is renamed into place.

        Named ``.staging-<pid>-<random>``: a copy whose provider was killed leaves one behind,
        and the next copy into (or delete of) the same model removes those of dead processes.
        """
        (self.artifacts / name).mkdir(mode=0o700, parents=True, exist_ok=True)
        _sweep_staging(self.artifacts / name)
        staging = self.artifacts / name / f".staging-{os.getpid()}-{uuid.uuid4().hex}"
        staging.mkdir(mode=0o700)
        return staging

    def _referenced(self, client: Any, name: str, source: str) -> bool:
        versions = self._call(client.search_model_versions, f"list versions of {name}", f"name = '{name}'")
        return any(str(v.source) == source for v in versions)

    # --- ModelRegistry --------------------------------------------------------------------

    def validate_name(self, name: str, field: str = "model_name") -> None:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ValidationError(
                field,
                f"invalid model name {name!r}: use 1-255 letters, digits, '.', '_' or '-', starting with a letter or digit "
                "(no '/', ':' or spaces), e.g. 'mymodel'",
            )

    def create(
        self,
        name: str,
        path: str,
        digest: str,
        description: str,
        tags: dict[str, str],
        properties: dict[str, str],
    ) -> RegisteredModel:
        self.validate_name(name)
        src = Path(path)
        hexdigest = digest.split(":", 1)[-1]
        if not re.fullmatch(r"[0-9a-f]{64}", hexdigest):
            raise ValidationError("digest", f"expected 'sha256:<64 hex digits>', got {digest!r}")
        final = self.artifacts / name / hexdigest
        staging: Path | None = None
        client = self._client()
        try:
            if final.is_dir():
                # Same content already stored for this model: check the source still matches, copy nothing.
                now, size = tree_digest(src)
                if now != digest:
                    raise ValidationError(
                        "path", f"the files under {path!r} changed since the program computed {digest} (now {now}); run `pulumi up` again"
                    )
            else:
                staging = self._staging(name)
                size = _copy_verified(src, staging, digest)
            all_tags = {
                **{str(k): str(v) for k, v in tags.items()},
                DIGEST_TAG: digest,
                SIZE_TAG: str(size),
                **{PROPERTY_PREFIX + str(k): str(v) for k, v in properties.items()},
            }
            with self._lock():
                if not final.is_dir():
                    if staging is None:  # removed by a concurrent delete since we looked: copy now
                        staging = self._staging(name)
                        size = _copy_verified(src, staging, digest)
                        all_tags[SIZE_TAG] = str(size)
                    os.rename(staging, final)
                    staging = None
                try:
                    client.create_registered_model(name)
                except Exception as exc:
                    if getattr(exc, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                        raise _translate(exc, f"create registered model {name}") from exc
                mv = self._call(
                    client.create_model_version,
                    f"register a version of {name}",
                    name,
                    str(final),
                    tags=all_tags,
                    description=description or None,
                )
            return self._model(mv)
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)

    def get(self, name: str, version: int) -> RegisteredModel:
        client = self._client()
        mv = self._call(client.get_model_version, f"model version {name}:{version}", name, str(version))
        return self._model(mv)

    def update(self, name: str, version: int, description: str, tags: dict[str, str]) -> RegisteredModel:
        client = self._client()
        what = f"update model version {name}:{version}"
        with self._lock():
            mv = self._call(client.get_model_version, what, name, str(version))
            if (mv.description or "") != (description or ""):
                self._call(client.update_model_version, what, name, str(version), description=description or "")
            current = {k: v for k, v in (mv.tags or {}).items() if not k.startswith(TAG_PREFIX)}
            for key in current:
                if key not in tags:
                    self._call(client.delete_model_version_tag, what, name, str(version), key, field="tags")
            for key, value in tags.items():
                if current.get(key) != str(value):
                    self._call(client.set_model_version_tag, what, name, str(version), str(key), str(value), field="tags")
            mv = self._call(client.get_model_version, what, name, str(version))
        return self._model(mv)

    def delete(self, name: str, version: int) -> None:
        client = self._client()
        what = f"delete model version {name}:{version}"
        with self._lock():
            try:
                mv = self._call(client.get_model_version, what, name, str(version))
            except NotFound:
                return
            source = str(mv.source or "")
            try:
                self._call(client.delete_model_version, what, name, str(version))
            except NotFound:
                return
            # Remove the stored files unless another version of this model shares them.
            if source.startswith(str(self.artifacts) + os.sep) and not self._referenced(client, name, source):
                shutil.rmtree(source, ignore_errors=True)
            # An empty registered model goes too (under the lock, so no create can be racing it).
            if not self._call(client.search_model_versions, f"list versions of {name}", f"name = '{name}'"):
                _sweep_staging(self.artifacts / name)
                with contextlib.suppress(NotFound):
                    self._call(client.delete_registered_model, f"delete registered model {name}", name)
                with contextlib.suppress(OSError):
                    (self.artifacts / name).rmdir()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _sweep_staging(model_dir: Path) -> None:
    """Remove the staging directories that providers killed mid-copy left in ``model_dir`` (their pid is gone)."""
    for d in model_dir.glob(".staging-*-*"):
        pid = d.name.split("-")[1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)


__all__ = ["MlflowModelRegistry"]
