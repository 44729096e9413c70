"""The provider process notices its engine's death, and every resource operation leaves an intent on disk while it runs.

Engine death. ``pulumi`` starts a dynamic provider as ``pulumi`` ->
``pulumi-resource-pulumi-python`` (a ``sh`` launcher that does not ``exec``) ->
``python -m pulumi.dynamic``. When ``pulumi`` is killed (``kill -9``, a closed
terminal) nothing tells the provider: the launcher stays its parent and the
gRPC server never gets another call, so before this module the process lived
on for 25 minutes holding the MLflow database open. ``start()`` runs a daemon
thread that remembers the engine's pid and start time (``/proc/<pid>/stat``)
and, once that process is gone, runs the registered ``on_engine_death`` hooks and
exits the provider (``os._exit``). Work in flight stops there; what it left is
converged by the guards (``backends/swap_guard.py``) and by the next run.

Intents. ``intent(resource, op)`` writes ``$MLDEPLOY_HOME/state/intents/<pid>-<n>.json``
while an operation runs and removes it when the operation returns or raises.
An intent whose process is gone was interrupted: ``report_interrupted`` (called
by every provider's ``check``, i.e. the next preview/up) prints it once with what
to run, then removes it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

POLL_SECONDS = 0.5
STALE_SECONDS = 30 * 24 * 3600  # an interrupted operation's intent is forgotten after 30 days
RECOVERY = (
    "run `pulumi cancel` (the file backend may answer that no update is in progress), then `pulumi refresh --clear-pending-creates --yes`, then `pulumi up`"
)

_hooks: list[Callable[[], None]] = []
_started = False
_engine: tuple[int, int] | None = None  # (pid, start time) of the engine this provider serves
_lock = threading.Lock()
_counter = itertools.count()


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(comm, ppid, starttime) of a process, or None when it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    rest = raw[raw.rindex(")") + 2 :].split()
    return comm, int(rest[1]), int(rest[19])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def engine_pid(start: int | None = None) -> int | None:
    """The nearest ancestor that is not the provider's launcher (``pulumi-resource-*``, a shell script)."""
    pid = os.getppid() if start is None else start
    for _ in range(4):
        st = _stat(pid)
        if st is None or pid <= 1:
            return None
        if any(Path(arg).name.startswith("pulumi-resource-") for arg in _cmdline(pid).split()[:2]):  # [sh] launcher
            pid = st[1]
            continue
        return pid
    return None


def in_provider() -> bool:
    """True in a dynamic provider process (``python -m pulumi.dynamic``), not in the program or in tests."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return getattr(spec, "name", "") in ("pulumi.dynamic.__main__", "pulumi.dynamic")


def on_engine_death(hook: Callable[[], None]) -> None:
    with _lock:
        _hooks.append(hook)


def start() -> None:
    """Start the engine watchdog once per provider process (no-op elsewhere, or with MLDEPLOY_NO_WATCHDOG set)."""
    global _started, _engine
    with _lock:
        if _started or not in_provider() or os.environ.get("MLDEPLOY_NO_WATCHDOG"):
            return
        _started = True
    pid = engine_pid()
    if pid is None:
        return
    st = _stat(pid)
    if st is None:  # gone between the two reads: nothing to watch (no assert: this runs at import)
        return
    _engine = (pid, st[2])
    threading.Thread(target=_watch, args=(pid, st[2]), name="mldeploy-engine-watchdog", daemon=True).start()


def engine_alive() -> bool:
    """False once the engine this provider serves is gone (True when unknown: not a provider process)."""
    if _engine is None:
        return True
    st = _stat(_engine[0])
    return st is not None and st[2] == _engine[1] and not _zombie(_engine[0])


def _watch(pid: int, starttime: int) -> None:
    while engine_alive():
        time.sleep(POLL_SECONDS)
    for hook in list(_hooks):
        with contextlib.suppress(Exception):
            hook()
    os._exit(3)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].strip().startswith("Z")
    except (OSError, IndexError):
        return True


# -- intents ------------------------------------------------------------------
def _intents_dir() -> Path:
    from .settings import Settings

    return Settings.from_env().home / "state" / "intents"


def alive(pid: int) -> bool:
    return _stat(pid) is not None and not _zombie(pid)


@contextlib.contextmanager
def intent(resource: str, op: str) -> Iterator[None]:
    """Record ``op`` on ``resource`` while it runs; the record outlives only a process that dies mid-operation."""
    start()
    path = _intents_dir() / f"{os.getpid()}-{next(_counter)}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
        path.write_text(json.dumps({"resource": resource, "op": op, "pid": os.getpid(), "started": now}))
    except OSError:
        path = None  # type: ignore[assignment]  # best effort: an unwritable state dir must not fail the operation
    try:
        yield
    finally:
        # Kept when the engine is gone: the operation was cut short (often by a BrokenPipeError on the dead
        # engine's pipe before the watchdog's next look), and the next run reports it.
        if path is not None and engine_alive():
            with contextlib.suppress(OSError):
                path.unlink()


def interrupted(resource: str | None = None) -> list[dict[str, str]]:
    """Intents of processes that are gone (optionally only those of ``resource``); each is returned once, then removed."""
    found = []
    directory = _intents_dir()
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if alive(int(data.get("pid", 0))):
            continue
        if resource is not None and data.get("resource") != resource:
            with contextlib.suppress(OSError):  # a resource that never ran again (destroyed elsewhere) is forgotten
                if time.time() - path.stat().st_mtime > STALE_SECONDS:
                    path.unlink()
            continue
        with contextlib.suppress(OSError):
            path.unlink()
        found.append(data)
    return found


def report_interrupted(resource: str, say: Callable[[str], None]) -> None:
    for data in interrupted(resource):
        say(
            f"the previous run was interrupted while {data['op']} {data['resource']} (provider pid {data['pid']}, started {data['started']}); "
            f"this run converges it: if it fails, {RECOVERY}"
        )


__all__ = ["RECOVERY", "engine_pid", "in_provider", "intent", "interrupted", "on_engine_death", "report_interrupted", "start"]
