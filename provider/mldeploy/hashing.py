"""Content digests of model files and directories, cached so a preview does not re-read them.

``file_digest(path)``: the sha256 hex digest of one file's bytes (no prefix).

``tree_digest(path)``: ``("sha256:<hex>", total_size_bytes)`` for a file or a
directory. The exact scheme, stable across machines (absolute paths, order of
listing, mtimes and permissions never enter it):

- a registered folder keeps its own name, as Azure ML keeps it
  (``Model.register(model_path="model/")`` serves ``$AZUREML_MODEL_DIR/model/...``):
  every regular file below it is named ``<folder name>/<path inside>`` in POSIX
  form (``model/sub/weights.bin``), the folder name being the last component of
  the path as given (``os.path.basename(os.path.abspath(path))``, so a link
  named ``model`` keeps the name ``model``);
- a single file: one entry named by its basename;
- ``keep_name=False`` (a source directory, whose contents are what is shipped)
  names the files relative to the directory itself;
- symlinks inside the folder are followed when they stay inside it (their
  content is what is registered); one that leaves it, a dangling one or a loop
  is refused by name (``mldeploy.paths.walk``);
- entries are sorted by their name's UTF-8 bytes, and the digest is sha256
  over, for each entry in order, the line
  ``<relative posix path>\\0<sha256 hex of the content>\\n`` (UTF-8).

So the same content under the same names gives the same digest in any two
places, and renaming the folder, or moving a file inside it, changes it.

Cache: per file, keyed by (absolute resolved path, size, mtime_ns), in a
SQLite database at ``Settings.from_env().cache_dir / "digests.sqlite"``.
SQLite serialises writers itself, so two processes (two providers in one
``pulumi up``, or a preview and a test) may use it at once; a cache that cannot
be opened or written is skipped (the file is then simply hashed), never an error.
A file whose size or mtime changed is re-read; a rewrite within the same
nanosecond and same size is the accepted limit of this scheme.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
from pathlib import Path

from .errors import ValidationError
from .paths import GIB, Ignore, Policy, walk
from .settings import Settings

_CHUNK = 1024 * 1024
_SCHEMA = "CREATE TABLE IF NOT EXISTS digests (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL)"


def _cache_path() -> Path:
    return Settings.from_env().cache_dir / "digests.sqlite"


_local = threading.local()  # one open connection per thread and cache path (a provider serves calls on 4 threads)


def _connect() -> sqlite3.Connection | None:
    """This thread's connection to the cache (opening one costs ~2 ms, a lookup ~0.05 ms: 50 models, 50 lookups)."""
    try:
        path = _cache_path()
        held = getattr(_local, "conn", None)
        if held is not None and held[0] == path:
            return held[1]  # type: ignore[no-any-return]
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute(_SCHEMA)
        if held is not None:
            with contextlib.suppress(sqlite3.Error):
                held[1].close()
        _local.conn = (path, conn)
        return conn
    except (OSError, sqlite3.Error):
        return None


def _lookup(conn: sqlite3.Connection | None, key: str, size: int, mtime_ns: int) -> str | None:
    if conn is None:
        return None
    try:
        row = conn.execute("SELECT size, mtime_ns, sha256 FROM digests WHERE path = ?", (key,)).fetchone()
    except sqlite3.Error:
        return None
    if row and row[0] == size and row[1] == mtime_ns:
        return str(row[2])
    return None


def _store(conn: sqlite3.Connection | None, key: str, size: int, mtime_ns: int, digest: str) -> None:
    if conn is None:
        return
    with contextlib.suppress(sqlite3.Error):
        conn.execute(
            "INSERT OR REPLACE INTO digests (path, size, mtime_ns, sha256) VALUES (?, ?, ?, ?)",
            (key, size, mtime_ns, digest),
        )


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _cached_file_digest(conn: sqlite3.Connection | None, path: Path) -> tuple[str, int]:
    resolved = path.resolve()
    st = resolved.stat()
    key = str(resolved)
    cached = _lookup(conn, key, st.st_size, st.st_mtime_ns)
    if cached is not None:
        return cached, st.st_size
    digest = _hash_file(resolved)
    # Store under the stat taken *before* reading: a file changed while being read
    # gets a new mtime, so the next call re-reads it rather than trusting this entry.
    _store(conn, key, st.st_size, st.st_mtime_ns, digest)
    return digest, st.st_size


def file_digest(path: Path) -> str:
    """The sha256 hex digest of a file's content, cached by (absolute path, size, mtime_ns)."""
    return _cached_file_digest(_connect(), Path(path))[0]


def _entries(path: Path, field: str, keep_name: bool, limits: Policy | None, ignore: Ignore | None) -> list[tuple[str, Path]]:
    given = Path(os.path.abspath(os.fspath(path)))
    name = given.name
    root = given.resolve()
    if root.is_file():
        if limits is not None and root.stat().st_size > limits.max_bytes:
            raise ValidationError(field, f"{str(path)!r} is larger than {limits.max_bytes / GIB:g} GiB; raise `mldeploy:maxTreeGB` if it is right")
        return [(name, root)]
    if not root.is_dir():
        raise ValidationError(field, f"{str(path)!r} does not exist (expected a model file or directory)")
    prefix = f"{name}/" if keep_name else ""
    return [(prefix + rel, full) for rel, full, _size in walk(given, field, limits, ignore)]


def tree_files(
    path: Path | str,
    field: str = "path",
    *,
    keep_name: bool = True,
    limits: Policy | None = None,
    ignore: Ignore | None = None,
) -> list[tuple[str, Path]]:
    """The (relative posix name, resolved file) pairs that ``tree_digest`` hashes, in digest order."""
    return _entries(Path(path), field, keep_name, limits, ignore)


def tree_digest(
    path: Path | str,
    field: str = "path",
    *,
    keep_name: bool = True,
    limits: Policy | None = None,
    ignore: Ignore | None = None,
) -> tuple[str, int]:
    """``("sha256:<hex>", total bytes)`` of a file or directory (scheme in the module docstring).

    Raises ``ValidationError(field, ...)`` for a missing path, a directory with no files, a symlink
    leaving the folder, or a tree over the size guard of ``limits`` (no guard when ``None``; the
    providers pass ``mldeploy.paths.Policy.current(...)``, 20 GiB / 100,000 files by default).
    """
    root = Path(path)
    entries = _entries(root, field, keep_name, limits, ignore)
    if not entries:
        raise ValidationError(field, f"directory {str(root)!r} contains no files; a model version needs at least one")
    h = hashlib.sha256()
    total = 0
    conn = _connect()
    for rel, full in entries:
        digest, size = _cached_file_digest(conn, full)
        total += size
        h.update(f"{rel}\0{digest}\n".encode())
    return f"sha256:{h.hexdigest()}", total


def source_ignore(name: str) -> bool:
    """What a source directory never ships (and so never hashes): byte code, virtualenvs, VCS metadata."""
    return name in ("__pycache__", ".venv", ".git") or name.endswith(".pyc")


__all__ = ["file_digest", "source_ignore", "tree_digest", "tree_files"]
