"""The pieces that make an interrupted run converge: the engine watchdog, intents, and the swap guard's decisions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from mldeploy import watchdog
from mldeploy.backends import swap_guard
from mldeploy.backends.docker_runtime import Container


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLDEPLOY_HOME", str(tmp_path))
    return tmp_path


def test_engine_pid_skips_the_sh_launcher(tmp_path: Path) -> None:
    # a launcher script named pulumi-resource-* (not exec'ing) -> python: the engine is the launcher's parent (this test).
    code = "from mldeploy import watchdog; print(watchdog.engine_pid())"
    launcher = tmp_path / "pulumi-resource-fake"
    launcher.write_text(f"#!/bin/sh\n{sys.executable} -c '{code}'\ntrue\n")
    launcher.chmod(0o755)
    out = subprocess.run([str(launcher)], capture_output=True, text=True, check=True).stdout
    assert int(out) == os.getpid()


def test_a_provider_exits_when_its_engine_dies(tmp_path: Path) -> None:
    """engine (a sh) -> launcher sh -> python running the watchdog as in `python -m pulumi.dynamic`; kill -9 the engine."""
    marker = tmp_path / "hook-ran"
    prog = tmp_path / "prov.py"
    prog.write_text(
        "import sys, time\n"
        "from mldeploy import watchdog\n"
        "sys.modules['__main__'].__spec__ = type('S', (), {'name': 'pulumi.dynamic.__main__'})()\n"
        f"watchdog.on_engine_death(lambda: open({str(marker)!r}, 'w').write('x'))\n"
        "watchdog.start()\n"
        f"open({str(tmp_path / 'watching')!r}, 'w').write('x')\n"
        "time.sleep(60)\n"
    )
    launcher = tmp_path / "pulumi-resource-fake"
    launcher.write_text(f"#!/bin/sh\n{sys.executable} {prog}\n")
    launcher.chmod(0o755)
    engine = subprocess.Popen(["sh", "-c", f"{launcher}; sleep 60"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (tmp_path / "watching").exists():
        time.sleep(0.1)
    pids = subprocess.run(["pgrep", "-f", str(prog)], capture_output=True, text=True).stdout.split()
    assert pids, "the fake provider did not start"
    engine.kill()
    engine.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(watchdog.alive(int(p)) for p in pids):
        time.sleep(0.1)
    assert not any(watchdog.alive(int(p)) for p in pids), "the provider outlived its engine"
    assert marker.exists()


def test_an_intent_of_a_dead_process_is_reported_once(home: Path) -> None:
    with watchdog.intent("InferenceDeployment a", "updating"):
        assert watchdog.interrupted() == []  # this process is alive: not interrupted
    assert list((home / "state" / "intents").glob("*.json")) == []
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    (home / "state" / "intents" / f"{dead}-0.json").write_text(
        json.dumps({"resource": "InferenceDeployment a", "op": "updating", "pid": int(dead), "started": "t"})
    )
    said: list[str] = []
    watchdog.report_interrupted("InferenceDeployment b", said.append)
    assert said == []
    watchdog.report_interrupted("InferenceDeployment a", said.append)
    assert len(said) == 1 and "interrupted while updating InferenceDeployment a" in said[0] and "pulumi refresh --clear-pending-creates" in said[0]
    watchdog.report_interrupted("InferenceDeployment a", said.append)
    assert len(said) == 1


def _fake_docker(monkeypatch: pytest.MonkeyPatch, containers: list[Container]) -> list[str]:
    from mldeploy.backends import docker_runtime as rt

    removed: list[str] = []
    monkeypatch.setattr(rt, "find", lambda service: [c for c in containers if c.labels.get("mldeploy.service") == service])
    monkeypatch.setattr(rt, "remove", lambda cid, grace=10, progress=None: removed.append(cid))
    return removed


LABELS = {"mldeploy.service": "s", "mldeploy.stack": "dev", "mldeploy.urn": "urn:pulumi:dev::p::t::svc"}


def test_guard_rolls_back_an_unhealthy_swap_and_finishes_a_committed_one(monkeypatch: pytest.MonkeyPatch) -> None:
    other = {**LABELS, "mldeploy.urn": "urn:pulumi:prod::q::t::svc"}
    cs = [Container("1", "old", "running", "i", LABELS), Container("2", "new", "running", "i", LABELS), Container("3", "theirs", "running", "i", other)]
    removed = _fake_docker(monkeypatch, cs)
    data: dict[str, Any] = {"container": "new", "service": "s", "labels": LABELS, "pid": 1, "phase": "starting"}
    swap_guard.converge(data)
    assert removed == ["new"]
    removed.clear()
    swap_guard.converge({**data, "phase": "committed"})
    assert removed == ["1"]  # the old one of this stack; never another stack's


def test_guard_process_acts_when_the_provider_dies_and_leaves_when_done(home: Path, tmp_path: Path) -> None:
    provider = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    journal = home / "state" / "swaps" / "x.json"
    journal.parent.mkdir(parents=True)
    journal.write_text(json.dumps({"container": "x", "service": "s", "labels": LABELS, "pid": provider.pid, "phase": "done"}))
    assert swap_guard.main(str(journal)) == 0 and not journal.exists()
    journal.write_text(json.dumps({"container": "x", "service": "s", "labels": LABELS, "pid": provider.pid, "phase": "bogus"}))
    guard = subprocess.Popen([sys.executable, "-m", "mldeploy.backends.swap_guard", str(journal)], stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    assert guard.poll() is None  # waits while the provider lives
    provider.kill()
    provider.wait()
    out, _ = guard.communicate(timeout=5)
    assert "nothing to do" in out and not journal.exists()


def test_local_read_reports_containers_the_state_does_not_know(monkeypatch: pytest.MonkeyPatch) -> None:
    from mldeploy.backends import docker_runtime as rt
    from mldeploy.backends.local_runtime import LocalRuntime

    other = {**LABELS, "mldeploy.urn": "urn:pulumi:prod::q::t::svc"}
    cs = [Container("1", "recorded", "running", "i", LABELS), Container("2", "stray", "running", "i", LABELS), Container("3", "theirs", "running", "i", other)]
    monkeypatch.setattr(rt, "find", lambda service: cs)
    monkeypatch.setattr(rt, "get", lambda cid: next(c for c in cs if c.id == cid))
    outputs = {"container_id": "1", "service_name": "s", "stack": "dev", "resource_urn": LABELS["mldeploy.urn"]}
    assert LocalRuntime().read("s", outputs).facts == {"unrecorded_containers": ["stray"]}
    cs.pop(1)
    assert LocalRuntime().read("s", outputs).facts == {}


def test_an_intent_outlives_an_operation_cut_short_by_the_engines_death(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stat = watchdog._stat(engine.pid)
    assert stat is not None
    monkeypatch.setattr(watchdog, "_engine", (engine.pid, stat[2]))
    with watchdog.intent("InferenceDeployment a", "updating"):
        pass
    assert list((home / "state" / "intents").glob("*.json")) == []  # engine alive: done, forgotten
    with pytest.raises(BrokenPipeError), watchdog.intent("InferenceDeployment a", "updating"):
        engine.kill()
        engine.wait()
        raise BrokenPipeError  # what writing a progress line to the dead engine's pipe raises
    assert len(list((home / "state" / "intents").glob("*.json"))) == 1
