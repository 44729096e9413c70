"""Shared test configuration: the environment scripts/lib.sh sets, for tests run outside make."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import default_sigint

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


# -- where the time goes: every `pulumi` command the harness runs, summed up at the end ---------------------------
def pytest_configure(config: pytest.Config) -> None:
    """The first process (xdist's controller, or the only one) makes the directory the harness appends
    command times to; xdist's workers, started after this, inherit it through the environment. Every
    process gives the pulumi commands it starts SIGINT at its default (``harness.default_sigint``)."""
    default_sigint()
    if not hasattr(config, "workerinput") and not os.environ.get("MLDEPLOY_TEST_TIMES"):
        os.environ["MLDEPLOY_TEST_TIMES"] = tempfile.mkdtemp(prefix="mldeploy-test-times-")
        config.stash[_TIMES_KEY] = os.environ["MLDEPLOY_TEST_TIMES"]


_TIMES_KEY = pytest.StashKey[str]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    where = config.stash.get(_TIMES_KEY, None) or os.environ.get("MLDEPLOY_TEST_TIMES")
    if where is None or hasattr(config, "workerinput"):
        return
    rows = [json.loads(line) for f in Path(where).glob("*.jsonl") for line in f.read_text().splitlines() if line]
    if config.stash.get(_TIMES_KEY, None):  # ours: removed; one the caller named (MLDEPLOY_TEST_TIMES) is kept
        shutil.rmtree(where, ignore_errors=True)
    if not rows:
        return
    by_verb: dict[str, list[float]] = defaultdict(list)
    by_test: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        by_verb[r["verb"]].append(r["seconds"])
        by_test[r["test"]].append(r["seconds"])
    tr = terminalreporter
    tr.write_sep("=", f"time in pulumi commands: {len(rows)} commands, {sum(r['seconds'] for r in rows):.0f} s in all")
    for verb, secs in sorted(by_verb.items(), key=lambda kv: -sum(kv[1])):
        tr.write_line(f"{sum(secs):8.1f} s  {len(secs):4d} x {verb:<8} median {statistics.median(secs):5.2f} s, max {max(secs):6.1f} s")
    tr.write_line("tests that spent the most in pulumi commands:")
    for test, secs in sorted(by_test.items(), key=lambda kv: -sum(kv[1]))[:15]:
        tr.write_line(f"{sum(secs):8.1f} s  {len(secs):4d} commands  {test}")
