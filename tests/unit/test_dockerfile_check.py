"""The preview-time Dockerfile check against Docker's own parser test files (tests/unit/data/buildkit_parser, vendored)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mldeploy import dockerfile_check
from mldeploy.errors import ValidationError

DATA = Path(__file__).parent / "data" / "buildkit_parser"
POSITIVE = sorted(p.name for p in (DATA / "testfiles").iterdir())
NEGATIVE = sorted(p.name for p in (DATA / "testfiles-negative").iterdir())


def _expected_keywords(result: str) -> list[str]:
    """The instruction keywords of the parser's expected answer, e.g. ``(from "image")`` -> FROM."""
    return [line[1:].split(None, 1)[0].rstrip(")").upper() for line in result.splitlines() if line.startswith("(")]


@pytest.mark.parametrize("name", POSITIVE)
def test_the_same_instructions_as_dockers_parser(name: str) -> None:
    case = DATA / "testfiles" / name
    found = dockerfile_check.check((case / "Dockerfile").read_text(), allow_no_from=True)
    assert [i.keyword for i in found] == _expected_keywords((case / "result").read_text())


@pytest.mark.parametrize("name", NEGATIVE)
def test_what_dockers_parser_refuses_is_refused(name: str) -> None:
    with pytest.raises(ValueError):
        dockerfile_check.check((DATA / "testfiles-negative" / name / "Dockerfile").read_text(), allow_no_from=True)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("FROM debian\nRUNN echo hi\n", "line 2: unknown instruction: RUNN"),
        ("FROM debian\nRUN echo \\\n  hi\nCOPY\n", "line 4: COPY requires at least one argument"),
        ("RUN echo hi\nFROM debian\n", "line 1: no build stage"),
        ("ARG V=1\nFROM debian:$V\nRUN <<EOF\nnot an instruction\nEOF\nCMD x\n", None),
        ("# escape=`\nFROM debian\nRUN echo `\n  hi\n", None),
        ("FROM debian\nRUN <<EOF\nunterminated\n", "heredoc <<EOF is never closed"),
        ("FROM debian\nONBUILD FROM x\n", "ONBUILD cannot take FROM"),
    ],
)
def test_rules(text: str, error: str | None) -> None:
    if error is None:
        dockerfile_check.check(text)
    else:
        with pytest.raises(ValueError, match=error):
            dockerfile_check.check(text)


def test_a_file_error_names_the_dockerfile_and_the_input(tmp_path: Path) -> None:
    df = tmp_path / "Dockerfile"
    df.write_text("FROM debian\nRUN echo \\\n ok\nCOPPY a b\n")
    with pytest.raises(ValidationError) as info:
        dockerfile_check.check_file(df)
    assert info.value.field == "dockerfile"
    assert f"in {df} on line 4: unknown instruction: COPPY" in info.value.message
