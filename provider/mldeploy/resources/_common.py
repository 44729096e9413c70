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


def failure(exc: ValidationError) -> CheckFailure:
    """A check failure that reads as one sentence naming the input: ``inference_config.condaFile: ... ; fix ...``.

    The property is left empty on purpose. For a named property the engine prints
    ``property <p> value {<value of input p>} has a problem``: the value of a
    top-level input (a path, or a secret's wrapper), and ``{<nil>}`` for a dotted
    path such as ``inference_config.condaFile``, which is no input of its own.
    With no property it prints ``<type> resource '<name>' has a problem: <reason>``.
    """
    return CheckFailure("", f"{exc.field}: {exc.message}")


def needs(*inputs: str) -> Callable[[Callable[[dict[str, Any]], None]], Callable[[dict[str, Any]], None]]:
    """Mark a check as depending on inputs that earlier checks read: it is skipped when one of them failed.

    So a bad ``inference_config`` gives one error, not a second, false one from a
    check that reads what the first would have filled in (``baseImage``, say).
    """

    def mark(check: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
        check.needs = inputs  # type: ignore[attr-defined]
        return check

    return mark


def run_checks(news: dict[str, Any], *checks: Callable[[dict[str, Any]], None]) -> CheckResult:
    """Run validators in order; each raises ``ValidationError`` naming the input. Unknown inputs are skipped by the validators.

    A check marked with ``needs(...)`` is skipped once a check about one of those inputs failed.
    """
    failures: list[CheckFailure] = []
    failed: set[str] = set()
    for check in checks:
        if failed & set(getattr(check, "needs", ())):
            continue
        try:
            check(news)
        except ValidationError as exc:
            failures.append(failure(exc))
            failed.add(exc.field.split(".", 1)[0])
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
    drift: bool = False,
) -> DiffResult:
    """A DiffResult from the keys that force a replacement and the keys updated in place.

    ``drift``: something changed out of band that needs an update although no input changed.
    """
    replaces = changed(olds, news, replace_keys)
    updates = changed(olds, news, update_keys)
    return DiffResult(
        changes=changes(bool(replaces or updates), drift),
        replaces=replaces,
        stables=[],
        delete_before_replace=delete_before_replace if replaces else False,
    )


def changes(inputs_changed: bool, drift: bool = False) -> bool | None:
    """The ``changes`` of a DiffResult, so that ``preview --diff`` shows only what changed.

    Pulumi's Python dynamic providers cannot return the changed keys themselves, and
    without them the engine prints every input of an updated resource, changed or
    not. Answering "unknown" (None) when inputs changed makes the engine diff the old
    and new inputs itself and list only the changed keys (the replacement keys are
    still ours). Only when nothing but drift calls for an update is the answer True.
    """
    if inputs_changed:
        return None
    return bool(drift)


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
