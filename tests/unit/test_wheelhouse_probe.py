"""The wheelhouse is asked before a build: unreachable or not serving fails in one line naming it."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from mldeploy.backends import wheelhouse_probe
from mldeploy.errors import BackendError


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "wheels").mkdir()
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_serving_wheelhouse_passes_and_a_missing_one_is_named(served: str) -> None:
    wheelhouse_probe.check(f"{served}/wheels/", "building x")
    wheelhouse_probe.check(None, "building x")  # a build without a wheelhouse
    with pytest.raises(BackendError, match=r"wheelhouse .*/nowheels/ answered HTTP 404"):
        wheelhouse_probe.check(f"{served}/nowheels/", "building x")


def test_an_unreachable_wheelhouse_is_named_first() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(BackendError) as info:
        wheelhouse_probe.check(f"http://127.0.0.1:{port}/wheels/", "building the image of iris")
    message = str(info.value)
    assert message.startswith(f"building the image of iris: the wheelhouse http://127.0.0.1:{port}/wheels/ is unreachable")
    assert "\n" not in message
