"""A SQLite database locked by another process: waited out within the busy timeout, else one line naming file and holder."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy
from mldeploy.backends import sqlite_busy


def _hold(db: Path, seconds: float) -> subprocess.Popen[str]:
    code = (
        f"import sqlite3, time; c = sqlite3.connect({str(db)!r}, isolation_level=None); c.execute('BEGIN EXCLUSIVE');"
        f" print('locked', flush=True); time.sleep({seconds}); c.execute('COMMIT')"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def _write(db: Path) -> None:
    engine = sqlalchemy.create_engine(f"sqlite:///{db}")
    try:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("INSERT INTO t VALUES (1)"))
    finally:
        engine.dispose()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "mlflow.db"
    import sqlite3

    sqlite3.connect(path).execute("CREATE TABLE t (x INTEGER)").connection.commit()
    sqlite_busy.install(path)
    return path


def test_a_lock_shorter_than_the_timeout_is_waited_out(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLDEPLOY_SQLITE_BUSY_TIMEOUT", "10")
    holder = _hold(db, 6)  # longer than pysqlite's own 5 s default
    start = time.monotonic()
    _write(db)
    assert time.monotonic() - start >= 5
    holder.wait()


def test_a_longer_lock_fails_in_one_line_naming_the_file_and_the_holder(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLDEPLOY_SQLITE_BUSY_TIMEOUT", "1")
    holder = _hold(db, 5)
    try:
        with pytest.raises(sqlalchemy.exc.OperationalError) as info:
            _write(db)
        err = sqlite_busy.explain(info.value, db)
        assert err is not None
        message = str(err)
        assert "\n" not in message and str(db) in message and f"pid {holder.pid}" in message and "[SQL" not in message
    finally:
        holder.kill()
        holder.wait()


def test_read_only_and_unrelated_errors() -> None:
    ro = sqlalchemy.exc.OperationalError("INSERT ...", {}, Exception("attempt to write a readonly database"))
    err = sqlite_busy.explain(ro, Path("/x/mlflow.db"))
    assert err is not None and "/x/mlflow.db is read-only" in str(err)
    assert sqlite_busy.explain(ValueError("something else"), Path("/x/mlflow.db")) is None
