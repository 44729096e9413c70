"""SQLite databases held by another process: wait (a busy timeout), then fail in one line naming the file and the holder.

MLflow's SQLAlchemy store sets a 20 s busy timeout on each session and, once
that runs out, logs the whole traceback and raises ``(sqlite3.OperationalError)
database is locked [SQL: ...]`` with the statement and a link. ``install``
sets ``PRAGMA busy_timeout`` (30 s by default, ``MLDEPLOY_SQLITE_BUSY_TIMEOUT``)
on every SQLite connection SQLAlchemy opens (and in place of MLflow's), so a
short lock (a backup, the MLflow UI writing) is waited out. ``explain`` turns
what is left into one line with the cause and the fix: still locked (naming
the processes that have the file open, from ``/proc/*/fd``), read-only, or
not openable.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path

from ..errors import BackendError

_installed: set[str] = set()
_lock = threading.Lock()


def timeout_seconds() -> float:
    try:
        return float(os.environ.get("MLDEPLOY_SQLITE_BUSY_TIMEOUT", "30"))
    except ValueError:
        return 30.0


def _on_connect(dbapi_conn: object, _record: object) -> None:
    if isinstance(dbapi_conn, sqlite3.Connection):
        dbapi_conn.execute(f"PRAGMA busy_timeout = {int(timeout_seconds() * 1000)}")


def _before_execute(_conn: object, _cursor: object, statement: str, parameters: object, _context: object, _many: bool) -> tuple[str, object]:
    """MLflow sets ``PRAGMA busy_timeout = 20000`` on every session it opens: ours replaces it."""
    if statement.lstrip().upper().startswith("PRAGMA BUSY_TIMEOUT"):
        statement = f"PRAGMA busy_timeout = {int(timeout_seconds() * 1000)};"
    return statement, parameters


def install(db_path: Path) -> None:
    """Give every SQLite connection SQLAlchemy opens in this process a busy timeout; remember ``db_path`` for ``explain``."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    with _lock:
        if not _installed:
            event.listen(Engine, "connect", _on_connect)
            event.listen(Engine, "before_cursor_execute", _before_execute, retval=True)
            # MLflow logs the whole traceback of a database error before raising it; mldeploy says it in one line.
            logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
        _installed.add(str(Path(db_path).resolve()))


def holders(db_path: Path) -> list[str]:
    """``pid (command)`` of the other processes with ``db_path`` (or its journal/WAL) open; only those we may inspect."""
    target = str(Path(db_path).resolve())
    names = {target, f"{target}-journal", f"{target}-wal", f"{target}-shm"}
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if any(os.readlink(fd) in names for fd in (proc / "fd").iterdir()):
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                found.append(f"pid {proc.name} ({cmd[:80]})")
        except OSError:
            continue
    return found


def explain(exc: BaseException, db_path: Path | None = None) -> BackendError | None:
    """One-line cause and fix for a SQLite failure inside ``exc`` (or its causes), else None."""
    text = " ".join(str(e) for e in _chain(exc)).lower()
    paths = [Path(db_path)] if db_path else [Path(p) for p in sorted(_installed)]
    where = ", ".join(str(p) for p in paths) or "the SQLite database"
    if "database is locked" in text or "database table is locked" in text:
        held = [h for p in paths for h in holders(p)]
        by = f" by {'; '.join(held)}" if held else " by another process"
        return BackendError(
            f"{where} stayed locked{by} for more than {timeout_seconds():.0f} s (MLDEPLOY_SQLITE_BUSY_TIMEOUT); "
            "let that process finish or stop it, then run the command again"
        )
    if "readonly database" in text or ("read-only" in text and "database" in text):
        return BackendError(f"{where} is read-only for this user: give it back write permission (and its directory), then run the command again")
    if "unable to open database file" in text:
        return BackendError(f"cannot open {where}: check that the file and its directory exist and are writable by this user")
    if "disk i/o error" in text or "database or disk is full" in text:
        return BackendError(f"{where}: the disk failed or is full ({text.split(')')[0].strip('(')}); free space, then run again")
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


__all__ = ["explain", "holders", "install", "timeout_seconds"]
