"""Unit-test fixtures.

Unit tests build their fixture folders under pytest's temporary directory, outside the
working directory that ``mldeploy.paths`` takes for the project: allow it as a root, as a user
allows a directory with ``MLDEPLOY_ALLOWED_ROOTS``. Tests of containment itself unset it.

Unit tests see the default registry address (127.0.0.1:5000) whatever the caller's environment says: a setup
on another port (``MLDEPLOY_REGISTRY_PORT=5001 make setup``, two checkouts on one machine) must not change
what they expect. Tests that need another address set it themselves.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _allow_pytest_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("MLDEPLOY_ALLOWED_ROOTS", str(tmp_path_factory.getbasetemp()))


@pytest.fixture(autouse=True)
def _default_registry_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLDEPLOY_REGISTRY", raising=False)
    monkeypatch.delenv("MLDEPLOY_REGISTRY_PORT", raising=False)
