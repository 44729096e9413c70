"""The local target's swap: when stopping the previous container can reset a queued request, and what to set."""

from __future__ import annotations

from pathlib import Path

import pytest
from mldeploy.backends import docker_runtime as rt


@pytest.mark.parametrize(
    ("value", "words"),
    [("1\n", None), ("0\n", "sysctl -w net.ipv4.tcp_migrate_req=1"), (None, "Linux < 5.14")],
    ids=["migrating", "not set", "old kernel"],
)
def test_a_swap_says_when_queued_requests_could_be_reset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str | None, words: str | None) -> None:
    setting = tmp_path / "tcp_migrate_req"
    if value is not None:
        setting.write_text(value)
    monkeypatch.setattr(rt, "MIGRATE_REQ", setting)
    why = rt.swap_resets_queued_connections()
    if words is None:
        assert why is None
    else:
        assert why is not None and words in why and "reset" in why
