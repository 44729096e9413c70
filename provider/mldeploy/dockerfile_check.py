"""A Dockerfile's syntax, checked at preview the way Docker's parser reads it, so a typo fails before anything is created.

Docker reads a Dockerfile as logical lines: parser directives (``# escape=`` and
``# syntax=``) at the very top, comment lines dropped (also inside a
continuation), lines joined where one ends with the escape character
(``\\`` or the ``escape`` directive's), heredoc bodies (``RUN <<EOF`` ... ``EOF``)
taken as they are. Each logical line starts with an instruction keyword
(case-insensitive); only ``ARG`` may come before the first ``FROM``; ``ONBUILD``
takes an instruction other than ``ONBUILD``, ``FROM`` and ``MAINTAINER``. The
error has Docker's wording (``dockerfile parse error on line N: unknown
instruction: RUNN``) plus the file and the fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ValidationError

INSTRUCTIONS = frozenset(
    [
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "FROM",
        "HEALTHCHECK",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    ]
)
NEEDS_ARGS = INSTRUCTIONS - {"HEALTHCHECK"}  # HEALTHCHECK NONE is the only bare-ish form; it still has an argument
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_HEREDOC = re.compile(r"<<(-?)\s*([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")


@dataclass(frozen=True)
class Instruction:
    line: int  # where it starts, 1-based
    keyword: str  # upper case
    args: str


def _continues(line: str, escape: str) -> bool:
    """A line ends in an odd run of escape characters (``a\\\\`` ends in an escaped escape: no continuation)."""
    return (len(line) - len(line.rstrip(escape))) % 2 == 1


def instructions(text: str) -> list[Instruction]:
    """The logical instructions of a Dockerfile; raises ``ValueError('line N: ...')`` on what Docker refuses."""
    lines = text.splitlines()
    escape = "\\"
    i = 0
    while i < len(lines):  # parser directives: only at the top, before any other line
        m = _DIRECTIVE.match(lines[i])
        if not m:
            break
        if m.group(1).lower() == "escape":
            if m.group(2) not in ("\\", "`"):
                raise ValueError(f"line {i + 1}: invalid escape token {m.group(2)!r} does not match ` or \\")
            escape = m.group(2)
        i += 1
    out: list[Instruction] = []
    while i < len(lines):
        raw = lines[i].strip()
        if not raw or raw.startswith("#"):
            i += 1
            continue
        start, parts = i + 1, []
        while True:
            line = lines[i].rstrip()
            i += 1
            if _continues(line, escape):
                parts.append(line[:-1])
                while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith("#")):
                    i += 1  # comment and empty lines inside a continuation are dropped
                if i < len(lines):
                    continue
            else:
                parts.append(line)
            break
        logical = " ".join(p.strip() for p in parts).strip()
        word, args = (logical.split(None, 1) + [""])[:2]
        for m in _HEREDOC.finditer(args):  # skip heredoc bodies
            end = m.group(3)
            while i < len(lines) and (lines[i].strip() if m.group(1) else lines[i]) != end:
                i += 1
            if i >= len(lines):
                raise ValueError(f"line {start}: heredoc <<{end} is never closed (no line {end!r})")
            i += 1
        out.append(Instruction(start, word.upper(), args.strip()))
    return out


def check(text: str, allow_no_from: bool = False) -> list[Instruction]:
    """Docker's parse rules over ``text``; ``allow_no_from`` for steps appended to a generated Dockerfile."""
    found = instructions(text)
    seen_from = allow_no_from
    for ins in found:
        if ins.keyword not in INSTRUCTIONS:
            raise ValueError(f"line {ins.line}: unknown instruction: {ins.keyword}")
        if ins.keyword in NEEDS_ARGS and not ins.args:
            raise ValueError(f"line {ins.line}: {ins.keyword} requires at least one argument")
        if ins.keyword == "ONBUILD":
            inner = (ins.args.split(None, 1) or [""])[0].upper()
            if inner in ("ONBUILD", "FROM", "MAINTAINER") or inner not in INSTRUCTIONS:
                raise ValueError(f"line {ins.line}: ONBUILD cannot take {inner or 'nothing'}")
        if ins.keyword == "ENV" and "=" not in ins.args and len(ins.args.split(None, 1)) < 2:
            raise ValueError(f"line {ins.line}: ENV must have two arguments (ENV name value, or ENV name=value)")
        if ins.keyword == "FROM":
            seen_from = True
        elif not seen_from and ins.keyword != "ARG":
            raise ValueError(f"line {ins.line}: no build stage in current context ({ins.keyword} before the first FROM)")
    if not found:
        raise ValueError("line 1: the file has no instructions")
    if not allow_no_from and not seen_from:
        raise ValueError("line 1: the file has no FROM instruction")
    return found


def check_file(path: Path, field: str = "dockerfile") -> None:
    """``check`` for a Dockerfile on disk; a refusal is a ``ValidationError`` naming ``field`` and the file."""
    try:
        check(path.read_text())
    except ValueError as exc:
        raise ValidationError(field, f"dockerfile parse error in {path} on {exc}; fix the Dockerfile (Docker would refuse it at build)") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(field, f"cannot read {path}: {exc}") from exc


__all__ = ["INSTRUCTIONS", "Instruction", "check", "check_file", "instructions"]
