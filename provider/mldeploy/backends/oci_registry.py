"""An OCI distribution registry through its v2 HTTP API, with ``requests`` and basic auth.

``OciRegistry`` implements ``ImageRegistry``:

- ``manifest_digest(repository, tag_or_digest)``: ``HEAD /v2/<repo>/manifests/<ref>``
  (accepting Docker v2 and OCI manifests and indexes), the
  ``Docker-Content-Digest`` header; ``NotFound`` only for a definite 404
  (the registry's ``MANIFEST_UNKNOWN`` / ``NAME_UNKNOWN``);
- ``delete_manifest(repository, digest)``: ``DELETE /v2/<repo>/manifests/<digest>``,
  which also drops every tag on that manifest; on the local registry it holds
  the push lock (``registry_gc.writing``) as pushes do, so another stack's
  garbage collection, which refuses every write while it runs, never fails it;
- ``collect_garbage()``: after deletes, frees the layers no manifest references
  any more, on the local registry only (``registry_gc.after_delete``).

A 401 or 403 is ``AuthError`` (credentials refused: never "gone"); a
connection failure, timeout or any other status is ``BackendError``.
Plain HTTP for loopback addresses (the local registry), HTTPS otherwise.

Authentication as registries ask for it: HTTP basic auth (the local
registry's nginx, ACR with a service principal), or the token flow of the
distribution spec: a 401 with ``WWW-Authenticate: Bearer realm=...,
service=..., scope=...`` is answered by fetching a token from the realm (with
the credentials, if any; anonymously otherwise) and retrying with it
(Docker Hub, MCR, GHCR, ACR). The credentials go only to the registry they
were given for and to the token realm that registry names.
"""

from __future__ import annotations

import requests

from ..errors import AuthError, BackendError, NotFound

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


#: Docker Hub's references say ``docker.io``; its registry API is here.
DOCKER_HUB_API = "registry-1.docker.io"


def _challenge(header: str) -> dict[str, str] | None:
    """The parameters of a ``Bearer`` challenge, or None for another scheme."""
    import re

    if not header.lower().startswith("bearer "):
        return None
    return {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', header)}


def base_url(address: str) -> str:
    if address == "docker.io":
        address = DOCKER_HUB_API
    host = address.split(":")[0] if not address.startswith("[") else address
    insecure = host in ("localhost", "127.0.0.1", "[::1]") or host.startswith("127.")
    return f"{'http' if insecure else 'https'}://{address}"


class OciRegistry:
    """One registry, one set of credentials (``None`` for anonymous access)."""

    def __init__(self, address: str, username: str | None = None, password: str | None = None, timeout: float = 30) -> None:
        self.address = address
        self._auth = (username, password) if username and password else None
        self._timeout = timeout

    def __repr__(self) -> str:  # never show the password
        return f"OciRegistry({self.address!r}, user={self._auth[0] if self._auth else None!r})"

    def _token(self, challenge: dict[str, str], action: str) -> str:
        """A bearer token from the realm a registry's 401 named (distribution's token authentication)."""
        params = {k: v for k, v in challenge.items() if k in ("service", "scope")}
        try:
            resp = requests.get(challenge["realm"], params=params, auth=self._auth, timeout=self._timeout)
        except requests.RequestException as exc:
            raise BackendError(f"{action}: cannot reach the token service {challenge['realm']}: {exc}") from exc
        if resp.status_code in (401, 403):
            who = f"identity {self._auth[0]!r}" if self._auth else "anonymous access"
            raise AuthError(f"{action}: registry {self.address} refused {who} (token service: HTTP {resp.status_code})")
        try:
            body = resp.json()
        except ValueError:
            body = {}
        token = body.get("token") or body.get("access_token") if resp.status_code == 200 else None
        if not token:
            raise BackendError(f"{action}: the token service {challenge['realm']} answered HTTP {resp.status_code} without a token")
        return str(token)

    def _request(self, method: str, repository: str, reference: str, action: str) -> requests.Response:
        url = f"{base_url(self.address)}/v2/{repository}/manifests/{reference}"
        try:
            resp = requests.request(
                method, url, auth=self._auth, headers={"Accept": MANIFEST_TYPES}, timeout=self._timeout, allow_redirects=True
            )
            challenge = _challenge(resp.headers.get("WWW-Authenticate", "")) if resp.status_code == 401 else None
            if challenge and challenge.get("realm"):
                headers = {"Accept": MANIFEST_TYPES, "Authorization": f"Bearer {self._token(challenge, action)}"}
                resp = requests.request(method, url, headers=headers, timeout=self._timeout, allow_redirects=True)
        except requests.RequestException as exc:
            raise BackendError(f"{action}: cannot reach registry {self.address}: {exc}") from exc
        if resp.status_code in (401, 403):
            who = f"identity {self._auth[0]!r}" if self._auth else "anonymous access"
            raise AuthError(f"{action}: registry {self.address} refused {who} (HTTP {resp.status_code})")
        if resp.status_code == 404:
            sep = "@" if reference.startswith("sha256:") else ":"
            raise NotFound(f"{action}: registry {self.address} has no manifest {repository}{sep}{reference}")
        return resp

    def manifest_digest(self, repository: str, reference: str) -> str:
        action = f"looking up {self.address}/{repository} {reference}"
        resp = self._request("HEAD", repository, reference, action)
        if resp.status_code != 200:
            raise BackendError(f"{action}: registry answered HTTP {resp.status_code}")
        digest = resp.headers.get("Docker-Content-Digest")
        if not digest:
            if reference.startswith("sha256:"):
                return reference
            raise BackendError(f"{action}: registry answered without a Docker-Content-Digest header")
        return digest

    def delete_manifest(self, repository: str, digest: str) -> None:
        from .registry_gc import writing

        action = f"deleting {self.address}/{repository}@{digest}"
        with writing(self.address):  # no garbage collection (which answers writes 503) meanwhile
            resp = self._request("DELETE", repository, digest, action)
        if resp.status_code == 405:
            raise BackendError(f"{action}: the registry does not allow deletes (storage.delete.enabled is off)")
        if resp.status_code not in (200, 202):
            raise BackendError(f"{action}: registry answered HTTP {resp.status_code}: {resp.text[:200]}")

    def collect_garbage(self) -> str | None:
        """Sweep unreferenced layers when this is the local registry; a line saying what happened, or None."""
        from .registry_gc import after_delete

        return after_delete(self.address)


__all__ = ["DOCKER_HUB_API", "MANIFEST_TYPES", "OciRegistry", "base_url"]
