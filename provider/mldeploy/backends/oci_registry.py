"""An OCI distribution registry through its v2 HTTP API, with ``requests`` and basic auth.

``OciRegistry`` implements ``ImageRegistry``:

- ``manifest_digest(repository, tag_or_digest)``: ``HEAD /v2/<repo>/manifests/<ref>``
  (accepting Docker v2 and OCI manifests and indexes), the
  ``Docker-Content-Digest`` header; ``NotFound`` only for a definite 404
  (the registry's ``MANIFEST_UNKNOWN`` / ``NAME_UNKNOWN``);
- ``delete_manifest(repository, digest)``: ``DELETE /v2/<repo>/manifests/<digest>``,
  which also drops every tag on that manifest;
- ``collect_garbage()``: after deletes, frees the layers no manifest references
  any more, on the local registry only (``registry_gc.after_delete``).

A 401 or 403 is ``AuthError`` (credentials refused: never "gone"); a
connection failure, timeout or any other status is ``BackendError``.
Plain HTTP for loopback addresses (the local registry), HTTPS otherwise.
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


def base_url(address: str) -> str:
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

    def _request(self, method: str, repository: str, reference: str, action: str) -> requests.Response:
        url = f"{base_url(self.address)}/v2/{repository}/manifests/{reference}"
        try:
            resp = requests.request(
                method, url, auth=self._auth, headers={"Accept": MANIFEST_TYPES}, timeout=self._timeout, allow_redirects=True
            )
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
        action = f"deleting {self.address}/{repository}@{digest}"
        resp = self._request("DELETE", repository, digest, action)
        if resp.status_code == 405:
            raise BackendError(f"{action}: the registry does not allow deletes (storage.delete.enabled is off)")
        if resp.status_code not in (200, 202):
            raise BackendError(f"{action}: registry answered HTTP {resp.status_code}: {resp.text[:200]}")

    def collect_garbage(self) -> str | None:
        """Sweep unreferenced layers when this is the local registry; a line saying what happened, or None."""
        from .registry_gc import after_delete

        return after_delete(self.address)


__all__ = ["MANIFEST_TYPES", "OciRegistry", "base_url"]
