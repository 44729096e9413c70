"""Replay of Azure's recorded answers (``recordings/``, see ``recordings/PROVENANCE.md``) at the HTTP boundary.

``Replay`` is the one fake transport of the Azure tests: ``fakes.FakeAzure`` (azure-core clients) and
``fakes.FakeGraph`` (msgraph over httpx) answer from recorded interactions added with ``replay.add(...)``.
A request is matched by method and *path shape*: the recorded path with every resource name replaced by a
wildcard (``/subscriptions/*/resourceGroups/*/providers/Microsoft.MachineLearningServices/workspaces/*/
onlineEndpoints/*``), so a recording made against another subscription answers ours. A request whose path
equals a recorded path (an operation-status URL the SDK took from a recorded ``Azure-AsyncOperation``
header) matches that interaction first. Interactions of one shape answer in recorded order; the last one
repeats. Query strings are not matched (the recorded API versions differ from the installed SDKs'); the
tests assert on what was sent instead.

Two recording formats load: the Azure SDK test proxy's JSON (``Entries``: azure-ai-ml) and vcrpy YAML
(``interactions``: azure-cli). ``example(...)`` reads an azure-rest-api-specs example. Bodies are stored
decoded, so the transport headers ``Content-Encoding``, ``Content-Length`` and ``Transfer-Encoding`` are
not replayed. ``derived(name)`` answers from ``recordings/derived.json``: bodies for cases no public
recording has (a transient 404, a refusal), each with the real answer it was derived from.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

RECORDINGS = Path(__file__).parent / "recordings"
_SKIP_HEADERS = {"content-encoding", "content-length", "transfer-encoding"}
_NAMED = {"subscriptions", "resourcegroups"}


@dataclass
class Interaction:
    method: str
    url: str
    status: int
    headers: dict[str, str]
    body: bytes
    request_body: Any
    source: str
    used: bool = field(default=False, compare=False)

    @property
    def path(self) -> str:
        return unquote(urlsplit(self.url).path)

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def shape(url: str) -> str:
    """The path of ``url`` with resource names as ``*`` (ARM, Graph and blob paths)."""
    parts = urlsplit(url)
    host = parts.netloc.lower()
    segs = [s for s in unquote(parts.path).split("/") if s]
    if host.endswith(".blob.core.windows.net"):
        return "blob:/*" + ("/*" if len(segs) > 1 else "")
    if host.endswith("graph.microsoft.com"):
        out = ["*" if re.fullmatch(r"[0-9a-fA-F-]{36}", s) else re.sub(r"\(.*\)$", "(*)", s) for s in segs]
        return "graph:/" + "/".join(out)
    out, after_provider, i = [], None, 0
    while i < len(segs):
        s = segs[i]
        if after_provider is None and s.lower() in _NAMED and i + 1 < len(segs):
            out += [s.lower(), "*"]
            i += 2
            continue
        if s.lower() == "providers" and i + 1 < len(segs):
            out += ["providers", segs[i + 1].lower()]
            after_provider, i = 0, i + 2
            continue
        if after_provider is not None:
            out.append("*" if after_provider % 2 == 1 else s.lower())
            after_provider += 1
        else:
            out.append(s.lower())
        i += 1
    return f"{host}:/" + "/".join(out)


def _headers(raw: dict[str, Any]) -> dict[str, str]:
    out = {}
    for k, v in (raw or {}).items():
        if k.lower() in _SKIP_HEADERS:
            continue
        out[k] = ", ".join(v) if isinstance(v, list) else str(v)
    return out


def load(rel: str) -> list[Interaction]:
    """The interactions of ``recordings/<rel>``, in recorded order."""
    path = RECORDINGS / rel
    text = path.read_text()
    found: list[Interaction] = []
    if path.suffix == ".json":
        for e in json.loads(text)["Entries"]:
            body = e.get("ResponseBody")
            raw = b"" if body is None else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
            found.append(Interaction(e["RequestMethod"], e["RequestUri"], int(e["StatusCode"]), _headers(e.get("ResponseHeaders")), raw, e.get("RequestBody"), rel))
    else:
        for e in yaml.safe_load(text)["interactions"]:
            req, resp = e["request"], e["response"]
            body = (resp.get("body") or {}).get("string") or ""
            headers = {k: v for k, v in _headers(resp.get("headers")).items()}
            found.append(Interaction(req["method"], req["uri"], int(resp["status"]["code"]), headers, body.encode() if isinstance(body, str) else body, req.get("body"), rel))
    return found


def pick(rel: str, method: str, path_contains: str, status: int | None = None, nth: int = 0) -> Interaction:
    """One recorded interaction: the ``nth`` with ``method`` whose URL contains ``path_contains`` (and ``status``)."""
    hits = [i for i in load(rel) if i.method == method and path_contains in i.url and (status is None or i.status == status)]
    if len(hits) <= nth:
        raise LookupError(f"{rel} has no {method} {path_contains} #{nth}")
    return hits[nth]


def example(rel: str, status: str = "200") -> tuple[int, Any, dict[str, str]]:
    """An azure-rest-api-specs example's answer: (status, body, headers)."""
    doc = json.loads((RECORDINGS / rel).read_text())
    resp = doc["responses"][status]
    return int(status), resp.get("body"), dict(resp.get("headers") or {})


def derived(answer: str, **fill: str) -> tuple[int, Any, dict[str, str]]:
    """A derived answer from ``recordings/derived.json`` with ``{placeholders}`` filled in."""
    entry = json.loads((RECORDINGS / "derived.json").read_text())["answers"][answer]
    text = json.dumps(entry["body"])
    for k, v in fill.items():
        text = text.replace("{" + k + "}", v)
    body = json.loads(text)
    if isinstance(body, str):
        body = body.encode()
    return int(entry["status"]), body, dict(entry.get("headers") or {})


class Replay:
    """Recorded interactions answering by method + path shape (mixed into ``fakes._Base``)."""

    def __init__(self) -> None:
        self.recorded: list[Interaction] = []

    def add(self, *interactions: Interaction) -> "Replay":
        self.recorded.extend(interactions)
        return self

    def answer(self, method: str, url: str) -> tuple[int, bytes, dict[str, str]] | None:
        path, sh = unquote(urlsplit(url).path).lower(), shape(url)
        same = [i for i in self.recorded if i.method == method and i.path.lower() == path]
        hits = same or [i for i in self.recorded if i.method == method and shape(i.url) == sh]
        if not hits:
            return None
        fresh = [i for i in hits if not i.used]
        chosen = fresh[0] if fresh else hits[-1]
        chosen.used = True
        return chosen.status, chosen.body, dict(chosen.headers)
