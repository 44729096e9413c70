#!/usr/bin/env python3
"""Summarise `pulumi preview --diff --json` as short Markdown for a pull-request comment.

    python scripts/preview_summary.py --cwd stacks/demo --stack local [--output preview.md]
    python scripts/preview_summary.py --json recorded-preview.json        # no engine: a saved preview

Runs `pulumi preview --diff --json --non-interactive` (unless --json is given),
prints the summary on stdout (and writes it to --output), one line per
resource that would change, with its operation and the inputs that caused it:

    - BaseImage `demo-base`: update, context digest changed
    - InferenceDeployment `demo-deployment`: update, base image changed (known after apply)

Only input *names* are printed, never values, so the summary is safe to post
publicly even when inputs are secrets.

Exit status (what CI branches on):
    0  the preview succeeded and nothing would change
    2  the preview succeeded and something would change (create, update, replace, delete)
    1  the preview failed (program error, invalid input, engine error); the summary says why

Where the reasons come from, in Pulumi 3.259's JSON: a step's ``replaceReasons``
(inputs that force a replacement), then ``diffReasons`` / ``detailedDiff``
when the provider reports them; mldeploy's dynamic providers report only
replacements, so for everything else the reasons are the top-level inputs that
differ between the step's ``oldState.inputs`` and ``newState.inputs``.
Secret inputs appear as ``[secret]`` on both sides, so a change to a secret
alone shows as a change with no named input.

An InferenceDeployment's ``environment`` input (the lock's summary: digest,
wheel count and the version of each package the conda file or the base image
names) is spelled out package by package:

    - InferenceDeployment `svc`: update, environment changed: joblib 1.5.1 -> 1.5.0

Package names and versions are not secrets.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARKER = "<!-- mldeploy-preview-summary -->"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # Pulumi's "known after apply" sentinel
NO_CHANGE_OPS = {"same", "read", "refresh"}
REPLACE_OPS = {"replace", "create-replacement", "delete-replaced", "discard-replaced", "import-replacement"}
# When one resource has several steps (a replacement is create-replacement +
# delete-replaced + replace), the first of these names it.
OP_RANK = ["replace", "delete", "update", "create", "import", "discard"]
IGNORED_INPUTS = {"__provider"}

# Input names -> readable phrases; anything else is "<name with spaces> changed".
PHRASES = {
    "context_digest": "context digest changed",
    "source_digest": "source digest changed",
    "digest": "model digest changed",
    "inference": "inference config changed",
    "deployment": "deployment config changed",
    "models": "model versions changed",
    "base_image": "base image changed",
    "environment": "environment changed",
    "base_registry_password": "base image registry password changed",
    "build_args": "build args changed",
    "registry_address": "registry address changed",
    "rotate_on": "rotate_on changed (secret rotation)",
    "expires_in_days": "expiry changed (secret rotation)",
}


@dataclass
class Change:
    type: str  # short type, e.g. "BaseImage"
    name: str
    op: str  # create, update, replace, delete, ...
    reasons: list[str] = field(default_factory=list)

    def line(self) -> str:
        why = ", ".join(self.reasons)
        return f"- {self.type} `{self.name}`: {self.op}" + (f", {why}" if why else "")


@dataclass
class Summary:
    project: str | None
    stack: str | None
    changes: list[Change]
    counts: dict[str, int]
    errors: list[str]

    @property
    def failed(self) -> bool:
        return bool(self.errors)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes) or any(op not in NO_CHANGE_OPS and n for op, n in self.counts.items())

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 2 if self.has_changes else 0

    def markdown(self) -> str:
        where = " / ".join(f"`{p}`" for p in (self.project, self.stack) if p)
        out = [MARKER, f"### Pulumi preview{': ' + where if where else ''}", ""]
        if self.failed:
            out += ["**Preview failed.**", ""]
            for err in self.errors:
                lines = err.strip().splitlines()
                if len(lines) > 25:  # a traceback's point is at its end
                    lines = [lines[0], f"... ({len(lines) - 24} lines)", *lines[-23:]]
                out += ["```", *lines, "```", ""]
            return "\n".join(out).rstrip() + "\n"
        unchanged = sum(n for op, n in self.counts.items() if op in NO_CHANGE_OPS)
        if not self.has_changes:
            out.append(f"No changes ({unchanged} resources unchanged).")
            return "\n".join(out) + "\n"
        by_op: dict[str, int] = {}
        for c in self.changes:
            by_op[c.op] = by_op.get(c.op, 0) + 1
        tally = ", ".join(f"{n} to {op}" for op, n in sorted(by_op.items(), key=lambda kv: _rank(kv[0])))
        out.append(f"{tally or 'stack changes only'}; {unchanged} unchanged.")
        out.append("")
        out += [c.line() for c in self.changes]
        return "\n".join(out) + "\n"


def _rank(op: str) -> int:
    return OP_RANK.index(op) if op in OP_RANK else len(OP_RANK)


def phrase(key: str, new_value: Any = None, old_value: Any = None) -> str:
    text = PHRASES.get(key) or f"{key.replace('_', ' ')} changed"
    if _is_unknown(new_value):
        text += " (known after apply)"
    elif key == "environment":
        text += _environment_changes(old_value, new_value)
    return text


def _environment_changes(old: Any, new: Any) -> str:
    """``: numpy 2.3.1 -> 2.3.2, + six 1.17.0`` from two environment summaries (``{"packages": {name: version}, ...}``)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return ""
    a, b = old.get("packages") or {}, new.get("packages") or {}
    parts = [f"{n} {a[n]} -> {b[n]}" for n in sorted(set(a) & set(b)) if a[n] != b[n]]
    parts += [f"+ {n} {b[n]}" for n in sorted(set(b) - set(a))]
    parts += [f"- {n} {a[n]}" for n in sorted(set(a) - set(b))]
    if not parts and old.get("python") != new.get("python"):
        parts.append(f"Python {old.get('python')} -> {new.get('python')}")
    if not parts and old.get("digest") != new.get("digest"):
        parts.append("dependencies of the named packages")
    return (": " + ", ".join(parts)) if parts else ""


def _is_unknown(value: Any) -> bool:
    if value == UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(_is_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(_is_unknown(v) for v in value)
    return False


def _top(key: str) -> str:
    """The top-level input of a property path: 'tags.team' -> 'tags', 'models[0]' -> 'models'."""
    for sep in (".", "["):
        key = key.split(sep, 1)[0]
    return key


def _unique(keys: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for k in keys:
        k = _top(k)
        if k and k not in seen and k not in IGNORED_INPUTS:
            seen.append(k)
    return seen


def _short_type(type_token: str) -> str:
    # "pulumi-python:dynamic/mldeploy:BaseImage" -> "BaseImage"; "mldeploy:index:ModelService" -> "ModelService"
    return type_token.rsplit(":", 1)[-1].rsplit("/", 1)[-1]


def _reasons(steps: list[dict[str, Any]], op: str) -> list[str]:
    replace_keys: list[str] = []
    diff_keys: list[str] = []
    old_inputs: dict[str, Any] = {}
    new_inputs: dict[str, Any] = {}
    for s in steps:
        replace_keys += s.get("replaceReasons") or []
        diff_keys += s.get("diffReasons") or []
        diff_keys += list((s.get("detailedDiff") or {}).keys())
        old_inputs = old_inputs or ((s.get("oldState") or {}).get("inputs") or {})
        new_inputs = new_inputs or ((s.get("newState") or {}).get("inputs") or {})
    if op in ("create", "delete", "import"):
        return []
    computed = [k for k in sorted(set(old_inputs) | set(new_inputs)) if old_inputs.get(k) != new_inputs.get(k)]
    keys = _unique(replace_keys + diff_keys + computed)
    if not keys:
        return ["no input changed (the provider reports drift)"] if op == "update" else []
    return [phrase(k, new_inputs.get(k), old_inputs.get(k)) for k in keys]


def summarise(data: dict[str, Any], errors: Iterable[str] = ()) -> Summary:
    """The summary of one `pulumi preview --json` document."""
    steps = data.get("steps") or []
    project = stack = None
    grouped: dict[str, list[dict[str, Any]]] = {}
    for s in steps:
        urn = s.get("urn", "")
        parts = urn.split("::")
        if len(parts) >= 4 and project is None:
            stack, project = parts[0].rsplit(":", 1)[-1], parts[1]
        grouped.setdefault(urn, []).append(s)

    changes: list[Change] = []
    for urn, group in grouped.items():
        ops = {("replace" if s.get("op") in REPLACE_OPS else s.get("op", "")) for s in group} - NO_CHANGE_OPS
        if not ops:
            continue
        parts = urn.split("::")
        type_token, name = (parts[2], parts[3]) if len(parts) >= 4 else ("", urn)
        type_token = type_token.rsplit("$", 1)[-1]  # a child's type is "parent$child"
        if type_token == "pulumi:pulumi:Stack" or type_token.startswith("pulumi:providers:"):
            continue
        op = min(ops, key=_rank)
        changes.append(Change(_short_type(type_token), name, op, _reasons(group, op)))
    changes.sort(key=lambda c: (_rank(c.op), c.type, c.name))

    errs = list(errors)
    for d in data.get("diagnostics") or []:
        if d.get("severity") == "error":
            errs.append(d.get("message", "").removeprefix("error: "))
    return Summary(project, stack, changes, dict(data.get("changeSummary") or {}), errs)


def run_preview(cwd: str | None, stack: str | None, extra: list[str]) -> tuple[dict[str, Any], list[str]]:
    cmd = ["pulumi", "preview", "--diff", "--json", "--non-interactive"]
    if cwd:
        cmd += ["--cwd", cwd]
    if stack:
        cmd += ["--stack", stack]
    cmd += extra
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError:
        return {}, ["`pulumi` is not on PATH (source scripts/lib.sh, or install the Pulumi CLI)"]
    errors: list[str] = []
    try:
        data = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except json.JSONDecodeError:
        data = {}
        errors.append(f"pulumi printed no JSON:\n{proc.stdout[-3000:]}")
    if proc.returncode != 0:
        has_diag = any(d.get("severity") == "error" for d in data.get("diagnostics") or [])
        if not has_diag:
            errors.append(f"`{' '.join(cmd)}` exited {proc.returncode}:\n{proc.stderr.strip()[-3000:]}")
    return data, errors


def main(argv: list[str] | None = None) -> int:
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # Started in the background, SIGINT is ignored and pulumi would inherit that: it then waits 5 s for
        # a language host that ignores the CLI (tests/integration/harness.default_sigint).
        signal.signal(signal.SIGINT, signal.default_int_handler)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--cwd", help="the Pulumi project's directory (default: the current directory)")
    ap.add_argument("--stack", help="the stack to preview (default: the selected stack)")
    ap.add_argument("--json", dest="json_file", help="summarise this saved `pulumi preview --json` output ('-' for stdin) instead of running pulumi")
    ap.add_argument("--output", help="also write the Markdown here")
    ap.add_argument("pulumi_args", nargs="*", help="more arguments for pulumi preview, after --")
    args = ap.parse_args(argv)

    if args.json_file:
        text = sys.stdin.read() if args.json_file == "-" else Path(args.json_file).read_text()
        data, errors = json.loads(text), []
    else:
        data, errors = run_preview(args.cwd, args.stack, args.pulumi_args)
    summary = summarise(data, errors)
    if summary.stack is None and args.stack:
        summary.stack = args.stack
    md = summary.markdown()
    sys.stdout.write(md)
    if args.output:
        Path(args.output).write_text(md)
    if summary.failed:
        first = (summary.errors[0].strip().splitlines() or [""])[0]
        print(f"preview failed: {first}", file=sys.stderr)
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main())
