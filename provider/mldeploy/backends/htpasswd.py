"""Local identity store: bcrypt htpasswd files read by nginx in front of the registry.

Two files, as ``scripts/registry/nginx.conf.in`` expects them:

- ``htpasswd``: every identity; nginx lets these pull and list.
- ``htpasswd-push``: ``AcrPush`` identities only; nginx requires one of these
  for any method other than GET/HEAD (push, delete).

nginx reads the files on every request, so changes take effect at once
without a reload. Files are replaced atomically under a lock. Metadata
(role, display name, expiry) lives beside them in ``identities.json``.

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
from collections.abc import Iterator
from pathlib import Path

import bcrypt

from ..errors import BackendError, NotFound
from .protocols import Identity

ROLES = ("AcrPull", "AcrPush")
BCRYPT_ROUNDS = 5


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
    def _locked(self) -> Iterator[dict[str, dict[str, str | None]]]:
        with open(self.dir / "identities.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            meta = self._read_meta()
            before = json.dumps(meta, sort_keys=True)
            yield meta
            if json.dumps(meta, sort_keys=True) != before:
                self._write_meta(meta)

    def _read_meta(self) -> dict[str, dict[str, str | None]]:
        path = self.dir / "identities.json"
        if not path.exists():
            return {}
        data: dict[str, dict[str, str | None]] = json.loads(path.read_text())
        return data

    def _write_meta(self, meta: dict[str, dict[str, str | None]]) -> None:
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
        self._atomic_write(self.dir / name, text, 0o644)

    @staticmethod
    def _atomic_write(path: Path, text: str, mode: int) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)

    def _set_secret(self, client_id: str, role: str, secret: str | None) -> None:
        """Write (or with ``secret=None`` remove) the identity's hash in the role's files."""
        every, push = self._hashes("htpasswd"), self._hashes("htpasswd-push")
        every.pop(client_id, None)
        push.pop(client_id, None)
        if secret is not None:
            h = bcrypt.hashpw(secret.encode(), bcrypt.gensalt(rounds=BCRYPT_ROUNDS)).decode()
            every[client_id] = h
            if role == "AcrPush":
                push[client_id] = h
        # Revoke push first, grant pull last: never a moment with more rights than intended.
        self._write_hashes("htpasswd-push", push)
        self._write_hashes("htpasswd", every)

    def _prune_expired(self, meta: dict[str, dict[str, str | None]]) -> None:
        now = _now().isoformat()
        for cid, m in list(meta.items()):
            exp = m.get("expires_at")
            if exp and exp <= now:
                self._set_secret(cid, str(m.get("role")), None)
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
    def create(self, display_name: str, role: str, expires_in_days: int | None) -> tuple[Identity, str]:
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
            }
            self._set_secret(client_id, role, secret)
            return self._identity(client_id, meta[client_id]), secret

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
            self._set_secret(client_id, str(m["role"]), secret)
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
            self._set_secret(client_id, str((m or {}).get("role", "")), None)
