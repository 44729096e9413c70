"""Record real `pulumi preview --json` outputs as fixtures for tests/unit/test_preview_summary.py.

Set MLDEPLOY_RECORD_PREVIEWS=1 when running an integration test that calls
``record``: the preview it ran is written to tests/unit/data/preview/<name>.json
trimmed of stack traces (``stackTrace``, ``sourcePosition``) and with machine
paths replaced (the test's temporary directories by /home/ci/<name>,
$MLDEPLOY_HOME by /home/ci/.mldeploy), as the earlier recordings were.
Nothing else is edited.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1] / "unit" / "data" / "preview"


def record(name: str, data: dict[str, Any], paths: dict[str, str]) -> None:
    if os.environ.get("MLDEPLOY_RECORD_PREVIEWS") != "1":
        return
    text = json.dumps(trim(data), indent=1)
    for real, shown in sorted(paths.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(real, shown)
    (DATA / f"{name}.json").write_text(text + "\n")


def trim(o: Any) -> Any:
    """The JSON without the program's stack traces (paths into this machine's virtualenv)."""
    if isinstance(o, dict):
        return {k: trim(v) for k, v in o.items() if k not in ("stackTrace", "sourcePosition")}
    if isinstance(o, list):
        return [trim(v) for v in o]
    return o


if __name__ == "__main__":  # python -m tests.integration.recording NAME < preview.json
    import sys

    os.environ["MLDEPLOY_RECORD_PREVIEWS"] = "1"
    record(sys.argv[1], json.load(sys.stdin), {})
