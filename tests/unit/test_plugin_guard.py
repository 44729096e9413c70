"""No `pulumi` command the project runs waits on a plugin download that cannot succeed.

Two guards, each checked here without the CLI:

- the environment: the language host (pulumi-language-python) reports a resource
  plugin for every installed package named ``pulumi-*`` or carrying a
  ``pulumi-plugin.json`` with ``"resource": true``, and the engine then tries to
  download each missing one (5 retries, about 2.5 s per command). mldeploy's
  programs need none (dynamic providers run in the language host), so the
  virtualenv the programs run in must hold no such package (the azure extra,
  pulumi-azure-native, lives in .venv-azure);
- the scripts: every script and Makefile target that runs pulumi does so under
  scripts/lib.sh, which sets PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
  (so a plugin a user adds to their own environment costs nothing either).
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUARD = "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"


def _plugin_packages() -> list[str]:
    """The installed distributions the language host (sdk/python/cmd/pulumi-language-python) reports as plugins."""
    found = []
    for dist in md.distributions():
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower()
        module = name.replace("-", "_")
        plugin_json = Path(str(dist.locate_file(module))) / "pulumi-plugin.json"
        if plugin_json.is_file():
            if json.loads(plugin_json.read_text()).get("resource", True):
                found.append(f"{name} ({plugin_json})")
        elif name.startswith("pulumi-") and name != "pulumi-policy":
            found.append(name)
    return sorted(set(found))


@pytest.mark.skipif(Path(sys.prefix).name == ".venv-azure", reason=".venv-azure holds the azure extra on purpose (stacks/azure)")
def test_the_programs_environment_requires_no_plugin() -> None:
    assert _plugin_packages() == [], (
        f"{sys.prefix} holds packages the Pulumi language host reports as required plugins; every pulumi command "
        "run with it would try to download them. Keep them out of .venv (the azure extra goes into .venv-azure)."
    )


def test_plugin_scan_sees_a_plugin_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan above is not vacuous: a fake pulumi-aws distribution on sys.path is reported."""
    info = tmp_path / "pulumi_aws-6.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pulumi_aws\nVersion: 6.0.0\n")
    (tmp_path / "pulumi_aws").mkdir()
    (tmp_path / "pulumi_aws" / "pulumi-plugin.json").write_text('{"resource": true, "name": "aws"}')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert any(p.startswith("pulumi-aws") for p in _plugin_packages())


def test_lib_sh_disables_automatic_plugin_acquisition() -> None:
    env = {k: v for k, v in os.environ.items() if k != GUARD}
    out = subprocess.run(["bash", "-c", f'source scripts/lib.sh && printf %s "${GUARD}"'], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout
    assert out == "true"


def _runs_pulumi(text: str) -> bool:
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return bool(re.search(r"(^|[\s;&|(`])pulumi\s", code, re.M))


def test_every_script_running_pulumi_sources_lib_sh() -> None:
    offenders = []
    for script in sorted((ROOT / "scripts").glob("*.sh")):
        if script.name == "lib.sh":
            continue
        text = script.read_text()
        if _runs_pulumi(text) and not re.search(r'^\s*source "\$\(dirname "\$0"\)/lib\.sh"', text, re.M):
            offenders.append(script.name)
    assert offenders == [], f"scripts running pulumi without `source \"$(dirname \"$0\")/lib.sh\"`: {offenders}"


def _recipes(makefile: str) -> list[tuple[str, str]]:
    """(target, logical recipe line) pairs; backslash continuations joined."""
    out: list[tuple[str, str]] = []
    target, pending = "", ""
    for line in makefile.splitlines():
        if pending:
            pending += " " + line.strip()
        elif line.startswith("\t"):
            pending = line.strip()
        else:
            if re.match(r"^[A-Za-z][\w.-]*:", line):
                target = line.split(":", 1)[0]
            continue
        if pending.endswith("\\"):
            pending = pending[:-1]
            continue
        out.append((target, pending))
        pending = ""
    return out


def test_every_makefile_target_running_pulumi_uses_lib_sh() -> None:
    """A recipe that runs pulumi, or a program or script that does, starts with $(ENV) (scripts/lib.sh)."""
    makefile = (ROOT / "Makefile").read_text()
    runners = ("scripts/demo.sh", "scripts/azure_smoke.sh", "scripts/preview_summary.py", "bench/run.py", "pytest")
    recipes = _recipes(makefile)
    assert ("test", next(r for t, r in recipes if t == "test")) in recipes  # the parser sees the recipes
    offenders = [
        f"{target}: {line}"
        for target, line in recipes
        if not line.lstrip("@").startswith("echo") and (_runs_pulumi(line) or any(r in line for r in runners))
        and not line.lstrip("@").startswith("$(ENV)")
    ]
    assert offenders == [], f"Makefile recipes running pulumi without $(ENV) first: {offenders}"
    assert re.search(r"^ENV := source scripts/lib\.sh &&", makefile, re.M)


def test_tests_and_bench_run_pulumi_under_the_guard() -> None:
    """Python code that starts pulumi passes os.environ on: tests/conftest.py and bench/run.py set the guard."""
    assert os.environ.get(GUARD) == "true"  # tests/conftest.py (or lib.sh before it)
    assert GUARD in (ROOT / "bench" / "run.py").read_text()


# -- SIGINT: a background job's pulumi would wait 5 s on every command -------------------------------------------
# Started in the background (`make test &`, nohup, some CI runners), a process has SIGINT ignored and passes that
# on through exec; pulumi's language host then ignores the CLI's request to stop and the CLI waits 5 s for it
# (measured: an empty program's preview 0.86 s -> 5.67 s). scripts/lib.sh and the Python callers undo it.


def _fake_pulumi(tmp_path: Path) -> Path:
    """A `pulumi` that prints the signals it was started with ignored (its /proc status)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "pulumi"
    fake.write_text("#!/bin/sh\nexec grep SigIgn /proc/self/status\n")
    fake.chmod(0o755)
    return bindir


def _pulumi_ignores_sigint(cmd: list[str]) -> bool:
    """Run ``cmd`` as a background job starts it (SIGINT ignored); whether the fake pulumi it runs ignores SIGINT."""
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)).stdout  # fmt: skip
    mask = int(out.split(":", 1)[1].strip(), 16)
    return bool(mask & (1 << (signal.SIGINT - 1)))


def test_lib_sh_runs_pulumi_with_sigint_at_its_default(tmp_path: Path) -> None:
    bindir = _fake_pulumi(tmp_path)
    assert _pulumi_ignores_sigint(["bash", "-c", f'PATH="{bindir}:$PATH"; pulumi'])  # what a background job does
    assert not _pulumi_ignores_sigint(["bash", "-c", f'source scripts/lib.sh && PATH="{bindir}:$PATH" && pulumi'])


def test_the_harness_runs_pulumi_with_sigint_at_its_default(tmp_path: Path) -> None:
    bindir = _fake_pulumi(tmp_path)
    run = f"import subprocess; subprocess.run([{str(bindir / 'pulumi')!r}])"
    assert _pulumi_ignores_sigint([sys.executable, "-c", run])
    assert not _pulumi_ignores_sigint([sys.executable, "-c", f"from tests.integration.harness import default_sigint; default_sigint(); {run}"])


# -- make setup's pulumi step sees an executable, never lib.sh's pulumi function --------------------------------


def _setup_tree(tmp_path: Path, pulumi_version: str | None) -> tuple[Path, dict[str, str]]:
    """A copy of scripts/setup.sh and lib.sh, a PATH of the few tools the pulumi step uses, a `go` that fails,
    and (if given) an executable `pulumi` that reports ``pulumi_version``."""
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    for name in ("setup.sh", "lib.sh"):
        (root / "scripts" / name).write_text((ROOT / "scripts" / name).read_text())
    for mod in ("tools/pulumi/go.mod", "tools/pulumi/go.sum", "tools/pulumi-language-python/go.mod"):
        (root / mod).parent.mkdir(parents=True, exist_ok=True)
        (root / mod).write_text("module example\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("bash", "env", "cat", "sha256sum", "cut", "sed", "sort", "head", "mkdir", "chmod", "find",
                 "dirname", "true"):
        path = shutil.which(tool)
        assert path, tool
        (bindir / tool).symlink_to(path)
    (bindir / "go").write_text("#!/bin/sh\necho 'go: no module proxy in this test' >&2\nexit 1\n")
    (bindir / "go").chmod(0o755)
    if pulumi_version:
        (bindir / "pulumi").write_text(f"#!/bin/sh\necho v{pulumi_version}\n")
        (bindir / "pulumi").chmod(0o755)
    env = {"PATH": str(bindir), "HOME": str(tmp_path), "MLDEPLOY_HOME": str(tmp_path / "home")}
    return root, env


def test_setup_builds_pulumi_when_none_is_installed(tmp_path: Path) -> None:
    """A fresh machine has no pulumi executable; lib.sh's `pulumi` function must not pass for one (CI failed on
    exactly this with exit 127: `command -v pulumi` named the function, which then found no executable)."""
    root, env = _setup_tree(tmp_path, None)
    run = subprocess.run(["bash", str(root / "scripts" / "setup.sh"), "pulumi"], cwd=root, env=env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    assert "building the Pulumi CLI" in run.stdout, run.stdout
    assert 'setup step "pulumi" failed: go build of the Pulumi CLI failed' in run.stderr, run.stderr


@pytest.mark.parametrize(("version", "said"), [("3.259.0", "using "), ("3.100.0", "ignoring ")])
def test_setup_uses_an_installed_pulumi_only_if_new_enough(tmp_path: Path, version: str, said: str) -> None:
    root, env = _setup_tree(tmp_path, version)
    run = subprocess.run(["bash", str(root / "scripts" / "setup.sh"), "pulumi"], cwd=root, env=env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert f"  {said}{tmp_path / 'bin' / 'pulumi'} (v{version})" in run.stdout, run.stdout + run.stderr
    assert run.returncode == (0 if said == "using " else 1), run.stdout + run.stderr
