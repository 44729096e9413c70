"""Fakes at the HTTP boundary: Azure REST answers for azure-core clients, and for Graph (httpx).

``FakeAzure`` is an azure-core ``HttpTransport`` (``RequestsTransport`` with a
``requests`` adapter whose ``send`` answers from routes): everything above the
wire, the SDKs' pipelines, retry and long-running-operation polling included,
runs for real. Routes match a method and a path regex; each route answers its
responses in order (the last one repeats). Every request is recorded.

``FakeGraph`` does the same for msgraph-sdk through ``httpx.MockTransport``.
"""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import requests
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import RequestsTransport
from requests.adapters import BaseAdapter

from .replay import Interaction, Replay


class FakeCredential:
    """A ``TokenCredential`` that hands out a fixed token and records the scopes asked for."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken("fake-token", int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        self.scopes.append(scopes)
        return AccessTokenInfo("fake-token", int(time.time()) + 3600)

    async def __aenter__(self) -> "FakeCredential":
        return self

    async def __aexit__(self, *a: Any) -> None:
        return None

    def close(self) -> None:
        return None


@dataclass
class Recorded:
    method: str
    url: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def api_version(self) -> str | None:
        return (self.query.get("api-version") or [None])[0]


Answer = tuple[int, Any, dict[str, str]] | Callable[["Recorded"], tuple[int, Any, dict[str, str]]]


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    answers: list[Answer]
    host: str | None = None
    hits: int = 0


@dataclass
class _Base:
    routes: list[Route] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    replay: Replay = field(default_factory=Replay)
    sleeps: list[float] = field(default_factory=list)  # what the SDKs' retry/polling asked to wait, not waited

    def play(self, *interactions: Interaction) -> "_Base":
        """Answer with these recorded interactions (matched by method + path shape, see ``replay``)."""
        self.replay.add(*interactions)
        return self

    def on(self, method: str, path: str, *answers: Answer, host: str | None = None) -> "_Base":
        """Answer ``method path`` (a regex matched against the whole path, case-insensitively) with ``answers`` in turn."""
        self.routes.insert(0, Route(method.upper(), re.compile(path + r"$", re.IGNORECASE), list(answers), host))
        return self

    def _answer(self, rec: Recorded, host: str) -> tuple[int, bytes, dict[str, str]]:
        self.requests.append(rec)
        for r in self.routes:
            if r.method == rec.method and r.pattern.match(rec.path) and (r.host is None or r.host == host):
                ans = r.answers[min(r.hits, len(r.answers) - 1)]
                r.hits += 1
                status, body, headers = ans(rec) if callable(ans) else ans
                headers = dict(headers)
                if isinstance(body, (dict, list)):
                    payload = json.dumps(body).encode()
                    headers.setdefault("Content-Type", "application/json; charset=utf-8")
                elif isinstance(body, str):
                    payload = body.encode()
                    headers.setdefault("Content-Type", "text/plain")
                else:
                    payload = body or b""
                headers.setdefault("x-ms-request-id", f"req-{len(self.requests)}")
                return status, payload, headers
        played = self.replay.answer(rec.method, rec.url)
        if played is not None:
            return played
        raise AssertionError(f"unexpected request {rec.method} {rec.url}")

    def calls(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        """Recorded requests, filtered by method and a path regex (searched)."""
        return [
            r for r in self.requests if (method is None or r.method == method) and (path is None or re.search(path, r.path, re.IGNORECASE))
        ]


class _Adapter(BaseAdapter):
    def __init__(self, owner: "FakeAzure") -> None:
        super().__init__()
        self.owner = owner

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        parts = urlsplit(request.url or "")
        body = request.body
        if hasattr(body, "read"):
            body = body.read()  # type: ignore[union-attr]
        elif body is not None and not isinstance(body, (bytes, str)):
            body = b"".join(c if isinstance(c, bytes) else c.encode() for c in body)  # type: ignore[union-attr]
        if isinstance(body, str):
            body = body.encode()
        rec = Recorded(request.method or "", request.url or "", parts.path, parse_qs(parts.query), dict(request.headers), body or b"")
        status, payload, headers = self.owner._answer(rec, parts.netloc)
        resp = requests.Response()
        resp.status_code = status
        resp.headers.update(headers)
        resp.headers.setdefault("Content-Length", str(len(payload)))
        resp.raw = _Raw(payload)
        resp.url = request.url or ""
        resp.request = request
        resp.reason = "fake"
        resp.encoding = "utf-8"
        return resp

    def close(self) -> None:
        pass


class _Raw(io.BytesIO):
    """Enough of urllib3's HTTPResponse for requests and azure-core's streaming."""

    enforce_content_length = True

    def stream(self, chunk_size: int = 4096, decode_content: bool = True) -> Any:
        while chunk := self.read(chunk_size):
            yield chunk

    def release_conn(self) -> None:
        pass


class FakeAzure(_Base):
    """Azure REST (ARM, Azure ML, Blob storage, ACR data plane) at the wire, for azure-core clients."""

    def transport(self) -> RequestsTransport:
        session = requests.Session()
        adapter = _Adapter(self)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return _InstantTransport(self, session=session, session_owner=False)


class _InstantTransport(RequestsTransport):
    """Records the waits azure-core's retry and long-running-operation polling ask for, and returns at once."""

    def __init__(self, owner: "FakeAzure", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._owner = owner

    def sleep(self, duration: float) -> None:
        self._owner.sleeps.append(duration)


class FakeGraph(_Base):
    """Microsoft Graph at the wire, for msgraph-sdk (kiota over httpx)."""

    def handler(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        rec = Recorded(request.method, str(url), url.path, parse_qs(url.query.decode()), dict(request.headers), request.content)
        status, payload, headers = self._answer(rec, url.host)
        return httpx.Response(status, content=payload, headers=headers)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handler))


def arm_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
    return status, {"error": {"code": code, "message": message}}, headers or {}


def graph_error(status: int, code: str, message: str) -> tuple[int, Any, dict[str, str]]:
    return status, {"error": {"code": code, "message": message, "innerError": {"request-id": "r", "date": "2025-01-01T00:00:00"}}}, {}
