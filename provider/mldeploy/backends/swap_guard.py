"""A detached guard over one container swap: a swap cut short by a killed provider converges to exactly one container.

The local target starts a new container beside the serving one on the same
port (SO_REUSEPORT): from the moment it binds, it takes a share of the
requests. If the provider dies then (``kill -9`` of it, or of ``pulumi``, which
the provider's watchdog turns into its own exit), nobody would stop it and
both versions would answer until the next ``up``: the new one unrecorded in
the state. So before the container is created, ``Guard`` writes a journal
(``$MLDEPLOY_HOME/state/swaps/<name>.json``) and starts ``python -m
mldeploy.backends.swap_guard <journal>`` in its own session (it survives the
provider). The provider moves the journal through its phases:

- ``starting``: the new container is starting or waiting for health. If the
  provider dies now, the guard removes the new container: the recorded one
  keeps serving alone, as the state says.
- ``committed``: the new container is healthy and the old ones are being
  stopped. If the provider dies now, the guard stops the old ones: the new
  one serves alone (the state still names the old one; the next ``up``
  redeploys and records it, ``refresh`` reports the drift).
- ``done``: the provider returned; the guard removes the journal and exits.

The guard polls every 0.2 s; it never touches a container of another service or stack.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

POLL_SECONDS = 0.2


def _journal_dir() -> Path:
    from ..settings import Settings

    return Settings.from_env().home / "state" / "swaps"


class Guard:
    """The provider's side: ``with Guard(...) as g: ... g.commit() ...``; leaving the block marks it done."""

    def __init__(self, container: str, service: str, labels: dict[str, str]) -> None:
        self.path = _journal_dir() / f"{container}.json"
        self.data: dict[str, Any] = {"container": container, "service": service, "labels": labels, "pid": os.getpid(), "phase": "starting"}

    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data))
        tmp.replace(self.path)

    def __enter__(self) -> "Guard":
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._write()
        log = (self.path.parent / "guard.log").open("a")
        subprocess.Popen(
            [sys.executable, "-m", "mldeploy.backends.swap_guard", str(self.path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
        log.close()
        return self

    def commit(self) -> None:
        self.data["phase"] = "committed"
        self._write()

    def __exit__(self, *exc: object) -> None:
        self.data["phase"] = "done"
        self._write()


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return not status.split("State:", 1)[1].strip().startswith("Z")


def converge(data: dict[str, Any]) -> str:
    """What the guard does once the provider is gone mid-swap; returns what it did (for its log)."""
    from . import docker_runtime as rt
    from .ownership import same_owner

    if data["phase"] == "starting":
        rt.remove(data["container"], grace=2)
        return f"removed {data['container']}: its provider died before it became healthy"
    if data["phase"] == "committed":
        done = []
        for c in rt.find(data["service"]):
            if c.name != data["container"] and same_owner(c.labels, data["labels"]):
                rt.remove(c.id)
                done.append(c.name)
        return f"kept {data['container']}, removed {done}: its provider died while stopping them"
    return "nothing to do"


def main(journal: str) -> int:
    path = Path(journal)
    while True:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return 0
        if data["phase"] == "done":
            break
        if not _alive(int(data["pid"])):
            print(f"{time.strftime('%H:%M:%S')} {converge(data)}", flush=True)
            break
        time.sleep(POLL_SECONDS)
    with contextlib.suppress(OSError):
        path.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
