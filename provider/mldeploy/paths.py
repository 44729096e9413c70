"""Paths that come from the user, contained: model paths, sourceDirectory, entryScript, condaFile,
extraDockerfileSteps, a BaseImage's context and dockerfile.

Every such path is resolved (``..`` collapsed, every symlink followed) and must
land inside an *allowed root*:

- the project: the Pulumi program's directory (the working directory of the
  program and of the provider, which the engine starts there);
- each directory in the stack config ``mldeploy:allowedRoots`` (a list, or one
  string; relative entries are relative to the project), read by the program
  and passed to the provider in the ``path_policy`` input;
- each directory in the environment variable ``MLDEPLOY_ALLOWED_ROOTS``
  (``os.pathsep``-separated), for the program and the provider alike.

Inside a tree that is copied or hashed (a model folder, a source directory),
a symlink is followed only when its target stays inside that same tree; a
link that leaves it, a dangling link and a link loop are refused with an error
naming the link and its target. (A BaseImage context is sent to Docker as
Docker sends it: links as links, never followed.)

A size guard stops a walk, before anything is read, at more than
``max_gb`` GiB or ``max_files`` files (defaults 20 GiB and 100,000 files):
stack config ``mldeploy:maxTreeGB`` / ``mldeploy:maxTreeFiles``, or the
environment variables ``MLDEPLOY_MAX_TREE_GB`` / ``MLDEPLOY_MAX_TREE_FILES``.

All failures are ``ValidationError(field, message)`` naming the input, the
offending path and the fix, raised from ``check`` so ``pulumi preview`` fails
and nothing is created.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ValidationError

ENV_ROOTS = "MLDEPLOY_ALLOWED_ROOTS"
ENV_MAX_GB = "MLDEPLOY_MAX_TREE_GB"
ENV_MAX_FILES = "MLDEPLOY_MAX_TREE_FILES"
DEFAULT_MAX_GB = 20.0
DEFAULT_MAX_FILES = 100_000
GIB = 1024**3

ROOTS_FIX = (
    "move it into the project, or allow its directory: "
    "`pulumi config set --path 'mldeploy:allowedRoots[0]' <dir>` (or MLDEPLOY_ALLOWED_ROOTS=<dir>)"
)


def _env_float(name: str) -> float | None:
    value = os.environ.get(name)
    try:
        return float(value) if value else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Policy:
    """Where user paths may lead, and how big a tree may be."""

    roots: tuple[Path, ...]
    max_bytes: int
    max_files: int

    @classmethod
    def current(cls, given: Mapping[str, Any] | None = None) -> "Policy":
        """The policy here: the project (cwd), ``given`` (the ``path_policy`` input) and the environment."""
        given = given if isinstance(given, Mapping) else {}
        cwd = Path.cwd()
        raw: list[str] = [str(cwd)]
        raw += [r for r in os.environ.get(ENV_ROOTS, "").split(os.pathsep) if r.strip()]
        extra = given.get("allowed_roots") or []
        raw += [extra] if isinstance(extra, str) else [str(r) for r in extra]
        roots: list[Path] = []
        for r in raw:
            p = (cwd / os.path.expanduser(r.strip())).resolve()
            if p not in roots:
                roots.append(p)
        max_gb = given.get("max_gb") or _env_float(ENV_MAX_GB) or DEFAULT_MAX_GB
        max_files = given.get("max_files") or _env_float(ENV_MAX_FILES) or DEFAULT_MAX_FILES
        return cls(tuple(roots), int(float(max_gb) * GIB), int(max_files))

    def describe(self) -> str:
        return "allowed: " + ", ".join(str(r) for r in self.roots)


def program_policy() -> dict[str, Any]:
    """The ``path_policy`` input, read by the program from the stack config (``mldeploy:allowedRoots``,
    ``mldeploy:maxTreeGB``, ``mldeploy:maxTreeFiles``); empty outside a Pulumi program."""
    try:
        import pulumi

        cfg = pulumi.Config("mldeploy")
        roots: Any = None
        try:
            roots = cfg.get_object("allowedRoots")
        except Exception:  # a plain string that is not JSON
            roots = None
        if roots is None:
            text = cfg.get("allowedRoots")
            roots = [r for r in text.split(os.pathsep) if r.strip()] if text else []
        if isinstance(roots, str):
            roots = [roots]
        policy: dict[str, Any] = {"allowed_roots": [str(Path(os.path.expanduser(str(r))).resolve()) for r in roots]}
        max_gb, max_files = cfg.get_float("maxTreeGB"), cfg.get_int("maxTreeFiles")
        if max_gb:
            policy["max_gb"] = max_gb
        if max_files:
            policy["max_files"] = max_files
        return policy
    except Exception:  # not in a Pulumi program (unit tests, scripts): the environment still applies
        return {}


def is_inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def contain(path: str | os.PathLike[str], field: str, policy: Policy, base: Path | None = None, what: str = "") -> Path:
    """``path`` (relative to ``base``, default the cwd) resolved; refused unless it lands inside an allowed root.

    A path that does not exist is returned as is, for the caller to report as missing.

    ``what`` names what the path is for in the message (e.g. ``"the model"``).
    """
    given = Path(os.fspath(path))
    full = given if given.is_absolute() else (base or Path.cwd()) / given
    lexical = Path(os.path.normpath(full))
    resolved = full.resolve()
    if not resolved.exists() or any(is_inside(resolved, r) for r in policy.roots):
        return resolved  # a missing path is reported by the caller as missing: there is nothing to read
    label = f"{what} {os.fspath(path)!r}".strip()
    if any(is_inside(lexical, r) for r in policy.roots):
        reason = f"{label} leads through a symlink to {str(resolved)!r}, outside the project"
    else:
        reason = f"{label} resolves to {str(resolved)!r}, outside the project"
    raise ValidationError(field, f"{reason} ({policy.describe()}); {ROOTS_FIX}")


def inside_any(path: Path, roots: Iterable[Path]) -> bool:
    return any(is_inside(path, r) for r in roots)


Ignore = Callable[[str], bool]


def walk(
    root: Path,
    field: str,
    limits: Policy | None = None,
    ignore: Ignore | None = None,
    links_within: Sequence[Path] | None = None,
    kind: str = "the folder",
) -> list[tuple[str, Path, int]]:
    """The regular files under directory ``root``: ``(relative posix name, resolved file, size)``, sorted by name.

    Symlinks are followed when their target (file or directory) resolves inside
    ``links_within`` (default: ``root`` itself); any other link, a dangling one and a
    loop raise ``ValidationError(field, ...)`` naming the link. Sockets, FIFOs and
    devices are skipped. ``ignore(name)`` drops a file or directory by its name.
    The size guard of ``limits`` (none when ``None``) stops the walk early. ``kind`` names the tree in messages.
    """
    top = root.resolve()
    within = [p.resolve() for p in (links_within or [top])]
    max_bytes = limits.max_bytes if limits else float("inf")
    max_files = limits.max_files if limits else float("inf")
    found: list[tuple[str, Path, int]] = []
    total = 0

    def too_big() -> ValidationError:
        return ValidationError(
            field,
            f"{str(root)!r} holds more than {max_files} files or {max_bytes / GIB:g} GiB "
            f"({len(found)} files, {total / GIB:.2f} GiB counted so far); is it the right directory? "
            f"If it is, raise the limit: `pulumi config set mldeploy:maxTreeGB <GiB>` / `mldeploy:maxTreeFiles <n>` "
            f"(or {ENV_MAX_GB} / {ENV_MAX_FILES})",
        )

    def visit(directory: Path, rel: str, ancestors: tuple[Path, ...]) -> None:
        nonlocal total
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            raise ValidationError(field, f"cannot read directory {str(directory)!r}: {exc.strerror or exc}") from exc
        for entry in entries:
            if ignore is not None and ignore(entry.name):
                continue
            name = f"{rel}{entry.name}"
            path = Path(entry.path)
            if entry.is_symlink():
                target = path.resolve()
                shown = f"{root!s}/{name}"
                if not inside_any(target, within):
                    raise ValidationError(
                        field,
                        f"symlink {shown!r} points to {str(target)!r}, outside {kind} {str(within[0])!r}; "
                        "replace it with the file itself or a link inside the folder",
                    )
                if not target.exists():
                    raise ValidationError(field, f"symlink {shown!r} is dangling (its target {str(target)!r} does not exist)")
                if target.is_dir():
                    if target in ancestors:
                        raise ValidationError(field, f"symlink {shown!r} loops back to {str(target)!r}")
                    visit(target, name + "/", (*ancestors, target))
                    continue
                path = target
            elif entry.is_dir(follow_symlinks=False):
                visit(path, name + "/", (*ancestors, path.resolve()))
                continue
            elif not entry.is_file(follow_symlinks=False):
                continue
            if not path.is_file():
                continue  # a link to a socket or FIFO
            size = path.stat().st_size
            found.append((name, path, size))
            total += size
            if len(found) > max_files or total > max_bytes:
                raise too_big()

    visit(top, "", (top,))
    found.sort(key=lambda e: e[0].encode("utf-8", "surrogateescape"))
    return found


def tree_size(files: Iterable[str | os.PathLike[str]], root: Path, field: str, limits: Policy) -> tuple[int, int]:
    """Count ``files`` (paths relative to ``root``, as listed by someone else, e.g. Docker's context walk): (files, bytes).

    Raises the size guard's ``ValidationError`` as soon as a limit is passed.
    """
    n, total = 0, 0
    for rel in files:
        try:
            st = os.lstat(root / rel)
        except OSError:
            continue
        n += 1
        total += st.st_size
        if n > limits.max_files or total > limits.max_bytes:
            raise ValidationError(
                field,
                f"{str(root)!r} holds more than {limits.max_files} files or {limits.max_bytes / GIB:g} GiB to send "
                f"({n} files, {total / GIB:.2f} GiB counted so far); is it the right directory? Add a .dockerignore, or raise "
                f"the limit: `pulumi config set mldeploy:maxTreeGB <GiB>` / `mldeploy:maxTreeFiles <n>` (or {ENV_MAX_GB} / {ENV_MAX_FILES})",
            )
    return n, total


__all__ = [
    "DEFAULT_MAX_FILES",
    "DEFAULT_MAX_GB",
    "ENV_MAX_FILES",
    "ENV_MAX_GB",
    "ENV_ROOTS",
    "Policy",
    "contain",
    "inside_any",
    "is_inside",
    "program_policy",
    "tree_size",
    "walk",
]
