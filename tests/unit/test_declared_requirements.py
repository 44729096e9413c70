"""BaseImage's check at preview: what the Dockerfile and its build args say (Python version, base OS) against the requirements."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mldeploy.declared_facts import python_meets, widened
from mldeploy.resources.base_image import BaseImageProvider
from pulumi.output import Unknown
from pulumi.runtime.rpc import UNKNOWN

from .test_base_image import inputs

DEMO_DOCKERFILE = Path(__file__).resolve().parents[2] / "stacks" / "demo" / "base" / "Dockerfile"
DEMO_PY_LINE = next(i for i, line in enumerate(DEMO_DOCKERFILE.read_text().splitlines(), 1) if line.startswith("ARG PYTHON_VERSION="))
NOTE = "Read from the Dockerfile at preview: nothing was built."


@pytest.fixture
def provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> BaseImageProvider:
    monkeypatch.setenv("MLDEPLOY_HOME", str(tmp_path / "home"))
    return BaseImageProvider()


def context(tmp_path: Path, dockerfile: str) -> Path:
    root = tmp_path / "ctx"
    root.mkdir(exist_ok=True)
    (root / "Dockerfile").write_text(dockerfile)
    return root


def demo(tmp_path: Path, python_default: str = "3.11") -> Path:
    """A copy of the demo base's context (its Dockerfile), with another ARG PYTHON_VERSION default if asked."""
    text = DEMO_DOCKERFILE.read_text().replace("ARG PYTHON_VERSION=3.11", f"ARG PYTHON_VERSION={python_default}")
    return context(tmp_path, text)


def reasons(p: BaseImageProvider, ctx: Path, **over: Any) -> list[str]:
    return [f.reason for f in p.check({}, inputs(ctx, **over)).failures]


# -- Python ---------------------------------------------------------------------------
def test_the_demo_dockerfile_passes(provider: BaseImageProvider, tmp_path: Path) -> None:
    assert reasons(provider, DEMO_DOCKERFILE.parent) == []
    assert reasons(provider, DEMO_DOCKERFILE.parent, build_args={"PYTHON_VERSION": "3.11"}) == []
    assert reasons(provider, DEMO_DOCKERFILE.parent, build_args={"PYTHON_VERSION": "3.13"}) == []


def test_python_version_build_arg_outside_the_range_fails_naming_the_build_arg(provider: BaseImageProvider) -> None:
    [reason] = reasons(provider, DEMO_DOCKERFILE.parent, build_args={"PYTHON_VERSION": "3.8"})
    assert reason.startswith(
        "build_args.PYTHON_VERSION: the image's Python would be 3.8 (build_args PYTHON_VERSION='3.8', "
        f"for ARG PYTHON_VERSION on line {DEMO_PY_LINE} of {DEMO_DOCKERFILE}), outside requirements.python '>=3.9,<3.14'."
    ), reason
    assert "Fix: pass build_args={'PYTHON_VERSION': '3.11'}" in reason
    assert "or widen the requirement, e.g. requirements={'python': '>=3.8,<3.14'}" in reason
    assert reason.endswith(NOTE)
    [reason] = reasons(provider, DEMO_DOCKERFILE.parent, build_args={"PYTHON_VERSION": "3.14"})
    assert "outside requirements.python '>=3.9,<3.14'" in reason and "requirements={'python': '>=3.9,<3.15'}" in reason


def test_python_version_arg_default_outside_the_range_fails_naming_the_dockerfile_line(provider: BaseImageProvider, tmp_path: Path) -> None:
    ctx = demo(tmp_path, python_default="3.8")
    [reason] = reasons(provider, ctx)
    assert reason.startswith(
        f"dockerfile: the image's Python would be 3.8 (ARG PYTHON_VERSION=3.8 on line {DEMO_PY_LINE} of {ctx / 'Dockerfile'}), "
        "outside requirements.python '>=3.9,<3.14'."
    ), reason
    assert "Fix: change the default (ARG PYTHON_VERSION=3.11), or pass build_args={'PYTHON_VERSION': '3.11'}" in reason
    # A build arg in range overrides the default: it passes.
    assert reasons(provider, ctx, build_args={"PYTHON_VERSION": "3.11"}) == []


def test_from_an_official_python_image_gives_the_python_version(provider: BaseImageProvider, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM python:3.8-slim\nRUN true\n")
    [reason] = reasons(provider, ctx)
    assert reason.startswith(
        f"dockerfile: the image's Python would be 3.8 (FROM python:3.8-slim on line 1 of {ctx / 'Dockerfile'}), outside requirements.python"
    ), reason
    assert "Fix: base it on python:3.11-slim" in reason
    for ok in ("python:3.11-slim", "docker.io/library/python:3.12", "python:3.10.14-bookworm"):
        assert reasons(provider, context(tmp_path, f"FROM {ok}\n")) == [], ok


def test_a_python_image_named_through_a_build_arg_is_decided_by_that_build_arg(provider: BaseImageProvider, tmp_path: Path) -> None:
    ctx = context(tmp_path, "ARG PY=3.11\nFROM python:${PY}-slim\n")
    assert reasons(provider, ctx) == []
    [reason] = reasons(provider, ctx, build_args={"PY": "3.7"})
    assert reason.startswith("build_args.PY: the image's Python would be 3.7 (FROM python:${PY}-slim (= python:3.7-slim) on line 2"), reason
    assert "(build_args PY='3.7')" in reason


def test_python_versions_mean_any_patch_release(provider: BaseImageProvider) -> None:
    assert python_meets("3.11", ">=3.11.4") and not python_meets("3.11.2", ">=3.11.4")
    assert not python_meets("3.8", ">=3.9,<3.14") and python_meets("3.13", ">=3.9,<3.14") and not python_meets("3.14", ">=3.9,<3.14")
    assert widened(">=3.9,<3.14", "3.8") == ">=3.8,<3.14"
    assert reasons(provider, DEMO_DOCKERFILE.parent, build_args={"PYTHON_VERSION": "3.11"}, requirements={"python": ">=3.11.4"}) == []
    [reason] = reasons(provider, DEMO_DOCKERFILE.parent, build_args={"PYTHON_VERSION": "3.11.2"}, requirements={"python": ">=3.11.4"})
    assert reason.startswith("build_args.PYTHON_VERSION: the image's Python would be 3.11.2")


def test_two_sources_that_disagree_fail_only_when_both_miss(provider: BaseImageProvider, tmp_path: Path) -> None:
    # Which python3 comes first on PATH is not known without building: one in range is enough at preview.
    assert reasons(provider, context(tmp_path, "FROM python:3.11-slim\nARG PYTHON_VERSION=3.8\n")) == []
    [reason] = reasons(provider, context(tmp_path, "FROM python:3.7-slim\nARG PYTHON_VERSION=3.8\n"))
    assert reason.startswith("dockerfile: the image's Python would be 3.8 (ARG PYTHON_VERSION=3.8 on line 2")
    assert "Also: FROM python:3.7-slim on line 1" in reason and "gives Python 3.7." in reason


# -- OS ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("image", "label", "broken"),
    [
        ("ubuntu:18.04", "Ubuntu 18.04", "ubuntu>=20.04"),
        ("ubuntu:bionic-20230530", "Ubuntu 18.04", "ubuntu>=20.04"),
        ("debian:buster", "Debian 10", "debian>=11"),
        ("debian:10-slim", "Debian 10", "debian>=11"),
        ("python:3.11-slim-buster", "Debian 10", "debian>=11"),
    ],
)
def test_an_os_below_the_default_minimum_fails(provider: BaseImageProvider, tmp_path: Path, image: str, label: str, broken: str) -> None:
    ctx = context(tmp_path, f"FROM {image}\nRUN true\n")
    [reason] = reasons(provider, ctx)
    assert reason.startswith(f"dockerfile: the image would be {label} (FROM {image} on line 1 of {ctx / 'Dockerfile'}), below requirements.os {broken}."), reason
    assert "Fix: base it on debian:11 or later or ubuntu:20.04 or later; or widen the requirement" in reason
    assert reason.endswith(NOTE)


@pytest.mark.parametrize(
    "image",
    ["debian:bookworm", "debian:12-slim", "debian:11", "ubuntu:22.04", "ubuntu:jammy-20240111", "ubuntu:noble", "python:3.12-slim-bookworm",
     "mldeploy/debian:bookworm", "mldeploy/debian:buster", "debian", "ubuntu:latest", "debian:stable-slim", "someone/ubuntu:14.04"],
)
def test_an_os_in_range_or_not_readable_at_preview_passes(provider: BaseImageProvider, tmp_path: Path, image: str) -> None:
    # Images other than the official debian/ubuntu/python ones, and tags without a version, are left to the check after the build.
    assert reasons(provider, context(tmp_path, f"FROM {image}\nRUN true\n")) == []


def test_a_widened_requirement_passes(provider: BaseImageProvider, tmp_path: Path) -> None:
    assert reasons(provider, DEMO_DOCKERFILE.parent, build_args={"PYTHON_VERSION": "3.8"}, requirements={"python": ">=3.8,<3.14"}) == []
    assert reasons(provider, demo(tmp_path, "3.8"), requirements={"python": ">=3.8"}) == []
    [reason] = reasons(provider, demo(tmp_path, "3.8"), requirements={"python": "==3.11.*"})
    assert "Fix: change the default (ARG PYTHON_VERSION=3.11)" in reason and "requirements={'python': '>=3.8'}" in reason
    assert reasons(provider, context(tmp_path, "FROM ubuntu:18.04\n"), requirements={"os": {"ubuntu": "18.04"}}) == []
    assert reasons(provider, context(tmp_path, "FROM debian:buster\n"), requirements={"os": {}}) == []


def test_a_family_the_requirements_do_not_list(provider: BaseImageProvider, tmp_path: Path) -> None:
    [reason] = reasons(provider, context(tmp_path, "FROM debian:12\n"), requirements={"os": {"ubuntu": "22.04"}})
    assert "the image would be Debian 12 (FROM debian:12 on line 1" in reason and "not a family requirements.os lists (ubuntu>=22.04)" in reason
    assert "requirements={'os': {'ubuntu': '22.04', 'debian': '12'}}" in reason
    # Ubuntu's os-release says ID_LIKE=debian: the check after the build takes it as Debian, so does this one.
    assert reasons(provider, context(tmp_path, "FROM ubuntu:18.04\n"), requirements={"os": {"debian": "11"}}) == []


def test_the_last_stage_and_the_stages_it_is_built_on(provider: BaseImageProvider, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM debian:buster AS base\nRUN true\nFROM base AS app\nRUN true\n")
    [reason] = reasons(provider, ctx)
    assert reason.startswith("dockerfile: the image would be Debian 10 (FROM debian:buster on line 1 of"), reason
    # A build stage the image is not built on does not count.
    assert reasons(provider, context(tmp_path, "FROM debian:buster AS build\nRUN true\nFROM debian:12\nCOPY --from=build /a /a\n")) == []
    # ARG PYTHON_VERSION in a stage the last one is built on.
    [reason] = reasons(provider, context(tmp_path, "FROM debian:12 AS base\nARG PYTHON_VERSION=3.8\nFROM base\n"))
    assert reason.startswith("dockerfile: the image's Python would be 3.8 (ARG PYTHON_VERSION=3.8 on line 2"), reason


def test_from_through_a_build_arg_names_the_build_arg(provider: BaseImageProvider, tmp_path: Path) -> None:
    ctx = context(tmp_path, "ARG BASE_OS=debian:12\nFROM ${BASE_OS}\n")
    assert reasons(provider, ctx) == []
    [reason] = reasons(provider, ctx, build_args={"BASE_OS": "ubuntu:18.04"})
    assert reason.startswith("build_args.BASE_OS: the image would be Ubuntu 18.04 (FROM ${BASE_OS} (= ubuntu:18.04) on line 2"), reason
    [reason] = reasons(provider, context(tmp_path, "ARG BASE_OS=debian:buster\nFROM ${BASE_OS}\n"))
    assert reason.startswith("dockerfile: the image would be Debian 10 (FROM ${BASE_OS} (= debian:buster) on line 2 of"), reason
    assert "(ARG BASE_OS=debian:buster on line 1)" in reason


def test_python_and_os_both_reported(provider: BaseImageProvider, tmp_path: Path) -> None:
    [reason] = reasons(provider, context(tmp_path, "FROM python:3.7-slim-buster\n"))
    assert reason.startswith("dockerfile: the image's Python would be 3.7"), reason
    assert "\nAnd dockerfile: the image would be Debian 10" in reason


# -- unknown at preview ---------------------------------------------------------------------
@pytest.mark.parametrize("unknown", [UNKNOWN, Unknown()], ids=["sentinel", "object"])
def test_unknown_build_args_are_skipped(provider: BaseImageProvider, tmp_path: Path, unknown: Any) -> None:
    assert reasons(provider, demo(tmp_path, "3.8"), build_args=unknown) == []
    assert reasons(provider, demo(tmp_path, "3.8"), build_args={"PYTHON_VERSION": unknown}) == []
    # An unknown build arg used in FROM leaves the base unread; a known PYTHON_VERSION is still checked.
    ctx = context(tmp_path, "ARG BASE_OS=debian:buster\nFROM ${BASE_OS}\nARG PYTHON_VERSION=3.11\n")
    assert reasons(provider, ctx, build_args={"BASE_OS": unknown}) == []
    [reason] = reasons(provider, ctx, build_args={"BASE_OS": unknown, "PYTHON_VERSION": "3.8"})
    assert reason.startswith("build_args.PYTHON_VERSION: the image's Python would be 3.8"), reason


@pytest.mark.parametrize("value", ["latest", "3", "", "3.11-dev"])
def test_a_python_version_that_is_not_a_version_is_left_to_the_check_after_the_build(provider: BaseImageProvider, value: str) -> None:
    assert reasons(provider, DEMO_DOCKERFILE.parent, build_args={"PYTHON_VERSION": value}) == []


def test_an_arg_without_default_or_build_arg_is_left_to_the_check_after_the_build(provider: BaseImageProvider, tmp_path: Path) -> None:
    assert reasons(provider, context(tmp_path, "FROM debian:12\nARG PYTHON_VERSION\n")) == []
    [reason] = reasons(provider, context(tmp_path, "ARG PYTHON_VERSION=3.8\nFROM debian:12\nARG PYTHON_VERSION\n"))
    assert reason.startswith("dockerfile: the image's Python would be 3.8 (ARG PYTHON_VERSION=3.8 on line 1 of"), reason
