"""The digest of a Docker build: what the engine receives, and what it builds from.

``context_digest(context_dir, dockerfile, build_args, from_digests)`` is
``"sha256:<hex>"`` over, in this order:

1. every path the Docker SDK puts in the build context's tar, chosen by the
   SDK's own code (``docker.utils.build.exclude_paths`` with the patterns of
   ``.dockerignore`` read exactly as ``APIClient.build`` reads them), sorted,
   each as ``<type>\\0<relative posix path>\\0<permission bits, octal>\\0<content>``
   where type is ``f`` (content: sha256 of the bytes, via ``hashing.file_digest``),
   ``d`` (no content), ``l`` (content: the link target, not followed, as tar
   sends it) or ``p`` (a FIFO);
2. the Dockerfile's own bytes (also when it lies outside the context, which
   the SDK then sends under a random name);
3. the build arguments, as sorted JSON;
4. the digest each ``FROM`` resolves to, in Dockerfile order
   (``from_digests``: reference -> digest or local image id), so a changed
   parent image changes the digest too.

Modification times, owners and the absolute location of the context never
enter it: the same sources give the same digest on any machine.

The module also reads the few Dockerfile facts the provider needs: declared
``ARG`` names and the ``FROM`` references after global-``ARG`` substitution.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path

from .errors import ValidationError
from .hashing import file_digest

WHEELHOUSE_ARG = "WHEELHOUSE_URL"


# -- the context, as the SDK sends it ------------------------------------------
def dockerfile_path(context_dir: str | os.PathLike[str], dockerfile: str | None = None) -> Path:
    """The Dockerfile's path: ``dockerfile`` relative to the context (Docker's rule) or absolute."""
    df = Path(dockerfile or "Dockerfile")
    return df if df.is_absolute() else Path(context_dir) / df


def dockerignore_patterns(context_dir: str | os.PathLike[str]) -> list[str] | None:
    """``.dockerignore`` patterns exactly as ``docker.api.build.BuildApiMixin.build`` reads them."""
    path = os.path.join(str(context_dir), ".dockerignore")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return [line.strip() for line in f.read().splitlines() if line.strip() != "" and line.strip()[0] != "#"]


def _sdk_dockerfile_name(context_dir: str, dockerfile: str | None) -> str | None:
    """The Dockerfile name the SDK passes to ``exclude_paths`` (None when outside the context or unset)."""
    if not dockerfile:
        return None
    abs_df = dockerfile if os.path.isabs(dockerfile) else os.path.join(context_dir, dockerfile)
    if os.path.relpath(abs_df, context_dir).startswith(".."):
        return None  # sent as an extra file; hashed separately below
    if dockerfile == abs_df:
        return os.path.relpath(abs_df, context_dir)
    return dockerfile


def context_files(context_dir: str | os.PathLike[str], dockerfile: str | None = None) -> list[str]:
    """The relative paths the SDK puts into the build context's tar, sorted as it sorts them."""
    root = os.path.abspath(str(context_dir))
    if not os.path.isdir(root):
        raise ValidationError("context", f"{str(context_dir)!r} is not a directory")
    patterns = list(dockerignore_patterns(root) or [])
    from docker.utils.build import exclude_paths  # the Docker SDK loads in ~0.2 s: only when a context is walked

    return sorted(exclude_paths(root, patterns, dockerfile=_sdk_dockerfile_name(root, dockerfile)))


def _entry(root: str, rel: str) -> str | None:
    full = os.path.join(root, rel)
    st = os.lstat(full)
    mode = f"{stat.S_IMODE(st.st_mode):o}"
    posix = rel.replace(os.sep, "/")
    if stat.S_ISLNK(st.st_mode):
        return f"l\0{posix}\0{mode}\0{os.readlink(full)}"
    if stat.S_ISDIR(st.st_mode):
        return f"d\0{posix}\0{mode}\0"
    if stat.S_ISREG(st.st_mode):
        return f"f\0{posix}\0{mode}\0{file_digest(Path(full))}"
    if stat.S_ISFIFO(st.st_mode):
        return f"p\0{posix}\0{mode}\0"
    return None  # sockets and devices: tarfile skips or cannot send them


def context_digest(
    context_dir: str | os.PathLike[str],
    dockerfile: str | None,
    build_args: Mapping[str, str] | None,
    from_digests: Mapping[str, str] | list[tuple[str, str]] | None,
) -> str:
    """``"sha256:<hex>"`` of a build (scheme in the module docstring)."""
    root = os.path.abspath(str(context_dir))
    df = dockerfile_path(root, dockerfile)
    if not df.is_file():
        raise ValidationError("dockerfile", f"{str(df)!r} does not exist")
    h = hashlib.sha256()
    h.update(b"mldeploy-context-v1\n")
    for rel in context_files(root, dockerfile or "Dockerfile"):
        line = _entry(root, rel)
        if line is not None:
            h.update(line.encode("utf-8", "surrogateescape") + b"\n")
    h.update(b"dockerfile\0" + file_digest(df).encode() + b"\n")
    h.update(b"build_args\0" + json.dumps(dict(build_args or {}), sort_keys=True).encode() + b"\n")
    pairs = list(from_digests.items()) if isinstance(from_digests, Mapping) else list(from_digests or [])
    for ref, digest in pairs:
        h.update(f"from\0{ref}\0{digest}\n".encode())
    return f"sha256:{h.hexdigest()}"


# -- the Dockerfile ------------------------------------------------------------
def _logical_lines(text: str) -> list[str]:
    """Instructions with continuations joined and comments dropped (escape char ``\\`` or a ``# escape=`` directive)."""
    escape = "\\"
    lines = text.splitlines()
    for line in lines:  # parser directives come first
        m = re.match(r"^#\s*escape\s*=\s*(\S)\s*$", line, re.I)
        if m:
            escape = m.group(1)
            continue
        if re.match(r"^#\s*\w+\s*=", line):
            continue
        break
    out: list[str] = []
    buf = ""
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#") and not buf:
            continue
        if buf and stripped.startswith("#"):
            continue  # comment lines inside a continuation are dropped by Docker
        if stripped.endswith(escape):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        if buf.strip():
            out.append(buf.strip())
        buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


def _substitute(word: str, env: Mapping[str, str]) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        op, arg = m.group(3), m.group(4)
        value = env.get(name)
        if op == ":-":
            return value if value else (arg or "")
        if op == ":+":
            return (arg or "") if value else ""
        return value or ""

    return re.sub(r"\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:[-+])([^}]*))?\})", repl, word)


def declared_args(dockerfile_text: str) -> list[str]:
    """Every ``ARG`` name the Dockerfile declares, in order, without duplicates."""
    names: list[str] = []
    for line in _logical_lines(dockerfile_text):
        parts = line.split(None, 1)
        if parts[0].upper() == "ARG" and len(parts) > 1:
            for item in parts[1].split():
                name = item.split("=", 1)[0]
                if name and name not in names:
                    names.append(name)
    return names


def from_refs(dockerfile_text: str, build_args: Mapping[str, str] | None = None) -> list[str]:
    """The images the ``FROM`` lines name, after global ``ARG`` substitution.

    Earlier stage names and ``scratch`` are left out: they are not images to resolve.
    """
    env: dict[str, str] = {}
    args = dict(build_args or {})
    refs: list[str] = []
    stages: set[str] = set()
    seen_from = False
    for line in _logical_lines(dockerfile_text):
        parts = line.split(None, 1)
        instr = parts[0].upper()
        rest = parts[1] if len(parts) > 1 else ""
        if instr == "ARG" and not seen_from:
            for item in rest.split():
                name, _, default = item.partition("=")
                env[name] = args.get(name, default.strip("\"'"))
        elif instr == "FROM":
            seen_from = True
            words = [w for w in rest.split() if not w.startswith("--")]
            if not words:
                raise ValidationError("dockerfile", f"'{line}' names no image")
            image = _substitute(words[0], env)
            is_stage = image.lower() in stages
            if len(words) >= 3 and words[1].upper() == "AS":
                stages.add(words[2].lower())
            if not image:
                raise ValidationError("dockerfile", f"'{line}' names no image once build args are substituted")
            if image.lower() == "scratch" or is_stage or image in refs:
                continue
            refs.append(image)
    if not seen_from:
        raise ValidationError("dockerfile", "the Dockerfile has no FROM instruction")
    return refs


def effective_build_args(dockerfile_text: str, build_args: Mapping[str, str] | None, wheelhouse_url: str) -> dict[str, str]:
    """The build args as given, plus ``WHEELHOUSE_URL`` when the Dockerfile declares it and it was not given."""
    args = {str(k): str(v) for k, v in (build_args or {}).items()}
    if WHEELHOUSE_ARG not in args and WHEELHOUSE_ARG in declared_args(dockerfile_text):
        args[WHEELHOUSE_ARG] = wheelhouse_url
    return args


__all__ = [
    "WHEELHOUSE_ARG",
    "context_digest",
    "context_files",
    "declared_args",
    "dockerfile_path",
    "dockerignore_patterns",
    "effective_build_args",
    "from_refs",
]
