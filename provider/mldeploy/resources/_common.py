"""Small helpers shared by the providers: unknowns, diffs, check failures, progress.

Kept deliberately thin so that each resource's whole behaviour stays in its own file.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

from pulumi.dynamic import CheckFailure, CheckResult, DiffResult
from pulumi.output import Unknown
from pulumi.runtime import rpc

from ..errors import ValidationError


def is_unknown(value: Any) -> bool:
    """True when a value is not known yet (a preview of an output that is still to be computed)."""
    # Pulumi 3.259 hands providers unknowns as ``pulumi.output.Unknown`` objects; older engines as a sentinel string.
    if isinstance(value, Unknown) or value is rpc.UNKNOWN or value == rpc.UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(is_unknown(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(is_unknown(v) for v in value)
    return False


def run_checks(news: dict[str, Any], *checks: Callable[[dict[str, Any]], None]) -> CheckResult:
    """Run validators; each raises ``ValidationError`` naming the input. Unknown inputs are skipped by the validators."""
    failures: list[CheckFailure] = []
    for check in checks:
        try:
            check(news)
        except ValidationError as exc:
            failures.append(CheckFailure(exc.field, exc.message))
    return CheckResult(news, failures)


def changed(olds: dict[str, Any], news: dict[str, Any], keys: Iterable[str]) -> list[str]:
    """The keys whose value differs between old and new inputs (an unknown new value counts as changed)."""
    return [k for k in keys if is_unknown(news.get(k)) or olds.get(k) != news.get(k)]


def diff(
    olds: dict[str, Any],
    news: dict[str, Any],
    replace_keys: Iterable[str],
    update_keys: Iterable[str],
    delete_before_replace: bool = False,
) -> DiffResult:
    """A DiffResult from the keys that force a replacement and the keys updated in place."""
    replaces = changed(olds, news, replace_keys)
    updates = changed(olds, news, update_keys)
    return DiffResult(
        changes=bool(replaces or updates),
        replaces=replaces,
        stables=[],
        delete_before_replace=delete_before_replace if replaces else False,
    )


def progress(label: str, message: str) -> None:
    """One progress line into Pulumi's output (a dynamic provider's stderr is shown by the engine).

    Never pass a secret here.
    """
    print(f"[{label}] {message}", file=sys.stderr, flush=True)


def label(kind: str, props: dict[str, Any], key: str) -> str:
    """A readable label for progress lines, e.g. ``BaseImage demo-base``."""
    value = props.get(key)
    return f"{kind} {value}" if isinstance(value, str) and value else kind


def _start_watchdog() -> None:
    """In a provider process, exit when the engine goes away (``mldeploy.watchdog``); a no-op anywhere else."""
    from .. import watchdog

    watchdog.start()


_start_watchdog()
