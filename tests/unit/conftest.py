"""Unit-test fixtures.

Unit tests build their fixture folders under pytest's temporary directory, outside the
working directory that ``mldeploy.paths`` takes for the project: allow it as a root, as a user
allows a directory with ``MLDEPLOY_ALLOWED_ROOTS``. Tests of containment itself unset it.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _allow_pytest_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("MLDEPLOY_ALLOWED_ROOTS", str(tmp_path_factory.getbasetemp()))
