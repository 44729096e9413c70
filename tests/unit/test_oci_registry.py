"""OciRegistry's writes on the local registry, against a fake registry of the test's own."""

from __future__ import annotations

import fcntl
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from mldeploy.backends.oci_registry import OciRegistry


class _Registry(BaseHTTPRequestHandler):
    """Answers DELETE 202, noting whether a garbage collection could have started meanwhile (run/gc.lock free)."""

    lock: ClassVar[Path]
    gc_could_run: ClassVar[list[bool]] = []

    def log_message(self, *a: Any) -> None:
        pass

    def do_DELETE(self) -> None:
        with open(self.lock, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what registry_gc.collect_garbage takes
                self.gc_could_run.append(True)
                fcntl.flock(f, fcntl.LOCK_UN)
            except BlockingIOError:
                self.gc_could_run.append(False)
        self.send_response(202)
        self.end_headers()


@pytest.mark.parametrize("local", [True, False], ids=["local registry", "another registry"])
def test_a_manifest_delete_on_the_local_registry_holds_off_garbage_collection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local: bool
) -> None:
    """Garbage collection refuses every write (503) while it runs: another stack's collection must not fail a delete."""
    srv = HTTPServer(("127.0.0.1", 0), _Registry)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    address = f"127.0.0.1:{srv.server_port}"
    monkeypatch.setenv("MLDEPLOY_HOME", str(tmp_path))
    monkeypatch.setenv("MLDEPLOY_REGISTRY", address if local else "127.0.0.1:1")
    run = tmp_path / "registry" / "run"
    run.mkdir(parents=True)
    _Registry.lock, _Registry.gc_could_run = run / "gc.lock", []
    try:
        OciRegistry(address, "u", "p").delete_manifest("a/b", "sha256:" + "c" * 64)
    finally:
        srv.shutdown()
    assert _Registry.gc_could_run == [not local]
