"""Shared test configuration: the environment scripts/lib.sh sets, for tests run outside make."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lib_env() -> None:
    home = os.environ.setdefault("MLDEPLOY_HOME", str(ROOT / ".mldeploy"))
    port = os.environ.setdefault("MLDEPLOY_REGISTRY_PORT", "5000")
    os.environ.setdefault("MLDEPLOY_REGISTRY", f"127.0.0.1:{port}")
    os.environ.setdefault("PULUMI_BACKEND_URL", f"file://{home}/pulumi")
    passphrase = Path(os.environ.get("MLDEPLOY_PASSPHRASE_FILE", f"{home}/pulumi/passphrase"))
    if "PULUMI_CONFIG_PASSPHRASE" not in os.environ and not os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE"):
        if passphrase.exists():  # the per-machine passphrase `make setup` wrote
            os.environ["PULUMI_CONFIG_PASSPHRASE_FILE"] = str(passphrase)
        else:  # a state directory from before it (see README: the passphrase)
            os.environ["PULUMI_CONFIG_PASSPHRASE"] = "mldeploy-demo"
    os.environ["PULUMI_SKIP_UPDATE_CHECK"] = "1"
    os.environ.setdefault("PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION", "true")
    path = os.environ.get("PATH", "")
    # The virtualenv running the tests (.venv, or .venv-azure for the azure unit tests) runs their programs too.
    prefix = f"{Path(sys.prefix) / 'bin'}:{ROOT / '.tools' / 'bin'}"
    if not path.startswith(prefix):
        os.environ["PATH"] = f"{prefix}:{path}"


_lib_env()


# -- make test: pytest-xdist workers ---------------------------------------------------------------------------
#: Integration modules whose tests share nothing but session fixtures (each test has its own port and names):
#: their tests are spread over the workers one by one. Every other module runs whole on one worker (its tests
#: share ports, module fixtures or an order), and every test of the embedded cluster (named "kubernetes")
#: runs on one worker, in turn: they add and remove the cluster's second node.
SPLIT_MODULES = {"tests/integration/test_samples.py", "tests/integration/test_swarm.py"}

#: The longest groups are handed out first, so that none is left to start when the other workers are done;
#: then the other integration modules, then the unit tests, in pytest's order.
LONGEST_FIRST = [
    "kubernetes",
    "tests/integration/test_swarm.py",
    "tests/integration/test_interruption.py",
    "tests/integration/test_samples.py",
    "tests/integration/test_security.py",
    "tests/integration/test_base_image.py",
]


def work_unit(nodeid: str) -> str:
    """The unit of work a test belongs to: its tests run on one worker, one after the other."""
    module = nodeid.split("::", 1)[0]
    if not module.startswith("tests/integration/"):
        return module
    if "kubernetes" in nodeid:
        return "kubernetes"
    return nodeid if module in SPLIT_MODULES else module


def _rank(item: pytest.Item) -> int:
    group = work_unit(item.nodeid)
    family = group if group == "kubernetes" else group.split("::", 1)[0]
    if family in LONGEST_FIRST:
        return LONGEST_FIRST.index(family)
    return len(LONGEST_FIRST) + (0 if family.startswith("tests/integration/") else 1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_rank)  # stable: pytest's order within a rank


if importlib.util.find_spec("xdist") is not None:

    def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
        """``--dist loadgroup`` with the groups of ``work_unit`` (pytest 9 ignores xdist's own xdist_group marks:
        they rename ``item._nodeid``, which no longer changes ``item.nodeid``)."""
        if config.getvalue("dist") != "loadgroup":
            return None
        from xdist.scheduler import LoadScopeScheduling

        class GroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
            def _split_scope(self, nodeid: str) -> str:
                return work_unit(nodeid)

        return GroupScheduling(config, log)
