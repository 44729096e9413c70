"""scripts/preview_summary.py on `pulumi preview --diff --json` output recorded from Pulumi 3.259.

The recordings (tests/unit/data/preview/) are real previews of the consumer
stack and of a one-ServicePrincipal program, trimmed of stack traces and with
machine paths replaced; tests/integration/test_consumer.py checks the same
script against a live engine.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data" / "preview"
SCRIPT = ROOT / "scripts" / "preview_summary.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("preview_summary", SCRIPT)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["preview_summary"] = mod
    spec.loader.exec_module(mod)
    return mod


ps = _load()


def recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    return data


def run(name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), "--json", str(DATA / f"{name}.json")], capture_output=True, text=True)


def test_dockerfile_edit_names_resource_operation_and_input() -> None:
    s = ps.summarise(recorded("consumer_dockerfile_edit"))
    lines = s.markdown().splitlines()
    assert "- BaseImage `consumer-base`: update, context digest changed" in lines
    # The deployment's base image is the BaseImage's output: unknown until the build runs.
    dep = next(line for line in lines if line.startswith("- InferenceDeployment `consumer-deployment`: update"))
    assert "base image changed (known after apply)" in dep
    assert "2 to update; 5 unchanged." in lines
    assert (s.project, s.stack, s.exit_code) == ("mldeploy-consumer", "w7", 2)


def test_score_edit_is_one_update_for_its_source() -> None:
    s = ps.summarise(recorded("consumer_score_edit"))
    assert [c.line() for c in s.changes] == ["- InferenceDeployment `consumer-deployment`: update, source digest changed"]


def test_replacement_lists_replace_reasons_first() -> None:
    s = ps.summarise(recorded("sp_replace"))
    assert [c.line() for c in s.changes] == ["- ServicePrincipal `pull`: replace, role changed, display name changed"]
    assert s.exit_code == 2


def test_update_reason_computed_from_inputs_when_provider_gives_none() -> None:
    data = recorded("sp_update")
    step = next(s for s in data["steps"] if s["op"] == "update")
    assert not step.get("diffReasons") and not step.get("detailedDiff")  # what 3.259 emits for dynamic providers
    assert [c.line() for c in ps.summarise(data).changes] == ["- ServicePrincipal `pull`: update, display name changed"]


def test_first_deploy_lists_every_resource_as_create_without_reasons() -> None:
    s = ps.summarise(recorded("consumer_create"))
    assert {(c.type, c.name, c.op) for c in s.changes} == {
        ("ModelService", "consumer", "create"),
        ("ModelVersion", "consumer-wine", "create"),
        ("ServicePrincipal", "consumer-push", "create"),
        ("ServicePrincipal", "consumer-pull", "create"),
        ("BaseImage", "consumer-base", "create"),
        ("InferenceDeployment", "consumer-deployment", "create"),
    }
    assert all(c.reasons == [] for c in s.changes)


def test_delete_and_replacement_steps_are_grouped_per_resource() -> None:
    urn = "urn:pulumi:dev::proj::mldeploy:index:ModelService$pulumi-python:dynamic/mldeploy:BaseImage::svc-base"
    gone = "urn:pulumi:dev::proj::pulumi-python:dynamic/mldeploy:ServicePrincipal::old"
    data = {
        "steps": [
            {"op": "create-replacement", "urn": urn, "replaceReasons": ["repository"]},
            {"op": "replace", "urn": urn, "replaceReasons": ["repository"]},
            {"op": "delete-replaced", "urn": urn},
            {"op": "delete", "urn": gone, "oldState": {"inputs": {"role": "AcrPull"}}},
        ],
        "changeSummary": {"replace": 1, "delete": 1, "same": 3},
    }
    s = ps.summarise(data)
    assert [c.line() for c in s.changes] == [
        "- BaseImage `svc-base`: replace, repository changed",
        "- ServicePrincipal `old`: delete",
    ]
    assert "1 to replace, 1 to delete; 3 unchanged." in s.markdown()


def test_secrets_and_values_never_reach_the_summary() -> None:
    data = recorded("sp_update")
    step = next(s for s in data["steps"] if s["op"] == "update")
    step["newState"]["inputs"]["password"] = "hunter2-very-secret"
    md = ps.summarise(data).markdown()
    assert "password changed" in md and "hunter2" not in md and "w7-renamed" not in md


def test_no_changes_exits_0() -> None:
    res = run("sp_same")
    assert res.returncode == 0, res.stderr
    assert "No changes (2 resources unchanged)." in res.stdout


def test_changes_exit_2_and_output_file(tmp_path: Path) -> None:
    out = tmp_path / "preview.md"
    res = subprocess.run([sys.executable, str(SCRIPT), "--json", str(DATA / "consumer_dockerfile_edit.json"), "--output", str(out)], capture_output=True, text=True)
    assert res.returncode == 2, res.stderr
    assert out.read_text() == res.stdout
    assert out.read_text().startswith(ps.MARKER)


@pytest.mark.parametrize(
    "name, message",
    [
        ("sp_check_error", "unknown role 'Bogus'; valid roles: AcrPull, AcrPush"),
        ("program_error", 'RuntimeError("boom")'),
        ("consumer_port_error", "port 18895 is in use"),
    ],
)
def test_failed_preview_exits_1_with_the_error(name: str, message: str) -> None:
    res = run(name)
    assert res.returncode == 1
    assert "**Preview failed.**" in res.stdout and message in res.stdout
    assert res.stderr.startswith("preview failed: ")



def test_check_failure_reads_as_a_sentence_naming_the_input() -> None:
    """Recorded from the real engine: the failure names the input first, with no `property ... value {...}` prefix."""
    res = run("sp_check_error")
    assert "ServicePrincipal resource 'pull' has a problem: role: unknown role 'Bogus'" in res.stdout
    assert "value {" not in res.stdout


def test_pin_bump_names_the_changed_package() -> None:
    """Recorded (tests/integration/test_environment.py): joblib==1.5.1 -> 1.5.0 in the conda file (inside src/)."""
    data = recorded("env_pin_bump")
    step = next(s for s in data["steps"] if s["op"] == "update")
    assert step["diffReasons"] == ["environment", "source_digest"]  # the engine lists only the changed inputs
    assert [c.line() for c in ps.summarise(data).changes] == [
        "- InferenceDeployment `svc`: update, environment changed: joblib 1.5.1 -> 1.5.0, source digest changed"
    ]
