"""Provider helpers: unknowns as the engine hands them over, diffs."""

from __future__ import annotations

from mldeploy.resources._common import diff, is_unknown
from pulumi.output import Unknown
from pulumi.runtime.rpc import UNKNOWN


def test_unknowns_in_both_forms_and_nested() -> None:
    assert is_unknown(Unknown()) and is_unknown(UNKNOWN)
    assert is_unknown({"a": [1, Unknown()]})
    assert not is_unknown({"a": [1, "x"]}) and not is_unknown(None)


def test_diff_unknown_counts_as_changed() -> None:
    d = diff({"a": 1, "b": 2}, {"a": Unknown(), "b": 2}, replace_keys=["a"], update_keys=["b"])
    assert d.changes is None and d.replaces == ["a"]  # "unknown": the engine diffs the inputs and shows only changed keys
    d = diff({"a": 1, "b": 2}, {"a": 1, "b": 2}, replace_keys=["a"], update_keys=["b"])
    assert d.changes is False and d.replaces == []


def test_drift_alone_is_a_definite_change() -> None:
    d = diff({"a": 1}, {"a": 1}, replace_keys=[], update_keys=["a"], drift=True)
    assert d.changes is True
