"""Local identity store: bcrypt htpasswd files read by nginx in front of the registry.

Two files, as ``scripts/registry/nginx.conf.in`` expects them:

- ``htpasswd``: every identity; nginx lets these pull and list.
- ``htpasswd-push``: unrestricted ``AcrPush`` identities; nginx requires one
  of these for any method other than GET/HEAD (push, delete).
- ``scopes/u-<client id>/``: an ``AcrPush`` identity scoped to some
  repositories (as a registry token's ``repository:<name>:push`` scope): its
  own one-line ``htpasswd`` and one marker per scope entry, ``r/<repo>@`` for
  exactly ``<repo>``, ``r/<prefix>/@`` for ``<prefix>/*``. nginx lets it write
  only where a marker matches the request's repository.

nginx reads the files on every request, so changes take effect at once
without a reload. Files are replaced atomically under a lock, all private to
the user running the registry (0600/0700). Metadata (role, scope, display
name, expiry) lives beside them in ``identities.json``.

``grant(client_id)`` reads back what the files actually allow (``AcrPull``,
``AcrPush``, ``AcrPush:<scope>``), so a refresh sees an identity demoted or
rescoped out of band, and ``repair`` restores the recorded grant with the
same secret (its hash is still in ``htpasswd``).

The bcrypt cost is 5, as ``htpasswd -B`` uses by default: nginx checks the hash
on every registry request, and the secrets are 256-bit random tokens, so a
higher cost would slow every pull without making a guess any likelier.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt

from ..errors import BackendError, NotFound
from .protocols import Identity

ROLES = ("AcrPull", "AcrPush")
BCRYPT_ROUNDS = 5
# distribution's repository name grammar (lowercase path components); scope entries may end in "/*".
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
PREFIX_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})?/\*")


def scope_error(entry: object) -> str | None:
    """Why ``entry`` is not a valid scope entry (a repository name, or ``<prefix>/*`` with a 1-2 component prefix), else None."""
    if not isinstance(entry, str):
        return f"{entry!r} is not a string"
    if REPOSITORY_RE.fullmatch(entry) or PREFIX_RE.fullmatch(entry):
        return None
    if entry.endswith("/*"):
        return f"{entry!r}: a wildcard prefix has one or two lowercase path components, e.g. 'mldeploy/*' or 'team/app/*'"
    return f"{entry!r} is not a repository name (lowercase letters, digits, '.', '_', '-', separated by '/', e.g. 'demo/base')"


def grant_name(role: str, repositories: list[str] | None) -> str:
    """The grant an identity should have: ``AcrPull``, ``AcrPush`` or ``AcrPush:<sorted scope>``."""
    if role == "AcrPush" and repositories:
        return "AcrPush:" + ",".join(sorted(set(repositories)))
    return role


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "sp"


class HtpasswdIdentityStore:
    """Identities of the local registry (see module docstring)."""

    def __init__(self, registry_dir: Path, registry_address: str) -> None:
        self.dir = Path(registry_dir)
        self.registry_address = registry_address
        if not (self.dir / "htpasswd").exists():
            raise BackendError(
                f"reading local registry identities: {self.dir / 'htpasswd'} does not exist; run `make setup` to start the local registry"
            )

    # -- files -------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, dict[str, Any]]]:
        with open(self.dir / "identities.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            meta = self._read_meta()
            before = json.dumps(meta, sort_keys=True)
            yield meta
            if json.dumps(meta, sort_keys=True) != before:
                self._write_meta(meta)

    def _read_meta(self) -> dict[str, dict[str, Any]]:
        path = self.dir / "identities.json"
        if not path.exists():
            return {}
        data: dict[str, dict[str, Any]] = json.loads(path.read_text())
        return data

    def _write_meta(self, meta: dict[str, dict[str, Any]]) -> None:
        self._atomic_write(self.dir / "identities.json", json.dumps(meta, indent=2, sort_keys=True) + "\n", 0o600)

    def _hashes(self, name: str) -> dict[str, str]:
        path = self.dir / name
        out: dict[str, str] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                if ":" in line:
                    user, h = line.split(":", 1)
                    out[user] = h
        return out

    def _write_hashes(self, name: str, hashes: dict[str, str]) -> None:
        text = "".join(f"{u}:{h}\n" for u, h in sorted(hashes.items()))
        self._atomic_write(self.dir / name, text, 0o600)

    @staticmethod
    def _atomic_write(path: Path, text: str, mode: int) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)

    def _scope_dir(self, client_id: str) -> Path:
        return self.dir / "scopes" / f"u-{client_id}"

    def _write_scope(self, client_id: str, hashed: str, repositories: list[str]) -> None:
        """The scoped identity's own htpasswd and its markers, built aside and renamed into place."""
        final = self._scope_dir(client_id)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "r").mkdir(parents=True, mode=0o700)
        for entry in sorted(set(repositories)):
            marker = tmp / "r" / (entry[:-1] + "@" if entry.endswith("/*") else entry + "@")
            marker.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            marker.touch(mode=0o600)
        self._atomic_write(tmp / "htpasswd", f"{client_id}:{hashed}\n", 0o600)
        os.replace(tmp, final)

    def _set_grant(self, client_id: str, role: str, hashed: str | None, repositories: list[str] | None = None) -> None:
        """Write (or with ``hashed=None`` remove) the identity's hash in the files of its role and scope."""
        every, push = self._hashes("htpasswd"), self._hashes("htpasswd-push")
        every.pop(client_id, None)
        push.pop(client_id, None)
        # Revoke push (unrestricted and scoped) first, grant pull last: never a moment with more rights than intended.
        self._write_hashes("htpasswd-push", push)
        shutil.rmtree(self._scope_dir(client_id), ignore_errors=True)
        if hashed is not None:
            every[client_id] = hashed
            if role == "AcrPush" and repositories:
                (self.dir / "scopes").mkdir(mode=0o700, exist_ok=True)
                self._write_scope(client_id, hashed, repositories)
            elif role == "AcrPush":
                push[client_id] = hashed
                self._write_hashes("htpasswd-push", push)
        self._write_hashes("htpasswd", every)

    def _set_secret(self, client_id: str, role: str, secret: str | None, repositories: list[str] | None = None) -> None:
        """Write (or with ``secret=None`` remove) a new secret's hash in the role's and scope's files."""
        hashed = bcrypt.hashpw(secret.encode(), bcrypt.gensalt(rounds=BCRYPT_ROUNDS)).decode() if secret is not None else None
        self._set_grant(client_id, role, hashed, repositories)

    def _actual_grant(self, client_id: str) -> str | None:
        """What the files allow ``client_id`` (see ``grant``); None when it is not in ``htpasswd``."""
        hashed = self._hashes("htpasswd").get(client_id)
        if hashed is None:
            return None
        if self._hashes("htpasswd-push").get(client_id) == hashed:
            return "AcrPush"
        sdir = self._scope_dir(client_id)
        if (sdir / "htpasswd").exists() and self._hashes(str((sdir / "htpasswd").relative_to(self.dir))).get(client_id) == hashed:
            entries = []
            for marker in (sdir / "r").rglob("*@"):
                rel = marker.relative_to(sdir / "r").as_posix()
                entries.append(rel[:-1] + "*" if rel.endswith("/@") else rel[:-1])
            if entries:
                return grant_name("AcrPush", entries)
        return "AcrPull"

    def _prune_expired(self, meta: dict[str, dict[str, Any]]) -> None:
        now = _now().isoformat()
        for cid, m in list(meta.items()):
            exp = m.get("expires_at")
            if exp and exp <= now:
                self._set_grant(cid, str(m.get("role")), None)
                del meta[cid]

    def _identity(self, cid: str, m: dict[str, str | None]) -> Identity:
        return Identity(
            client_id=cid,
            role=str(m["role"]),
            display_name=str(m["display_name"]),
            registry_address=self.registry_address,
            created_at=str(m["created_at"]),
            expires_at=m.get("expires_at"),
        )

    @staticmethod
    def _expiry(expires_in_days: int | None) -> str | None:
        if not expires_in_days:
            return None
        return (_now() + dt.timedelta(days=expires_in_days)).isoformat()

    # -- IdentityStore -----------------------------------------------------
    def create(
        self, display_name: str, role: str, expires_in_days: int | None, repositories: list[str] | None = None
    ) -> tuple[Identity, str]:
        """A new identity; ``repositories`` (AcrPush only) limits where it may push and delete, None: anywhere."""
        if role not in ROLES:
            raise ValueError(role)
        client_id = f"{_slug(display_name)}-{secrets.token_hex(4)}"
        secret = secrets.token_urlsafe(32)
        with self._locked() as meta:
            self._prune_expired(meta)
            meta[client_id] = {
                "role": role,
                "display_name": display_name,
                "created_at": _now().isoformat(),
                "expires_at": self._expiry(expires_in_days),
                "repositories": sorted(set(repositories)) if repositories else None,
            }
            self._set_secret(client_id, role, secret, repositories)
            return self._identity(client_id, meta[client_id]), secret

    def grant(self, client_id: str) -> str:
        """What the registry's files allow this identity now: ``AcrPull``, ``AcrPush`` or ``AcrPush:<repo>,...``.

        ``NotFound`` when it is revoked (not in ``htpasswd``) or unknown.
        """
        with self._locked() as meta:
            self._prune_expired(meta)
            found = self._actual_grant(client_id) if client_id in meta else None
            if found is None:
                raise NotFound(f"identity {client_id} does not exist on registry {self.registry_address}")
            return found

    def set_scope(self, client_id: str, repositories: list[str] | None) -> Identity:
        """Change where an AcrPush identity may push (same secret); also repairs a demoted or rescoped identity."""
        with self._locked() as meta:
            m = meta.get(client_id)
            hashed = self._hashes("htpasswd").get(client_id)
            if m is None or hashed is None:
                raise NotFound(f"identity {client_id} does not exist on registry {self.registry_address}")
            m["repositories"] = sorted(set(repositories)) if repositories else None
            self._set_grant(client_id, str(m["role"]), hashed, repositories)
            return self._identity(client_id, m)

    def get(self, client_id: str) -> Identity:
        with self._locked() as meta:
            self._prune_expired(meta)
            m = meta.get(client_id)
            if m is None or client_id not in self._hashes("htpasswd"):
                raise NotFound(f"identity {client_id} does not exist on registry {self.registry_address}")
            return self._identity(client_id, m)

    def rotate(self, client_id: str, expires_in_days: int | None) -> tuple[Identity, str]:
        secret = secrets.token_urlsafe(32)
        with self._locked() as meta:
            m = meta.get(client_id)
            if m is None:
                raise NotFound(f"identity {client_id} does not exist on registry {self.registry_address}")
            m["expires_at"] = self._expiry(expires_in_days)
            self._set_secret(client_id, str(m["role"]), secret, m.get("repositories"))
            return self._identity(client_id, m), secret

    def update(self, client_id: str, display_name: str) -> Identity:
        with self._locked() as meta:
            m = meta.get(client_id)
            if m is None:
                raise NotFound(f"identity {client_id} does not exist on registry {self.registry_address}")
            m["display_name"] = display_name
            return self._identity(client_id, m)

    def delete(self, client_id: str) -> None:
        with self._locked() as meta:
            m = meta.pop(client_id, None)
            self._set_grant(client_id, str((m or {}).get("role", "")), None)
