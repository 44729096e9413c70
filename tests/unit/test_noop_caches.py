"""What the no-op path caches or asks cheaply: the program's context digest, and a local image's id over the engine's socket."""

from __future__ import annotations

import json
import os
import socketserver
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import mldeploy.resources.base_image as bi
import pytest
from mldeploy.backends.docker_engine import local_image_id
from mldeploy.context import context_digest
from mldeploy.errors import BackendError


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLDEPLOY_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(bi, "resolve_parent", lambda ref: "sha256:" + "a" * 64)
    d = tmp_path / "ctx"
    d.mkdir()
    (d / "Dockerfile").write_text("FROM example/base:1\nCOPY app.py /app.py\n")
    (d / "app.py").write_text("print('v1')\n")
    (d / ".dockerignore").write_text("ignored.txt\n")
    (d / "ignored.txt").write_text("x\n")
    return d


def _uncached(d: Path) -> str:
    args = bi.effective_build_args((d / "Dockerfile").read_text(), None, bi.Settings.from_env().wheelhouse_url)
    return context_digest(str(d), None, args, [("example/base:1", "sha256:" + "a" * 64)])


def test_context_digest_cache_gives_the_uncached_digest_and_sees_edits(ctx: Path) -> None:
    first = bi.compute_context_digest(str(ctx), None, None)
    assert first == _uncached(ctx)
    cache = bi.Settings.from_env().cache_dir / "context-digests.json"
    assert list(json.loads(cache.read_text()).values()) == [first]
    assert bi.compute_context_digest(str(ctx), None, None) == first  # a hit

    (ctx / "app.py").write_text("print('v2')\n")
    st = (ctx / "app.py").stat()
    os.utime(ctx / "app.py", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    second = bi.compute_context_digest(str(ctx), None, None)
    assert second != first and second == _uncached(ctx)

    os.chmod(ctx / "app.py", 0o755)  # modes are part of the digest
    third = bi.compute_context_digest(str(ctx), None, None)
    assert third not in (first, second) and third == _uncached(ctx)

    (ctx / "ignored.txt").write_text("changed, but .dockerignore'd\n")  # a miss, same digest
    assert bi.compute_context_digest(str(ctx), None, None) == third


def test_context_digest_cache_keys_on_the_parent(ctx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = bi.compute_context_digest(str(ctx), None, None)
    monkeypatch.setattr(bi, "resolve_parent", lambda ref: "sha256:" + "b" * 64)
    assert bi.compute_context_digest(str(ctx), None, None) != a


class _Engine(BaseHTTPRequestHandler):
    images: ClassVar[dict[str, str]] = {"/images/127.0.0.1:5000/team/base:v1/json": "sha256:" + "c" * 64}

    containers: ClassVar[list[dict[str, object]]] = [
        {"Id": "c1" * 32, "Names": ["/mldeploy-iris-abc123"], "State": "running", "Image": "127.0.0.1:5000/mldeploy/iris@sha256:" + "d" * 64,
         "Labels": {"mldeploy.service": "iris", "mldeploy.port": "8890", "mldeploy.stack": "dev"}},
    ]  # fmt: skip

    def do_GET(self) -> None:
        if self.path.startswith("/containers/json?"):
            from urllib.parse import parse_qs, urlsplit

            query = parse_qs(urlsplit(self.path).query)
            want = json.loads(query["filters"][0])["label"]
            found = [c for c in self.containers if all(w in {f"{k}={v}" for k, v in c["Labels"].items()} for w in want)]  # type: ignore[attr-defined]
            body, code = json.dumps(found).encode(), 200
        elif self.path in self.images:
            body, code = json.dumps({"Id": self.images[self.path]}).encode(), 200
        elif self.path.startswith("/images/broken"):
            body, code = b'{"message": "boom"}', 500
        else:
            body, code = b'{"message": "No such image"}', 404
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    sock = tmp_path / "docker.sock"
    server = socketserver.UnixStreamServer(str(sock), _Engine)
    server.get_request = lambda: (server.socket.accept()[0], ("local", 0))  # type: ignore[method-assign]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
    yield sock
    server.shutdown()
    server.server_close()


def test_local_image_id_over_the_socket(engine: Path) -> None:
    assert local_image_id("127.0.0.1:5000/team/base:v1") == "sha256:" + "c" * 64
    assert local_image_id("127.0.0.1:5000/team/missing:v1") is None
    with pytest.raises(BackendError, match="answered 500"):
        local_image_id("broken:1")


def test_local_image_id_names_an_unreachable_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'nothing.sock'}")
    t0 = time.monotonic()
    with pytest.raises(BackendError, match="cannot reach Docker Engine"):
        local_image_id("any:1")
    assert time.monotonic() - t0 < 5


def test_containers_are_listed_over_the_socket_without_the_docker_sdk(engine: Path) -> None:
    """Every preview of a local deployment asks who runs its service and its port: one request each, no Docker SDK loaded."""
    import subprocess
    import sys

    code = (
        "import sys; from mldeploy.backends import docker_runtime as rt\n"
        "mine = rt.find('iris'); owner = rt.owner_of_port(8890)\n"
        "assert [c.name for c in mine] == ['mldeploy-iris-abc123'] and mine[0].status == 'running', mine\n"
        "assert owner is not None and owner.labels['mldeploy.stack'] == 'dev' and rt.owner_of_port(8891) is None\n"
        "assert rt.find('other') == []\n"
        "assert 'docker' not in sys.modules, 'the Docker SDK was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "DOCKER_HOST": f"unix://{engine}"})
    assert proc.returncode == 0, proc.stderr


def test_the_context_size_guard_is_remembered_until_the_context_changes(ctx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """check() and the program both guard the context's size; an unchanged context is not walked through the SDK again."""
    from mldeploy.paths import Policy

    walked: list[str] = []
    real = bi.context_files
    monkeypatch.setattr(bi, "context_files", lambda c, d=None: walked.append(str(c)) or real(c, d))
    policy = Policy.current({"allowed_roots": [str(ctx)]})
    bi.contained_context(str(ctx), None, policy)
    bi.contained_context(str(ctx), None, policy)
    assert len(walked) == 1
    (ctx / "big.bin").write_bytes(b"x" * 2048)
    small = Policy(policy.roots, max_bytes=1024, max_files=policy.max_files)  # another policy: guarded again, and refused
    with pytest.raises(bi.ValidationError, match="context"):
        bi.contained_context(str(ctx), None, small)
    assert len(walked) == 2
    bi.contained_context(str(ctx), None, policy)  # the context changed since it passed: walked again
    assert len(walked) == 3
