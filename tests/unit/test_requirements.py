"""Image requirements: the defaults, the check of found facts, and input validation."""

from __future__ import annotations

import pytest
from mldeploy.errors import ValidationError
from mldeploy.requirements import ImageFacts, ImageRequirements, parse_os_release, unmet

DEBIAN12 = ImageFacts(os_id="debian", os_version="12", python_version="3.11.2")


@pytest.mark.parametrize(
    ("facts", "problems"),
    [
        (DEBIAN12, []),
        (ImageFacts(os_id="ubuntu", os_version="22.04", python_version="3.10.12"), []),
        (ImageFacts(os_id="ubuntu", os_version="16.04", python_version="3.10.12"), ["os debian>=11 or ubuntu>=20.04: found ubuntu 16.04"]),
        (ImageFacts(os_id="debian", os_version="10", python_version="3.7.3"),
         ["os debian>=11 or ubuntu>=20.04: found debian 10", "python >=3.9,<3.14: found python 3.7.3"]),
        (ImageFacts(os_id="debian", os_version="12"), ["python >=3.9,<3.14: no python3 or python on the image's PATH"]),
        (ImageFacts(os_id="debian", os_version="12", python_version="3.14.0"), ["python >=3.9,<3.14: found python 3.14.0"]),
        (ImageFacts(os_id="alpine", os_version="3.20", python_version="3.12.1"), ["os debian>=11 or ubuntu>=20.04: found alpine 3.20"]),
        (ImageFacts(python_version="3.12.1"), ["os debian>=11 or ubuntu>=20.04: found no /etc/os-release"]),
        (ImageFacts(os_id="debian", python_version="3.12.1"), ["os debian>=11 or ubuntu>=20.04: found debian (no VERSION_ID)"]),
        # A derivative matches through ID_LIKE (its own version numbers are not Debian's).
        (ImageFacts(os_id="linuxmint", os_id_like=["ubuntu", "debian"], os_version="21.3", python_version="3.10.12"), []),
    ],
)
def test_default_requirements(facts: ImageFacts, problems: list[str]) -> None:
    assert unmet(ImageRequirements(), facts) == problems


def test_the_documents_original_requirements_with_conda() -> None:
    req = ImageRequirements(os={"ubuntu": "16.04"}, python=">=3.5,<3.7", conda=True, conda_min="4.5")
    assert unmet(req, ImageFacts(os_id="ubuntu", os_version="16.04", python_version="3.6.9", conda_version="4.5.11")) == []
    assert unmet(req, ImageFacts(os_id="ubuntu", os_version="16.04", python_version="3.6.9", conda_version="4.3.0")) == [
        "conda>=4.5: found conda 4.3.0"
    ]
    assert unmet(req, DEBIAN12) == [
        "os ubuntu>=16.04: found debian 12",
        "python >=3.5,<3.7: found python 3.11.2",
        "conda>=4.5: no conda on the image's PATH",
    ]
    assert unmet(ImageRequirements(conda=True), DEBIAN12) == ["conda: no conda on the image's PATH"]


def test_unchecked_parts() -> None:
    assert unmet(ImageRequirements(os={}, python=None), ImageFacts()) == []


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ({"python": "3.9+"}, "is not a version range"),
        ({"os": {"debian": "eleven"}}, "is not a version"),
        ({"conda_min": "new"}, "is not a version"),
        ({"pyhton": ">=3.9"}, "pyhton"),
        ("debian", "expected a mapping"),
    ],
)
def test_invalid_requirements(value, says) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError) as exc:
        ImageRequirements.from_input(value)
    assert exc.value.field == "requirements"
    assert says in exc.value.message


def test_from_input_defaults_and_round_trip() -> None:
    assert ImageRequirements.from_input(None) == ImageRequirements()
    req = ImageRequirements.from_input({"os": {"Ubuntu": "22.04"}, "python": ">=3.10", "conda": None})
    assert req.os == {"ubuntu": "22.04"} and req.conda is False
    assert ImageRequirements.from_input(req.model_dump()) == req
    # python=None turns the Python check off (as ImageRequirements(python=None) does), also through the resource input.
    off = ImageRequirements.from_input({"python": None})
    assert off.python is None and "python not checked" in off.describe()
    assert ImageRequirements.from_input(off.model_dump()) == off


def test_parse_os_release() -> None:
    text = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n# c\n'
    osr = parse_os_release(text)
    assert osr["ID"] == "debian" and osr["VERSION_ID"] == "12" and osr["PRETTY_NAME"] == "Debian GNU/Linux 12 (bookworm)"
