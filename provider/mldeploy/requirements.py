"""What a base image must provide, and the check of what an image was found to have.

The source document asks for "Ubuntu 16.04 or greater, Conda 4.5.# or greater,
Python 3.5.# or 3.6.#". Updated to what the inference server
(azureml-inference-server-http 1.5) needs today, the defaults are:

- OS: Debian 11 or later, or Ubuntu 20.04 or later (``/etc/os-release``'s
  ``ID`` and ``VERSION_ID``; a derivative matches through ``ID_LIKE`` only
  when its own id is not listed, and then its version is not compared);
- Python: ``>=3.9,<3.14`` (a PEP 440 specifier; the ``python3`` on the
  image's ``PATH``, else ``python``);
- Conda: not required. Set ``conda=True`` (optionally ``conda_min``) to
  require it, as the document did. This machine cannot download Conda
  (no Anaconda repository is reachable), so the demo image has none and a
  requirement for Conda can only be met by an image built elsewhere.

``ImageFacts`` is what a short run of the image found; ``unmet(requirements,
facts)`` lists each unmet requirement with the value found, e.g.
``"python >=3.9,<3.14: no python3 or python on the image's PATH"``.
"""

from __future__ import annotations

from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from .errors import ValidationError

DEFAULT_OS = {"debian": "11", "ubuntu": "20.04"}
DEFAULT_PYTHON = ">=3.9,<3.14"


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except (InvalidVersion, TypeError):
        return None


class ImageRequirements(BaseModel):
    """OS families with minimum versions, a Python version range, and whether Conda is required."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    os: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_OS))
    python: str | None = DEFAULT_PYTHON
    conda: bool = False
    conda_min: str | None = None

    @field_validator("os")
    @classmethod
    def _os(cls, v: dict[str, str]) -> dict[str, str]:
        out = {}
        for family, minimum in v.items():
            minimum = str(minimum)
            if _version(minimum) is None:
                raise ValueError(f"minimum version {minimum!r} for {family!r} is not a version such as '11' or '20.04'")
            out[family.lower()] = minimum
        return out

    @field_validator("python")
    @classmethod
    def _python(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            SpecifierSet(v)
        except InvalidSpecifier:
            raise ValueError(f"{v!r} is not a version range such as '>=3.9,<3.14'") from None
        return v

    @field_validator("conda_min")
    @classmethod
    def _conda_min(cls, v: str | None) -> str | None:
        if v is not None and _version(v) is None:
            raise ValueError(f"{v!r} is not a version such as '4.5'")
        return v

    @classmethod
    def from_input(cls, value: Any, field: str = "requirements") -> "ImageRequirements":
        """From a resource input (a dict, or None for the defaults); errors become ``ValidationError(field, ...)``."""
        if value is None:
            return cls()
        if isinstance(value, ImageRequirements):
            return value
        if not isinstance(value, dict):
            raise ValidationError(field, f"expected a mapping like {{'os': {DEFAULT_OS}, 'python': '{DEFAULT_PYTHON}', 'conda': False}}")
        try:
            # None means the default, except for python, where it means "not checked" (``describe``).
            return cls(**{k: v for k, v in value.items() if v is not None or k == "python"})
        except PydanticValidationError as exc:
            msgs = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or field}: {e['msg']}" for e in exc.errors())
            raise ValidationError(field, msgs) from None

    def describe(self) -> str:
        os_part = " or ".join(f"{k}>={v}" for k, v in self.os.items()) or "any OS"
        py = f"python {self.python}" if self.python else "python not checked"
        conda = f"conda>={self.conda_min}" if self.conda and self.conda_min else ("conda" if self.conda else "conda not required")
        return f"{os_part}; {py}; {conda}"


class ImageFacts(BaseModel):
    """What a short run of the image found. ``None``: not present."""

    os_id: str | None = None
    os_id_like: list[str] = Field(default_factory=list)
    os_version: str | None = None
    os_pretty: str | None = None
    python_version: str | None = None
    conda_version: str | None = None

    @property
    def os_label(self) -> str:
        if not self.os_id:
            return "no /etc/os-release"
        return f"{self.os_id} {self.os_version or '(no VERSION_ID)'}"


def parse_os_release(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip().strip("\"'")
    return out


def unmet(req: ImageRequirements, facts: ImageFacts) -> list[str]:
    """One message per unmet requirement, naming it and the value found; empty when all are met."""
    problems: list[str] = []
    if req.os:
        want = " or ".join(f"{k}>={v}" for k, v in req.os.items())
        family = facts.os_id if facts.os_id in req.os else next((f for f in facts.os_id_like if f in req.os), None)
        if not facts.os_id:
            problems.append(f"os {want}: found no /etc/os-release")
        elif family is None:
            problems.append(f"os {want}: found {facts.os_label}")
        elif family == facts.os_id:
            found = _version(facts.os_version or "")
            if found is None or found < Version(req.os[family]):
                problems.append(f"os {want}: found {facts.os_label}")
    if req.python:
        if not facts.python_version:
            problems.append(f"python {req.python}: no python3 or python on the image's PATH")
        else:
            v = _version(facts.python_version)
            if v is None or v not in SpecifierSet(req.python):
                problems.append(f"python {req.python}: found python {facts.python_version}")
    if req.conda:
        want = f"conda>={req.conda_min}" if req.conda_min else "conda"
        if not facts.conda_version:
            problems.append(f"{want}: no conda on the image's PATH")
        elif req.conda_min:
            v = _version(facts.conda_version)
            if v is None or v < Version(req.conda_min):
                problems.append(f"{want}: found conda {facts.conda_version}")
    return problems


__all__ = ["DEFAULT_OS", "DEFAULT_PYTHON", "ImageFacts", "ImageRequirements", "parse_os_release", "unmet"]
