"""The build-context digest: what changes it, what does not, and that it covers exactly what the SDK sends."""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

import pytest
from docker import utils as docker_utils
from docker.api.build import process_dockerfile
from mldeploy.context import (
    context_digest,
    context_files,
    declared_args,
    dockerignore_patterns,
    effective_build_args,
    from_refs,
)
from mldeploy.errors import ValidationError

FROM = [("mldeploy/debian:bookworm", "sha256:" + "1" * 64)]


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    (root / "app" / "sub").mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM mldeploy/debian:bookworm\nCOPY app /app\n")
    (root / "app" / "score.py").write_text("def run(x):\n    return x\n")
    (root / "app" / "sub" / "data.txt").write_text("data\n")
    (root / "notes.log").write_text("ignored\n")
    (root / "build").mkdir()
    (root / "build" / "out.bin").write_bytes(b"\0" * 10)
    (root / ".dockerignore").write_text("# comment\n*.log\nbuild\n")
    return root


def digest(root: Path, dockerfile: str | None = "Dockerfile", args: dict[str, str] | None = None, frm=FROM) -> str:  # type: ignore[no-untyped-def]
    return context_digest(root, dockerfile, args or {}, frm)


def sdk_tar_names(root: Path, dockerfile: str = "Dockerfile") -> list[str]:
    """The member names of the tar the Docker SDK's APIClient.build would send."""
    df = process_dockerfile(dockerfile, str(root))
    with docker_utils.tar(str(root), exclude=dockerignore_patterns(root), dockerfile=df) as f, tarfile.open(fileobj=f) as t:
        return sorted(m.name for m in t.getmembers())


def test_files_are_exactly_what_the_sdk_sends(ctx: Path) -> None:
    assert context_files(ctx) == sdk_tar_names(ctx)
    assert "notes.log" not in context_files(ctx) and "build/out.bin" not in context_files(ctx)
    assert {".dockerignore", "Dockerfile", "app", "app/score.py", "app/sub/data.txt"} <= set(context_files(ctx))


def test_files_match_the_sdk_with_negations_and_an_ignored_dockerfile(ctx: Path) -> None:
    (ctx / ".dockerignore").write_text("*\n!app\napp/sub\n")
    assert context_files(ctx) == sdk_tar_names(ctx)
    assert "Dockerfile" in context_files(ctx)  # the SDK always sends the Dockerfile
    assert "app/sub/data.txt" not in context_files(ctx)


def test_stable_across_locations_and_mtimes(ctx: Path, tmp_path: Path) -> None:
    before = digest(ctx)
    assert before.startswith("sha256:") and len(before) == 71
    copy = tmp_path / "elsewhere"
    shutil.copytree(ctx, copy)
    assert digest(copy) == before
    os.utime(ctx / "app" / "score.py", (1, 1))
    assert digest(ctx) == before


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda r: (r / "app" / "score.py").write_text("def run(x):\n    return 2 * x\n"), id="content"),
        pytest.param(lambda r: (r / "app" / "score.py").rename(r / "app" / "main.py"), id="rename"),
        pytest.param(lambda r: os.chmod(r / "app" / "score.py", 0o755), id="mode"),
        pytest.param(lambda r: os.chmod(r / "app" / "sub", 0o751), id="dir-mode"),
        pytest.param(lambda r: (r / "app" / "new.txt").write_text(""), id="new-empty-file"),
        pytest.param(lambda r: (r / "app" / "empty").mkdir(), id="new-empty-dir"),
        pytest.param(lambda r: (r / "Dockerfile").write_text("FROM mldeploy/debian:bookworm\nCOPY app /srv\n"), id="dockerfile"),
        pytest.param(lambda r: (r / ".dockerignore").write_text("*.log\n"), id="dockerignore-unignores"),
        pytest.param(lambda r: (r / ".dockerignore").write_text("# comment edited\n*.log\nbuild\n"), id="dockerignore-sent-itself"),
        pytest.param(lambda r: os.symlink("sub/data.txt", r / "app" / "link"), id="new-symlink"),
    ],
)
def test_changes_that_change_the_digest(ctx: Path, edit) -> None:  # type: ignore[no-untyped-def]
    before = digest(ctx)
    edit(ctx)
    assert digest(ctx) != before


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda r: (r / "notes.log").write_text("edited\n"), id="ignored-edit"),
        pytest.param(lambda r: (r / "other.log").write_text("new\n"), id="ignored-new"),
        pytest.param(lambda r: (r / "build" / "more.bin").write_text("x"), id="ignored-dir"),
        pytest.param(lambda r: os.utime(r / "Dockerfile", (5, 5)), id="mtime"),
        pytest.param(lambda r: (r / "app" / "score.py").write_text((r / "app" / "score.py").read_text()), id="same-bytes"),
    ],
)
def test_changes_that_do_not(ctx: Path, edit) -> None:  # type: ignore[no-untyped-def]
    before = digest(ctx)
    edit(ctx)
    assert digest(ctx) == before


def test_symlink_target_not_followed(ctx: Path) -> None:
    os.symlink("sub/data.txt", ctx / "app" / "link")
    before = digest(ctx)
    (ctx / "app" / "sub" / "other.txt").write_text("data\n")
    os.remove(ctx / "app" / "link")
    os.symlink("sub/other.txt", ctx / "app" / "link")
    assert digest(ctx) != before


def test_build_args_parents_and_outside_dockerfile(ctx: Path, tmp_path: Path) -> None:
    base = digest(ctx)
    assert digest(ctx, args={"A": "1"}) != base
    assert digest(ctx, args={"A": "1"}) != digest(ctx, args={"A": "2"})
    assert digest(ctx, frm=[("mldeploy/debian:bookworm", "sha256:" + "2" * 64)]) != base
    outside = tmp_path / "Other.Dockerfile"
    outside.write_text("FROM mldeploy/debian:bookworm\n")
    d1 = digest(ctx, dockerfile=str(outside))
    outside.write_text("FROM mldeploy/debian:bookworm\nRUN true\n")
    assert digest(ctx, dockerfile=str(outside)) != d1


def test_missing_dockerfile_and_context(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as exc:
        context_digest(tmp_path, "Dockerfile", {}, [])
    assert exc.value.field == "dockerfile"
    with pytest.raises(ValidationError) as exc:
        context_files(tmp_path / "nope")
    assert exc.value.field == "context"


DF = """\
# escape=\\
ARG BASE_OS=mldeploy/debian:bookworm
ARG TAG
FROM ${BASE_OS} AS builder
ARG PYTHON_VERSION=3.11
ARG WHEELHOUSE_URL
RUN echo \\
  hi
FROM builder
FROM scratch
FROM 127.0.0.1:5000/x/y${TAG:+:}${TAG}
FROM --platform=linux/amd64 other:1 as two
"""


def test_from_refs_and_args() -> None:
    assert from_refs(DF) == ["mldeploy/debian:bookworm", "127.0.0.1:5000/x/y", "other:1"]
    assert from_refs(DF, {"BASE_OS": "img:2", "TAG": "v3"}) == ["img:2", "127.0.0.1:5000/x/y:v3", "other:1"]
    assert declared_args(DF) == ["BASE_OS", "TAG", "PYTHON_VERSION", "WHEELHOUSE_URL"]
    with pytest.raises(ValidationError):
        from_refs("RUN true\n")


def test_wheelhouse_url_is_injected_only_when_declared() -> None:
    url = "http://127.0.0.1:5000/wheels/"
    assert effective_build_args(DF, {}, url) == {"WHEELHOUSE_URL": url}
    assert effective_build_args(DF, {"WHEELHOUSE_URL": "http://x/"}, url) == {"WHEELHOUSE_URL": "http://x/"}
    assert effective_build_args("FROM a\nRUN true\n", {"A": "1"}, url) == {"A": "1"}
