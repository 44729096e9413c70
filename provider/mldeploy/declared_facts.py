"""What a Dockerfile and its build args already say about the image, checked against its requirements at preview.

BaseImage checks an image against its requirements (``mldeploy.requirements``)
after building it: minutes later, and on a fresh stack after other resources
were created. What the Dockerfile states outright is checked at preview instead,
without building (``check(requirements, text, path, build_args, unknown)``):

- Python: an ``ARG PYTHON_VERSION`` declared in the last stage or in a stage it
  is built on (the project's base Dockerfiles install ``python${PYTHON_VERSION}``),
  whose value is the build arg given, else the ``ARG``'s default (else the global
  ``ARG``'s); and a base image of the official ``python`` repository, whose tag
  starts with its version (``python:3.8-slim``). ``3.11`` means some 3.11.x: it
  meets a range when a 3.11.x does.
- OS: a base image of the official ``debian`` or ``ubuntu`` repository, by
  version (``debian:12``, ``ubuntu:22.04``) or codename (``debian:bookworm``,
  ``ubuntu:jammy``), or a ``python`` tag naming a Debian codename
  (``python:3.11-slim-bookworm``). It is compared as the check after the build
  compares ``/etc/os-release``: a listed family against its minimum, Ubuntu
  under a ``debian`` requirement through ``ID_LIKE`` (version not compared).

The base image is the last stage's ``FROM``, after global ``ARG`` substitution
with the effective build args, followed back through the earlier stages it
names. Whatever is not known at preview is skipped and left to the check after
the build: an unknown build arg, a ``FROM`` that names another image (the local
``mldeploy/debian:bookworm`` too: its name is a convention of ``make setup``, not
something the provider can verify), a tag such as ``latest``, a value that is not
a version. When several sources give the Python version and they disagree, the
check fails only when all of them miss the range: which ``python3`` comes first
on ``PATH`` is not known without building.

A failure is a ``ValidationError`` naming the input that decides it
(``build_args.<NAME>`` for a given build arg, else ``dockerfile``, with the line),
the requirement it breaks and the fix.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Set
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, Specifier, SpecifierSet
from packaging.version import Version

from . import dockerfile_check
from .context import _substitute
from .errors import ValidationError
from .requirements import ImageRequirements

PYTHON_ARG = "PYTHON_VERSION"
DEBIAN_CODENAMES = {"trixie": "13", "bookworm": "12", "bullseye": "11", "buster": "10", "stretch": "9"}
UBUNTU_CODENAMES = {"noble": "24.04", "jammy": "22.04", "focal": "20.04", "bionic": "18.04", "xenial": "16.04"}
_HUB_PREFIXES = ("docker.io/", "index.docker.io/", "registry-1.docker.io/")
_PY_VERSION = re.compile(r"\d+\.\d+(?:\.\d+)?")
_VAR = re.compile(r"\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)(?::[-+][^}]*)?\})")
_SUGGEST = ("3.11", "3.12", "3.10", "3.13", "3.9", "3.14", "3.8")
_NOTE = "Read from the Dockerfile at preview: nothing was built."


@dataclass(frozen=True)
class Value:
    """A value the build will see, and where it comes from. ``text`` None: not known at preview."""

    text: str | None
    field: str  # the input that decides it: ``build_args.<NAME>`` or ``dockerfile``
    origin: str  # for the message: "build_args PYTHON_VERSION='3.8'", "ARG PYTHON_VERSION=3.8 on line 23"


@dataclass(frozen=True)
class Declared:
    """One statement of the Dockerfile about the image: a Python version, or an OS family and version."""

    value: str | None  # None: stated, but not readable at preview (skips the check)
    family: str | None  # OS only
    field: str
    where: str  # e.g. "FROM python:3.8-slim on line 1 of /x/Dockerfile"
    fix: str  # how to change the input; ``{v}``: a version that would do


@dataclass
class _Arg:
    name: str
    default: str | None
    line: int


@dataclass
class _Stage:
    line: int
    image: str  # the FROM word as written
    name: str | None
    args: list[_Arg]


@dataclass(frozen=True)
class Facts:
    python: list[Declared]
    os: Declared | None


# -- reading ----------------------------------------------------------------------
def _arg_items(rest: str, line: int) -> list[_Arg]:
    try:
        words = shlex.split(rest)
    except ValueError:
        words = rest.split()
    out = []
    for word in words:
        name, eq, default = word.partition("=")
        out.append(_Arg(name, default if eq else None, line))
    return out


def _parse(text: str) -> tuple[list[_Arg], list[_Stage]]:
    global_args: list[_Arg] = []
    stages: list[_Stage] = []
    for ins in dockerfile_check.instructions(text):
        if ins.keyword == "ARG":
            (stages[-1].args if stages else global_args).extend(_arg_items(ins.args, ins.line))
        elif ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]
            if words:
                name = words[2].lower() if len(words) >= 3 and words[1].upper() == "AS" else None
                stages.append(_Stage(ins.line, words[0], name, []))
    return global_args, stages


def _arg_value(arg: _Arg, given: Mapping[str, str], unknown: Set[str], fallback: Value | None) -> Value:
    if arg.name in unknown:
        return Value(None, f"build_args.{arg.name}", f"build_args {arg.name}")
    if arg.name in given:
        return Value(given[arg.name], f"build_args.{arg.name}", f"build_args {arg.name}={given[arg.name]!r}")
    if arg.default is not None:
        known = "$" not in arg.default  # a default made of other args: not followed
        return Value(arg.default if known else None, "dockerfile", f"ARG {arg.name}={arg.default} on line {arg.line}")
    if fallback is not None:
        return fallback
    return Value(None, "dockerfile", f"ARG {arg.name} on line {arg.line} (no default)")


def _substituted(word: str, env: Mapping[str, Value]) -> tuple[str | None, list[Value]]:
    """``word`` with global args substituted (Docker's rules, ``context._substitute``), and the values it used."""
    used = [env[n] for m in _VAR.finditer(word) if (n := m.group(1) or m.group(2)) in env]
    if any(v.text is None for v in used):
        return None, used
    image = _substitute(word, {k: v.text for k, v in env.items() if v.text is not None})
    return (image or None), used


def _official(image: str) -> tuple[str, str | None] | None:
    """``(repository, tag)`` of an image of Docker Hub's official library (``debian:12``), else None."""
    ref = image.split("@", 1)[0]
    name, tag = ref, None
    if ":" in ref.rsplit("/", 1)[-1]:
        name, tag = ref.rsplit(":", 1)
    name = name.lower()
    for prefix in _HUB_PREFIXES:
        name = name.removeprefix(prefix)
    name = name.removeprefix("library/")
    return None if "/" in name else (name, tag)


def _image_os(repo: str, tag: str) -> tuple[str, str] | None:
    parts = tag.lower().split("-")
    if repo == "debian":
        if re.fullmatch(r"\d+(?:\.\d+)?", parts[0]):
            return "debian", parts[0]
        return ("debian", DEBIAN_CODENAMES[parts[0]]) if parts[0] in DEBIAN_CODENAMES else None
    if repo == "ubuntu":
        if re.fullmatch(r"\d{2}\.\d{2}", parts[0]):
            return "ubuntu", parts[0]
        return ("ubuntu", UBUNTU_CODENAMES[parts[0]]) if parts[0] in UBUNTU_CODENAMES else None
    if repo == "python":
        code = next((p for p in parts[1:] if p in DEBIAN_CODENAMES), None)
        return ("debian", DEBIAN_CODENAMES[code]) if code else None
    return None


def _decider(used: list[Value], line: int, path: Path) -> tuple[str, str]:
    """The input that decides a FROM line, and the words that say so."""
    given = next((v for v in used if v.field != "dockerfile"), None)
    args = "".join(f" ({v.origin})" for v in used)
    return (given.field if given else "dockerfile"), f"on line {line} of {path}{args}"


def read(text: str, path: Path, given: Mapping[str, str], unknown: Set[str] = frozenset()) -> Facts:
    """What the Dockerfile says about the image's Python and OS; ``unknown``: build args not known at preview."""
    try:
        global_args, stages = _parse(text)
    except ValueError:  # Docker would refuse the file: the syntax check reports it
        return Facts([], None)
    if not stages:
        return Facts([], None)
    env: dict[str, Value] = {}
    for a in global_args:
        if a.name not in env and (a.name in unknown or a.name in given or a.default is not None):
            env[a.name] = _arg_value(a, given, unknown, None)

    python: list[Declared] = []
    os_fact: Declared | None = None
    i = len(stages) - 1
    seen: set[int] = set()
    while i not in seen:
        seen.add(i)
        stage = stages[i]
        arg = next((a for a in stage.args if a.name == PYTHON_ARG), None)
        if arg is not None:
            v = _arg_value(arg, given, unknown, env.get(PYTHON_ARG))
            fix = f"pass build_args={{'{PYTHON_ARG}': '{{v}}'}}"
            if v.field == "dockerfile":
                fix = f"change the default (ARG {PYTHON_ARG}={{v}}), or {fix}"
            where = f"{v.origin} of {path}" if v.field == "dockerfile" else f"{v.origin}, for ARG {PYTHON_ARG} on line {arg.line} of {path}"
            python.append(Declared(v.text, None, v.field, where, fix))
        image, used = _substituted(stage.image, env)
        if image is None:
            break  # not known at preview
        earlier = {s.name: j for j, s in enumerate(stages[:i]) if s.name}
        if image.lower() in earlier:
            i = earlier[image.lower()]
            continue
        repo, tag = _official(image) or ("", None)
        if tag is None:
            break  # another image, or no tag (latest): left to the check after the build
        field, where = _decider(used, stage.line, path)
        shown = f"FROM {stage.image}" + (f" (= {image})" if image != stage.image else "")
        if repo == "python":
            m = _PY_VERSION.match(tag)
            if m and (m.end() == len(tag) or tag[m.end()] == "-"):
                fix = f"base it on python:{{v}}{tag[m.end():]}"
                python.append(Declared(m.group(0), None, field, f"{shown} {where}", fix))
        os_ = _image_os(repo, tag)
        if os_ is not None:
            os_fact = Declared(os_[1], os_[0], field, f"{shown} {where}", "base it on {v}")
        break
    return Facts(python, os_fact)


# -- checking ---------------------------------------------------------------------
def python_meets(version: str, spec: str) -> bool:
    """Whether a Python ``version`` meets ``spec``; ``3.11`` (no patch) meets it when some 3.11.x does."""
    specs = SpecifierSet(spec)
    if version.count(".") >= 2:
        return Version(version) in specs
    major, minor = version.split(".")[:2]
    return any(Version(f"{major}.{minor}.{patch}") in specs for patch in range(100))


def widened(spec: str, version: str) -> str:
    """``spec`` with the clauses ``version`` breaks loosened just enough (an example for the message)."""
    v = Version(version)
    out = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        try:
            s = Specifier(part)
        except InvalidSpecifier:
            continue
        if python_meets(version, part):
            out.append(part)
        elif s.operator in (">=", ">", "~="):
            out.append(f">={v.major}.{v.minor}")
        elif s.operator in ("<", "<="):
            out.append(f"<{v.major}.{v.minor + 1}")
    return ",".join(out)


def _python_problem(req: ImageRequirements, facts: Facts) -> ValidationError | None:
    spec = req.python
    if not spec or not facts.python:
        return None
    for d in facts.python:
        if d.value is None or not _PY_VERSION.fullmatch(d.value) or python_meets(d.value, spec):
            return None  # unknown, unreadable, or met: the image's python3 may be this one
    first = facts.python[0]
    also = "".join(f"\nAlso: {d.where} gives Python {d.value}." for d in facts.python[1:])
    good = next((s for s in _SUGGEST if python_meets(s, spec)), "<version>")
    wide = widened(spec, first.value or "") or f">={first.value}"
    return ValidationError(
        first.field,
        f"the image's Python would be {first.value} ({first.where}), outside requirements.python {spec!r}.{also}\n"
        f"Fix: {first.fix.replace('{v}', good)} (a Python in {spec!r}); or widen the requirement, e.g. requirements={{'python': {wide!r}}}. {_NOTE}",
    )


def _os_problem(req: ImageRequirements, facts: Facts) -> ValidationError | None:
    d = facts.os
    if not req.os or d is None or d.value is None or d.family is None:
        return None
    want = " or ".join(f"{k}>={v}" for k, v in req.os.items())
    label = f"{d.family.capitalize()} {d.value}"
    if d.family in req.os:
        if Version(d.value) >= Version(req.os[d.family]):
            return None
        broken = f"below requirements.os {d.family}>={req.os[d.family]}"
    elif d.family == "ubuntu" and "debian" in req.os:
        return None  # Ubuntu's os-release says ID_LIKE=debian: the check after the build takes it as Debian
    else:
        broken = f"not a family requirements.os lists ({want})"
    bases = " or ".join(f"{k}:{v} or later" for k, v in req.os.items())
    wide = {**req.os, d.family: d.value}
    return ValidationError(
        d.field,
        f"the image would be {label} ({d.where}), {broken}.\n"
        f"Fix: {d.fix.replace('{v}', bases)}; or widen the requirement, e.g. requirements={{'os': {wide!r}}}. {_NOTE}",
    )


def check(req: ImageRequirements, text: str, path: Path, given: Mapping[str, str], unknown: Set[str] = frozenset()) -> None:
    """Raise ``ValidationError`` when what the Dockerfile says misses ``req`` (both problems when both do)."""
    facts = read(text, path, given, unknown)
    problems = [p for p in (_python_problem(req, facts), _os_problem(req, facts)) if p is not None]
    if not problems:
        return
    first = problems[0]
    rest = "".join(f"\nAnd {p.field}: {p.message}" for p in problems[1:])
    raise ValidationError(first.field, first.message + rest)


__all__ = ["DEBIAN_CODENAMES", "UBUNTU_CODENAMES", "Declared", "Facts", "Value", "check", "python_meets", "read", "widened"]
