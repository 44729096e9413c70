"""A Pulumi project in a temporary directory, driven through the real `pulumi` CLI.

Every integration test writes a small program, then runs up / preview /
refresh / destroy on it exactly as a user would, against the local file
backend, and reads what the CLI prints or exports.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Where every `pulumi` command's wall time is appended (tests/conftest.py sets it and sums it up at the end).
TIMES_DIR = "MLDEPLOY_TEST_TIMES"


def record_time(verb: str, seconds: float) -> None:
    """Append one command's wall time, with the test that ran it, to this process's file in $MLDEPLOY_TEST_TIMES."""
    where = os.environ.get(TIMES_DIR)
    if not where:
        return
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0]
    with open(Path(where) / f"{os.getpid()}.jsonl", "a") as f:
        f.write(json.dumps({"test": test, "verb": verb, "seconds": round(seconds, 3), "ended": round(time.time(), 1)}) + "\n")


def default_sigint() -> None:
    """Give every ``pulumi`` this process starts SIGINT at its default, whatever this process inherited.

    Started in the background (``make test &``, nohup, some CI runners), a process inherits SIGINT
    ignored, and so would pulumi and its language host, which then ignores the CLI's request to stop:
    the CLI waits 5 s for it on every preview, up, refresh and destroy (README "Running pulumi by
    hand"). A Python handler is reset to the default by exec, an ignored signal is not, so this installs
    Python's own handler (Ctrl-C raises KeyboardInterrupt, as usual). ``tests/conftest.py`` calls it in
    every pytest process; ``bench/run.py`` and ``scripts/preview_summary.py`` do the same.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


class PulumiFailed(AssertionError):
    pass


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Project:
    """A throwaway Pulumi project with one stack."""

    dir: Path
    name: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}")
    stack: str = "test"
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    def __post_init__(self) -> None:
        # Tests keep their fixture folders beside the project, under pytest's tmp directory, and use the
        # repository's stacks/: allow both, as a user would with MLDEPLOY_ALLOWED_ROOTS (mldeploy.paths).
        # Containment tests pass their own (empty) value.
        self.env.setdefault("MLDEPLOY_ALLOWED_ROOTS", os.pathsep.join([str(self.dir.parent.parent), str(Path(__file__).resolve().parents[2])]))
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "Pulumi.yaml").write_text(f"name: {self.name}\nruntime: python\n")
        self.pulumi("stack", "init", self.stack)

    def write(self, program: str) -> "Project":
        (self.dir / "__main__.py").write_text(textwrap.dedent(program))
        return self

    def pulumi(self, *args: str, check: bool = True, timeout: float = 900) -> Result:
        cmd = ["pulumi", *args, "--non-interactive", "--cwd", str(self.dir)]
        started = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=timeout)
        record_time(args[0], time.monotonic() - started)
        res = Result(cmd, proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise PulumiFailed(f"{' '.join(cmd)} exited {proc.returncode}\n{res.output[-6000:]}")
        return res

    def up(self, check: bool = True) -> Result:
        return self.pulumi("up", "--yes", "--skip-preview", "--diff", check=check)

    def preview(self, check: bool = True) -> Result:
        return self.pulumi("preview", "--diff", check=check)

    def preview_json(self) -> dict[str, Any]:
        res = self.pulumi("preview", "--json")
        data: dict[str, Any] = json.loads(res.stdout)
        return data

    def ops(self) -> dict[str, str]:
        """What a preview would change, by resource name: 'create', 'update', 'replace', 'delete', ...

        Resources that would stay the same are left out, so ``{}`` means "no changes".
        """
        out: dict[str, str] = {}
        for step in self.preview_json().get("steps", []):
            if step["op"] == "same":
                continue
            urn = step["urn"]
            if "::pulumi:pulumi:Stack::" in urn:
                continue
            name = urn.rsplit("::", 1)[-1]
            op = step["op"]
            out[name] = "replace" if op in ("create-replacement", "delete-replaced") else op
        return out

    def refresh(self, check: bool = True) -> Result:
        return self.pulumi("refresh", "--yes", "--skip-preview", check=check)

    def destroy(self, check: bool = True) -> Result:
        return self.pulumi("destroy", "--yes", "--skip-preview", check=check)

    def outputs(self) -> dict[str, Any]:
        res = self.pulumi("stack", "output", "--json", "--show-secrets")
        data: dict[str, Any] = json.loads(res.stdout)
        return data

    def export(self) -> str:
        return self.pulumi("stack", "export").stdout

    def config(self, key: str, value: str, secret: bool = False) -> None:
        self.pulumi("config", "set", key, value, *(["--secret"] if secret else []))

    def cleanup(self) -> None:
        if self._holds_resources():
            self.pulumi("destroy", "--yes", "--skip-preview", check=False)
        self.pulumi("stack", "rm", "--yes", "--force", self.stack, check=False)

    def _holds_resources(self) -> bool:
        """Whether the stack's state may hold anything besides the stack itself: ``False`` only when the file
        backend's checkpoint says so. Most tests end with their own destroy; a second one cost about 2 s each
        (43 of them, 100 s of a run)."""
        url = self.env.get("PULUMI_BACKEND_URL", "")
        if not url.startswith("file://"):
            return True
        checkpoint = Path(url[len("file://") :]) / ".pulumi" / "stacks" / self.name / f"{self.stack}.json"
        try:
            latest = json.loads(checkpoint.read_text())["checkpoint"].get("latest") or {}
        except (OSError, ValueError, KeyError, AttributeError):
            return True
        others = [r for r in latest.get("resources") or [] if r.get("type") != "pulumi:pulumi:Stack"]
        return bool(others or latest.get("pending_operations"))
