"""Where a deployment's base image comes from, with which credentials, checked at preview.

The document's ``inferenceconfig.json`` names the base image (``baseImage``)
and, for a private registry outside the workspace, ``baseImageRegistry``
(``address``, ``username``, ``password``). The rules:

- With ``baseImageRegistry``, the base image is pulled with exactly its
  credentials, and only from its address: a ``baseImage`` without a registry
  part is taken to be on that address; one naming another registry is an
  error (the credentials would go to the wrong place).
- Without it, an image on the workspace's own registry (the local registry,
  where BaseImage pushes) is pulled with the deployment's pull identity; an
  image on any other registry is pulled anonymously. The deployment's own
  identities never leave the registry they belong to.
- A reference with no registry part (Docker Hub's grammar) that is present in
  the local Docker Engine is used as it is, without a registry request
  (images built here, e.g. ``docker build -t mybase:1``).

``resolve`` asks the image's registry for its manifest (``HEAD``, the same
request a pull starts with) and returns the reference pinned by digest, so a
moved tag rebuilds the derived image. Each way it can fail is a
``ValidationError`` naming ``baseImage`` or ``baseImageRegistry`` and the fix:
a registry that does not answer, an image or tag it does not have, credentials
it refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import AuthError, BackendError, NotFound, ValidationError
from .refs import DOCKER_HUB, ImageRef, parse_image_ref

REGISTRY_FIELD = "inference_config.baseImageRegistry"


@dataclass(frozen=True)
class BaseImageSource:
    """The base image as a reference, with the credentials it is pulled with (never printed)."""

    ref: ImageRef
    field: str  # the input that named it: "base_image" or "inference_config.baseImage"
    username: str | None = None
    password: str | None = None
    credentials_from: str = "anonymous"  # "baseImageRegistry", "pull_identity" or "anonymous"
    credentials_field: str = REGISTRY_FIELD

    def __repr__(self) -> str:
        return f"BaseImageSource({self.ref}, user={self.username!r}, from={self.credentials_from})"

    @property
    def auth(self) -> dict[str, str] | None:
        return {"username": self.username, "password": self.password} if self.username and self.password else None

    @property
    def tag_or_digest(self) -> str:
        return self.ref.digest or self.ref.tag or "latest"


def source(
    base_image: str,
    field: str,
    registry: dict[str, Any] | None,
    password: str | None,
    workspace_address: str,
    pull_auth: dict[str, Any] | None,
) -> BaseImageSource:
    """Which registry the base image is on and which credentials it is pulled with (module docstring)."""
    address = (registry or {}).get("address")
    if registry is not None:
        if not address:
            raise ValidationError(REGISTRY_FIELD, "baseImageRegistry needs an address (e.g. 'myregistry.azurecr.io')")
        from .refs import check_address

        check_address(address, REGISTRY_FIELD + ".address")
    ref = parse_image_ref(base_image, field)
    first = base_image.split("/", 1)[0]
    named_registry = "/" in base_image and (("." in first) or (":" in first) or first == "localhost")
    if address and not named_registry:
        ref = parse_image_ref(f"{address}/{base_image}", field)
    elif address and ref.address != address:
        raise ValidationError(
            REGISTRY_FIELD,
            f"baseImageRegistry.address is {address!r} but baseImage {base_image!r} is on {ref.address!r}; "
            "the registry credentials are only ever sent to their own address: make the two agree",
        )
    username = (registry or {}).get("username") or None
    if registry is not None and (username or password):
        if not (username and password):
            missing = "username" if not username else "password"
            raise ValidationError(REGISTRY_FIELD, f"baseImageRegistry has a {'password' if username is None else 'username'} but no {missing}; give both, or neither for anonymous pulls")
        return BaseImageSource(ref, field, username, password, "baseImageRegistry")
    if ref.address == workspace_address and pull_auth and pull_auth.get("username"):
        return BaseImageSource(ref, field, str(pull_auth["username"]), str(pull_auth.get("password") or ""), "pull_identity", "pull_identity")
    return BaseImageSource(ref, field, credentials_from="anonymous")


def is_local_only(src: BaseImageSource, base_image: str, local_exists: Any) -> bool:
    """A Docker Hub style reference (no registry part) that the local engine has: used without a registry request."""
    return src.ref.address == DOCKER_HUB and src.credentials_from == "anonymous" and bool(local_exists(base_image))


def resolve(src: BaseImageSource, registry_factory: Any = None) -> str:
    """The base image pinned by digest (``address/repository@sha256:...``), asked of its registry with its credentials."""
    if registry_factory is None:
        from .backends.oci_registry import OciRegistry as registry_factory
    reg = registry_factory(src.ref.address, src.username, src.password, timeout=15)
    where = f"{src.ref}"
    try:
        digest = reg.manifest_digest(src.ref.repository, src.tag_or_digest)
    except AuthError as exc:
        if src.credentials_from == "baseImageRegistry":
            fix = "fix baseImageRegistry.username / password (the password is the registry identity's secret)"
        elif src.credentials_from == "pull_identity":
            fix = "the deployment's pull identity was refused: check that pull_identity is an identity of this registry"
        else:
            fix = f"the registry needs credentials: add baseImageRegistry {{address: {src.ref.address!r}, username, password}}"
        raise ValidationError(src.credentials_field, f"registry {src.ref.address} refused access to {where}: {exc}; {fix}") from exc
    except NotFound as exc:
        raise ValidationError(
            src.field,
            f"registry {src.ref.address} has no image {where} (manifest unknown); check the repository and tag in baseImage",
        ) from exc
    except BackendError as exc:
        raise ValidationError(
            src.field,
            f"cannot check base image {where}: {exc}. Fix the registry address in baseImage"
            + (" / baseImageRegistry.address" if src.credentials_from == "baseImageRegistry" else "")
            + ", or make the registry reachable from this machine, or use an image on the local registry (BaseImage)",
        ) from exc
    return src.ref.pinned(digest)


__all__ = ["REGISTRY_FIELD", "BaseImageSource", "is_local_only", "resolve", "source"]
