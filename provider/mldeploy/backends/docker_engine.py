"""Images on the local Docker Engine, through the Docker SDK for Python's low-level API.

``DockerEngine`` implements ``ImageBuilder``:

- ``build``: ``APIClient.build`` on a context directory with ``decode=True``
  on the build network ``make setup`` made (``RUN pip install --find-links
  $WHEELHOUSE_URL`` reaches the wheelhouse on its gateway; the host's
  loopback services are out of reach; ``host`` before that setup). Every event goes
  to a log file; each ``Step N/M : ...`` line becomes one progress line. A
  failure raises ``BuildError`` with the failing step and the last lines.
- ``push``: the SDK's push does not raise when the registry refuses: it
  streams events with an ``error`` key. They are checked here; a refusal of
  the credentials is ``AuthError``, anything else ``BackendError``. The
  manifest digest comes from the final ``aux`` event.
- ``probe``: runs the image for a second with no network and the entrypoint
  replaced by a tiny ``/bin/sh`` script printing ``/etc/os-release``, the
  Python version and the Conda version (one run per fact, without a shell,
  when the image has no ``/bin/sh``).
- ``pip_inspect``: runs ``pip inspect`` in the image (no network): the Python
  distributions it carries, for resolving a derived image's environment
  together with them.
- ``gpu_support``: whether this engine can give a container GPUs: an
  ``nvidia`` runtime among ``docker info``'s Runtimes (requested with
  ``DeviceRequest(count=-1, capabilities=[["gpu"]])``) or CDI GPU devices among
  its DiscoveredDevices (requested by CDI device id); the answer names what was
  checked.

Docker's exceptions are translated into ``mldeploy.errors`` here and only
here (``translate``). Engine API version: Docker 20.10's classic builder
(no BuildKit).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import sys
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import AuthError, BackendError, BuildError, NotFound
from ..settings import Settings
from .protocols import BuiltImage, ProbedFacts

if TYPE_CHECKING:
    import docker
TAIL_LINES = 25
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_AUTH_WORDS = ("unauthorized", "authentication required", "401", "denied", "no basic auth credentials")
_NOT_FOUND_WORDS = ("manifest unknown", "not found", "does not exist", "404")

PROBE_SCRIPT = r"""
cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null
echo "@@mldeploy-python"
for p in python3 python; do
  if command -v "$p" >/dev/null 2>&1; then "$p" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null && break; fi
done
echo "@@mldeploy-conda"
if command -v conda >/dev/null 2>&1; then conda --version 2>&1 | head -1; fi
exit 0
"""


def _default_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _is_auth(text: str) -> bool:
    t = text.lower()
    return any(w in t for w in _AUTH_WORDS)


@contextlib.contextmanager
def translate(action: str) -> Iterator[None]:
    """Turn docker/requests exceptions raised inside into ``mldeploy.errors``, naming ``action``.

    The Docker SDK and requests are imported only when something was raised: a block that asks the
    engine over its socket (``engine_get``) must not load them on the no-op path.
    """
    try:
        yield
    except (BackendError, NotFound, AuthError, BuildError):
        raise
    except Exception as exc:
        import docker.errors
        import requests

        if isinstance(exc, docker.errors.NotFound):  # ImageNotFound too
            raise NotFound(f"{action}: {exc.explanation or exc}") from exc
        if isinstance(exc, docker.errors.APIError):
            text = str(exc.explanation or exc)
            if exc.status_code == 401 or _is_auth(text):
                raise AuthError(f"{action}: the registry refused the credentials: {text}") from exc
            raise BackendError(f"{action}: {text}") from exc
        if isinstance(exc, docker.errors.DockerException):
            raise BackendError(f"{action}: {exc}; is Docker Engine running (make setup)?") from exc
        if isinstance(exc, requests.RequestException):
            raise BackendError(f"{action}: cannot reach Docker Engine: {exc}") from exc
        raise


def client(timeout: int = 900) -> docker.DockerClient:
    """A Docker SDK client from the environment (``DOCKER_HOST``), as ``BackendError`` when unreachable."""
    import docker

    with translate("connecting to Docker Engine"):
        return docker.from_env(timeout=timeout)


def engine_get(path: str, what: str) -> tuple[int, Any] | None:
    """``GET path`` on Docker Engine's unix socket without the Docker SDK: (status, JSON body).

    The no-op path (every preview) asks the engine a few questions; loading the
    Docker SDK for them takes about 0.2 s, one request here takes milliseconds.
    None when ``DOCKER_HOST`` names anything but a unix socket: the caller asks
    through the SDK instead.
    """
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if not host.startswith("unix://"):
        return None
    import http.client
    import json
    import socket

    sock_path = host[len("unix://") :]

    class _Unix(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(self.timeout)
            self.sock.connect(sock_path)

    conn = _Unix("localhost", timeout=60)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
    except OSError as exc:
        raise BackendError(f"{what}: cannot reach Docker Engine at {host}: {exc}; is Docker Engine running (make setup)?") from exc
    finally:
        conn.close()
    if resp.status == 404:
        return 404, None
    if resp.status != 200:
        raise BackendError(f"{what}: Docker Engine answered {resp.status}: {body[:300].decode('utf-8', 'replace')}")
    return 200, json.loads(body)


def local_image_id(ref: str) -> str | None:
    """The id of the local image ``ref``, or None when the engine has none: ``GET /images/<ref>/json``.

    Programs ask this on every preview (what a ``FROM`` resolves to): one request (``engine_get``).
    """
    from urllib.parse import quote

    got = engine_get(f"/images/{quote(ref, safe='/:@')}/json", f"inspecting image {ref}")
    if got is None:
        try:
            return DockerEngine().inspect(ref).id
        except NotFound:
            return None
    status, body = got
    return None if status == 404 else str(body["Id"])


def list_containers(label: str, all: bool = False) -> list[dict[str, Any]] | None:
    """``GET /containers/json`` filtered by one ``label`` (``key=value``): the engine's list entries, or None without a unix socket."""
    import json
    from urllib.parse import quote

    query = f"filters={quote(json.dumps({'label': [label]}))}" + ("&all=1" if all else "")
    got = engine_get(f"/containers/json?{query}", f"listing containers labelled {label}")
    return None if got is None else list(got[1] or [])


def split_ref(ref: str) -> tuple[str, str | None]:
    """``name:tag`` -> (name, tag); ``name@digest`` -> (name, digest); bare name -> (name, None)."""
    if "@" in ref:
        name, digest = ref.split("@", 1)
        return name, digest
    slash, colon = ref.rfind("/"), ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1 :]
    return ref, None


def _built(info: dict[str, Any]) -> BuiltImage:
    return BuiltImage(
        id=str(info["Id"]),
        size_bytes=int(info.get("Size") or 0),
        tags=tuple(info.get("RepoTags") or ()),
        repo_digests=tuple(info.get("RepoDigests") or ()),
    )


class DockerEngine:
    """``ImageBuilder`` on Docker Engine. Cheap to create; make one per provider call."""

    def __init__(self, progress: Callable[[str], None] | None = None, docker_client: docker.DockerClient | None = None) -> None:
        self._client = docker_client
        self.progress = progress or _default_progress

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = client()
        return self._client

    @property
    def api(self) -> docker.APIClient:
        return self.client.api

    # -- build -------------------------------------------------------------
    def build(
        self,
        context_dir: str,
        dockerfile: str,
        tag: str,
        build_args: dict[str, str],
        log_path: str,
        platform: str | None = None,
        nocache: bool = False,
        label: str = "build",
        labels: dict[str, str] | None = None,
    ) -> BuiltImage:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        step: str | None = None
        image_id: str | None = None
        error: str | None = None
        started = dt.datetime.now()
        with open(log_path, "w", encoding="utf-8") as log:
            log.write(f"# build of {tag} from {context_dir} (dockerfile {dockerfile}) at {started.isoformat(timespec='seconds')}\n")
            log.write(f"# build args: {', '.join(sorted(build_args)) or '(none)'}\n")
            log.flush()
            try:
                with translate(f"building {tag}"):
                    events = self.api.build(
                        path=context_dir,
                        dockerfile=dockerfile,
                        tag=tag,
                        buildargs=dict(build_args),
                        decode=True,
                        rm=True,
                        forcerm=True,
                        nocache=nocache,
                        network_mode=Settings.from_env().build_network,  # README "Security model"
                        platform=platform,
                        labels=dict(labels) if labels else None,  # the image's own labels (LABEL_BUILT_FOR)
                    )
                    for ev in events:
                        if "stream" in ev:
                            text = _ANSI.sub("", str(ev["stream"]))
                            log.write(text)
                            for line in text.splitlines():
                                if line.strip() and not line.startswith("Removing intermediate container"):
                                    tail.append(line.rstrip())
                                m = _STEP.match(line.strip())
                                if m:
                                    step = line.strip()
                                    self.progress(f"{label}: step {m.group(1)}/{m.group(2)}: {_short(m.group(3))}")
                        elif "status" in ev:
                            line = f"{ev.get('id', '')} {ev['status']} {ev.get('progress', '')}".strip()
                            log.write(line + "\n")
                        if "aux" in ev and isinstance(ev["aux"], dict) and "ID" in ev["aux"]:
                            image_id = str(ev["aux"]["ID"])
                        if "error" in ev:
                            error = str(ev["error"]).strip()
                            log.write(f"ERROR: {error}\n")
                            tail.append(error)
                        log.flush()
            except BackendError as exc:  # the daemon refused the request itself (e.g. a Dockerfile parse error)
                error = str(exc)
                log.write(f"ERROR: {error}\n")
                tail.append(error)
            took = (dt.datetime.now() - started).total_seconds()
            log.write(f"# {'failed' if error or not image_id else 'done'} after {took:.1f}s\n")
        if error or not image_id:
            raise BuildError(
                f"building {tag} failed: {error or 'the engine reported no image id'}",
                step=step,
                log_tail="\n".join(tail),
                log_path=str(log_path),
            )
        self.progress(f"{label}: built {image_id[:19]} in {took:.0f}s")
        return self.inspect(image_id)

    # -- images ------------------------------------------------------------
    def inspect(self, ref: str) -> BuiltImage:
        with translate(f"inspecting image {ref}"):
            return _built(self.api.inspect_image(ref))

    def tag(self, image: str, ref: str) -> None:
        name, tag = split_ref(ref)
        with translate(f"tagging {image} as {ref}"):
            if not self.api.tag(image, name, tag=tag, force=True):
                raise BackendError(f"tagging {image} as {ref}: the engine refused")

    def push(self, ref: str, auth: dict[str, str] | None) -> str:
        from .registry_gc import writing

        name, tag = split_ref(ref)
        digest: str | None = None
        with writing(name.split("/", 1)[0]), translate(f"pushing {ref}"):  # no registry GC mid-push
            for ev in self.api.push(name, tag=tag, auth_config=auth or None, stream=True, decode=True):
                if "error" in ev:
                    text = str(ev.get("error"))
                    detail = ev.get("errorDetail") or {}
                    if detail.get("code") == 401 or _is_auth(text):
                        raise AuthError(f"pushing {ref}: the registry refused the credentials: {text}")
                    raise BackendError(f"pushing {ref}: {text}")
                aux = ev.get("aux")
                if isinstance(aux, dict) and aux.get("Digest"):
                    digest = str(aux["Digest"])
        if not digest:
            raise BackendError(f"pushing {ref}: the engine reported no manifest digest")
        return digest

    def pull(self, ref: str, auth: dict[str, str] | None) -> BuiltImage:
        name, tag = split_ref(ref)
        with translate(f"pulling {ref}"):
            for ev in self.api.pull(name, tag=tag or "latest", auth_config=auth or None, stream=True, decode=True):
                if "error" in ev:
                    text = str(ev.get("error"))
                    if _is_auth(text) and "not found" not in text.lower():
                        raise AuthError(f"pulling {ref}: the registry refused the credentials: {text}")
                    if any(w in text.lower() for w in _NOT_FOUND_WORDS):
                        raise NotFound(f"pulling {ref}: {text}")
                    raise BackendError(f"pulling {ref}: {text}")
        return self.inspect(ref)

    def remove(self, ref: str) -> None:
        try:
            with translate(f"removing local image {ref}"):
                self.api.remove_image(ref)
        except NotFound:
            pass
        except BackendError as exc:
            if "conflict" in str(exc).lower() or "being used" in str(exc).lower():
                self.progress(f"left local image {ref} in place: {exc}")
                return
            raise

    def remove_repository(self, repository: str) -> None:
        """Remove every local tag of ``repository`` (``<registry>/<path>``, no tag) that no container uses."""
        with translate(f"listing local images of {repository}"):
            images = self.api.images(name=repository)
        for image in images:
            for tag in image.get("RepoTags") or []:
                if tag.rsplit(":", 1)[0] == repository:
                    self.remove(tag)

    # -- probe -------------------------------------------------------------
    def _run(self, image: str, entrypoint: list[str], command: list[str] | None = None) -> tuple[int, str]:
        with translate(f"running {image} to read its OS and Python versions"):
            c = self.client.containers.create(image, entrypoint=entrypoint, command=command, network_mode="none", detach=True)
            try:
                c.start()
                code = int(c.wait(timeout=60).get("StatusCode", 1))
                out = c.logs(stdout=True, stderr=False).decode("utf-8", "replace")
            finally:
                import docker.errors

                with contextlib.suppress(docker.errors.APIError):
                    c.remove(force=True)
        return code, out

    def probe(self, image: str) -> ProbedFacts:
        try:
            code, out = self._run(image, ["/bin/sh", "-c", PROBE_SCRIPT])
        except BackendError as exc:
            if "no such file" not in str(exc).lower() and "not found" not in str(exc).lower():
                raise
            code, out = -1, ""
        if code == 0 and "@@mldeploy-python" in out:
            os_part, rest = out.split("@@mldeploy-python", 1)
            py_part, conda_part = rest.split("@@mldeploy-conda", 1) if "@@mldeploy-conda" in rest else (rest, "")
            return ProbedFacts(os_part.strip(), _first_version(py_part), _first_version(conda_part))
        # No /bin/sh: one exec-form run per fact.
        os_release = ""
        for path in ("/etc/os-release", "/usr/lib/os-release"):
            with contextlib.suppress(BackendError):
                c, o = self._run(image, ["cat", path])
                if c == 0:
                    os_release = o
                    break
        py = None
        for exe in ("python3", "python"):
            with contextlib.suppress(BackendError):
                c, o = self._run(image, [exe, "-c", 'import sys; print("%d.%d.%d" % sys.version_info[:3])'])
                if c == 0 and _first_version(o):
                    py = _first_version(o)
                    break
        conda = None
        with contextlib.suppress(BackendError):
            c, o = self._run(image, ["conda", "--version"])
            conda = _first_version(o) if c == 0 else None
        return ProbedFacts(os_release.strip(), py, conda)


    def pip_inspect(self, image: str) -> dict[str, Any] | None:
        """``pip inspect`` of the image's ``pip`` (the one the derived image's ``RUN pip install`` uses), or None without one."""
        import json

        try:
            code, out = self._run(image, ["pip"], ["inspect"])
        except BackendError:
            return None
        if code != 0:
            return None
        try:
            report = json.loads(out)
        except json.JSONDecodeError:
            return None
        return report if isinstance(report, dict) else None

    def info(self) -> dict[str, Any]:
        with translate("reading docker info"):
            return dict(self.api.info())


@dataclass(frozen=True)
class GpuSupport:
    """Whether an engine can give containers GPUs, how to ask for them, and what was checked."""

    available: bool
    checked: str
    device_requests: tuple[dict[str, Any], ...] = ()


def gpu_support(info: dict[str, Any]) -> GpuSupport:
    """GPU support from a ``docker info`` answer (``Runtimes``, ``DiscoveredDevices``, ``CDISpecDirs``)."""
    runtimes = sorted((info.get("Runtimes") or {}).keys())
    cdi = [d.get("ID", "") for d in info.get("DiscoveredDevices") or [] if (d.get("Source") or "").lower() == "cdi"]
    gpus = [d for d in cdi if "gpu" in d.lower()]
    checked = (
        f"docker info: runtimes {', '.join(runtimes) or '(none)'}; "
        f"CDI devices {', '.join(cdi) or '(none)'} (CDI spec dirs {', '.join(info.get('CDISpecDirs') or []) or '(none)'})"
    )
    if "nvidia" in runtimes:
        return GpuSupport(True, checked, ({"Driver": "", "Count": -1, "Capabilities": [["gpu"]]},))
    if gpus:  # e.g. nvidia.com/gpu=0, nvidia.com/gpu=GPU-<uuid>, nvidia.com/gpu=all: ask for "all" where there is one
        every = [d for d in gpus if d.endswith("=all")]
        return GpuSupport(True, checked, ({"Driver": "cdi", "DeviceIDs": every or gpus},))
    return GpuSupport(False, checked)


def _first_version(text: str) -> str | None:
    m = re.search(r"\b(\d+\.\d+(?:\.\d+)?)\b", text or "")
    return m.group(1) if m else None


def _short(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


__all__ = ["PROBE_SCRIPT", "DockerEngine", "GpuSupport", "client", "gpu_support", "split_ref", "translate"]
