"""What InferenceDeployment needs to converge after an interruption or out-of-band change (kept out of its file).

- credentials: the outputs follow the current push/pull identities without a
  redeploy, so ``refresh`` and ``destroy`` never use a revoked identity recorded
  by an earlier ``up``;
- a derived image manifest deleted from the registry: ``read`` asks the registry
  with the current pull identity; only a definite 404 counts as missing;
- a push identity revoked out of band: ``delete`` asks the workspace for a
  short-lived one (``workspace_push_auth``), and goes on if that fails too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ..errors import NotFound


def credentials_changed(olds: dict[str, Any], news: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    """The credential keys whose value changed (an unknown new value is not a change: it is known at update)."""
    from ._common import is_unknown

    return [k for k in keys if not is_unknown(news.get(k)) and k in news and olds.get(k) != news.get(k)]


def manifest_missing(image_ref: Any, pull_auth: dict[str, str]) -> bool:
    """True only when the registry answers 404 for the image's manifest; any other failure raises (refresh keeps the state)."""
    from ..backends.oci_registry import OciRegistry

    if not isinstance(image_ref, str) or "@" not in image_ref:
        return False
    name, digest = image_ref.split("@", 1)
    address, repository = name.split("/", 1)
    try:
        OciRegistry(address, pull_auth.get("username") or None, pull_auth.get("password") or None).manifest_digest(repository, digest)
    except NotFound:
        return True
    return False


@contextlib.contextmanager
def workspace_push_auth(image_ref: Any) -> Iterator[dict[str, str]]:
    """``push_username``/``push_password`` of a short-lived ``AcrPush`` identity of the image's registry (the workspace's),
    revoked when the block ends: destroy still deletes the image after the recorded push identity was revoked."""
    from ..backends import select

    address = str(image_ref).split("/", 1)[0]
    store = select.identity_store(address)
    ident, secret = store.create("mldeploy-destroy", "AcrPush", 1)
    try:
        yield {"push_username": ident.client_id, "push_password": secret}
    finally:
        store.delete(ident.client_id)


__all__ = ["credentials_changed", "manifest_missing", "workspace_push_auth"]
