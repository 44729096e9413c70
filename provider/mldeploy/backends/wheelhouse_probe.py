"""The wheelhouse an image build installs from, asked before the build starts.

Image builds run ``pip install --no-index --find-links $WHEELHOUSE_URL``; an
unreachable wheelhouse used to show as ten lines of pip's "Requirement already
satisfied" before pip's own error. ``check`` asks the URL first and fails in one
line naming it and the fix.
"""

from __future__ import annotations

from ..errors import BackendError


def check(url: str | None, what: str) -> None:
    """Raise ``BackendError`` unless ``url`` answers 200 (nothing to check when the build uses no wheelhouse)."""
    if not url:
        return
    import requests  # ~80 ms: only when a build is about to run, not in every program that imports mldeploy

    try:
        status = requests.get(url, timeout=10).status_code
    except requests.RequestException as exc:
        raise BackendError(
            f"{what}: the wheelhouse {url} is unreachable ({type(exc).__name__}); the build installs its wheels from there. "
            "Start the local registry and wheelhouse (`make setup`), or set WHEELHOUSE_URL to one that answers"
        ) from exc
    if status != 200:
        raise BackendError(f"{what}: the wheelhouse {url} answered HTTP {status}, not its index; check that it is served (`make setup`)")


__all__ = ["check"]
