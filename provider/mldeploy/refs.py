"""Image references and the kinds of registry a base image can live in.

``parse_image_ref("myregistry.example/myimage:v1")`` gives
``ImageRef(address="myregistry.example", repository="myimage", tag="v1", digest=None)``.
The grammar is Docker's (distribution/reference):

- the first path component is a registry address when it contains ``.`` or
  ``:`` or is ``localhost``; otherwise the reference is on Docker Hub
  (``docker.io``, and a one-component name gets the ``library/`` prefix);
- repository components are lower-case ``[a-z0-9]`` runs joined by ``.``,
  ``_``, ``__`` or dashes; the whole name is at most 255 characters;
- a tag is ``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``; a digest is
  ``sha256:<64 hex>``; a reference may carry both (``repo:tag@sha256:...``).

Malformed references raise ``ValidationError(field, ...)`` saying what is wrong.

The source document lists three places a custom base image can come from.
Each is a pydantic model, told apart by ``kind``:

- ``WorkspaceRegistry``: the workspace's own registry; the credentials come
  from the workspace (locally: a short-lived ``AcrPush`` identity made by the
  workspace's identity store for the duration of one operation, then revoked).
- ``PrivateRegistry``: a standalone private registry with a service
  principal's username and password (``SecretStr``: never printed or logged).
- ``PublicRegistry``: no credentials at all.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from .errors import ValidationError

DOCKER_HUB = "docker.io"

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]{1,5})?$")
_IPV6 = re.compile(r"^\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?$")


class ImageRef(BaseModel):
    """A parsed image reference. ``tag`` and ``digest`` may both be absent (Docker then means ``latest``)."""

    model_config = ConfigDict(frozen=True)

    address: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``address/repository``: what ``docker push`` takes."""
        return f"{self.address}/{self.repository}"

    def with_tag(self, tag: str) -> "ImageRef":
        return ImageRef(address=self.address, repository=self.repository, tag=tag)

    def pinned(self, digest: str) -> str:
        """``address/repository@sha256:...``."""
        return f"{self.name}@{digest}"

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def is_address(component: str) -> bool:
    """Whether a reference's first component names a registry (Docker's rule)."""
    return "." in component or ":" in component or component == "localhost"


def check_repository(repository: str, field: str = "repository") -> str:
    """A repository path (``demo/base``), without address, tag or digest."""
    if not isinstance(repository, str) or not repository:
        raise ValidationError(field, "must be a non-empty repository path such as 'demo/base'")
    for comp in repository.split("/"):
        if not comp:
            raise ValidationError(field, f"{repository!r} has an empty path component (a leading, trailing or doubled '/')")
        if not _COMPONENT.match(comp):
            raise ValidationError(
                field,
                f"{repository!r}: component {comp!r} is not valid; use lower-case letters, digits and "
                "single separators ('.', '_', '__' or '-') between them",
            )
    if len(repository) > 255:
        raise ValidationError(field, f"repository name is {len(repository)} characters; at most 255 are allowed")
    return repository


def check_tag(tag: str, field: str = "tag") -> str:
    if not isinstance(tag, str) or not _TAG.match(tag):
        raise ValidationError(
            field,
            f"{tag!r} is not a valid tag: up to 128 characters of letters, digits, '_', '.' and '-', not starting with '.' or '-'",
        )
    return tag


def check_address(address: str, field: str = "registry") -> str:
    if not isinstance(address, str) or not (_HOST.match(address) or _IPV6.match(address)):
        raise ValidationError(field, f"{address!r} is not a registry address such as 'myregistry.example' or '127.0.0.1:5000'")
    if ":" in address and not address.endswith("]"):
        port = int(address.rsplit(":", 1)[1])
        if not 0 < port < 65536:
            raise ValidationError(field, f"{address!r}: port {port} is out of range")
    return address


def parse_image_ref(ref: str, field: str = "image") -> ImageRef:
    """Parse ``[address/]repository[:tag][@sha256:digest]`` (module docstring), or raise ``ValidationError``."""
    if not isinstance(ref, str) or not ref.strip():
        raise ValidationError(field, "empty image reference; expected e.g. 'myregistry.example/myimage:v1'")
    if ref != ref.strip() or any(c.isspace() for c in ref):
        raise ValidationError(field, f"{ref!r} contains whitespace")
    rest, digest = ref, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.match(digest):
            raise ValidationError(field, f"{ref!r}: digest {digest!r} is not 'sha256:' followed by 64 lower-case hex digits")
    if "://" in ref:
        raise ValidationError(field, f"{ref!r}: an image reference has no scheme; drop the 'http(s)://'")
    tag = None
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > last_slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        check_tag(tag, field)
    if not rest:
        raise ValidationError(field, f"{ref!r} has no repository name")
    parts = rest.split("/")
    if len(parts) > 1 and is_address(parts[0]):
        address = check_address(parts[0], field)
        repository = "/".join(parts[1:])
    else:
        address = DOCKER_HUB
        repository = rest if len(parts) > 1 else f"library/{rest}"
    try:
        check_repository(repository, field)
    except ValidationError as exc:
        raise ValidationError(field, f"{ref!r}: {exc.message}") from None
    return ImageRef(address=address, repository=repository, tag=tag, digest=digest)


# -- registry kinds ----------------------------------------------------------
class WorkspaceRegistry(BaseModel):
    """The workspace's own registry. Credentials come from the workspace, per operation."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["workspace"] = "workspace"
    address: str


class PrivateRegistry(BaseModel):
    """A standalone private registry reached with a service principal's username and password."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["private"] = "private"
    address: str
    username: str
    password: SecretStr


class PublicRegistry(BaseModel):
    """A registry that needs no credentials."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["public"] = "public"
    address: str


Registry = Annotated[WorkspaceRegistry | PrivateRegistry | PublicRegistry, Field(discriminator="kind")]
KINDS = ("workspace", "private", "public")


def registry_from_inputs(
    registry: str | None,
    workspace_address: str,
    username: str | None = None,
    password: str | None = None,
    kind: str | None = None,
    field: str = "registry",
) -> WorkspaceRegistry | PrivateRegistry | PublicRegistry:
    """The registry kind the inputs describe.

    ``registry`` is ``"local"``/``"workspace"`` (or empty) for the workspace's
    registry, else an address. ``kind`` is inferred when not given: a username
    and password make it ``private``; the workspace's address without them is
    ``workspace``; any other address without them is ``public``.
    """
    if registry in (None, "", "local", "workspace"):
        address = workspace_address
    else:
        address = check_address(str(registry), field)
    if kind is None:
        if username or password:
            kind = "private"
        elif address == workspace_address:
            kind = "workspace"
        else:
            kind = "public"
    if kind not in KINDS:
        raise ValidationError("registry_kind", f"unknown registry kind {kind!r}; one of {', '.join(KINDS)}")
    if kind == "private":
        if not username or not password:
            missing = " and ".join(n for n, v in (("username", username), ("password", password)) if not v)
            raise ValidationError(
                "username" if not username else "password",
                f"a private registry needs a username and a password; {missing} missing "
                "(pass service_principal=<a ServicePrincipal with role AcrPush>, or username= and password=)",
            )
        return PrivateRegistry(address=address, username=username, password=SecretStr(password))
    if username or password:
        raise ValidationError("username", f"a {kind} registry takes no username/password; use registry_kind='private'")
    if kind == "workspace":
        if address != workspace_address:
            raise ValidationError(field, f"the workspace's registry is {workspace_address}, not {address}")
        return WorkspaceRegistry(address=address)
    return PublicRegistry(address=address)


__all__ = [
    "DOCKER_HUB",
    "ImageRef",
    "PrivateRegistry",
    "PublicRegistry",
    "Registry",
    "WorkspaceRegistry",
    "check_address",
    "check_repository",
    "check_tag",
    "is_address",
    "parse_image_ref",
    "registry_from_inputs",
]
