"""Shared test configuration: the environment scripts/lib.sh sets, for tests run outside make."""

from __future__ import annotations

import os
import sys
from pathlib import Path

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
