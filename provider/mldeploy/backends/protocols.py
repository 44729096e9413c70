"""The interfaces resources depend on. One real implementation per system in this package."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import ValidationError


@dataclass(frozen=True)
class Identity:
    """A registry identity as the identity store knows it. The secret is never stored, only returned at creation/rotation."""

    client_id: str
    role: str
    display_name: str
    registry_address: str
    created_at: str
    expires_at: str | None


class IdentityStore(Protocol):
    """Registry identities with a role (``AcrPull`` or ``AcrPush``): local htpasswd+nginx, or Entra ID on Azure."""

    @property
    def registry_address(self) -> str:
        """The registry these identities log in to (``host:port`` or a login server)."""
        ...

    def create(self, display_name: str, role: str, expires_in_days: int | None) -> tuple[Identity, str]:
        """Create an identity; returns it with its new secret."""
        ...

    def get(self, client_id: str) -> Identity:
        """The identity, or ``NotFound`` if it does not exist (or has expired)."""
        ...

    def rotate(self, client_id: str, expires_in_days: int | None) -> tuple[Identity, str]:
        """A new secret for the identity; the old one is refused from now on."""
        ...

    def update(self, client_id: str, display_name: str) -> Identity:
        """Change metadata only."""
        ...

    def delete(self, client_id: str) -> None:
        """Revoke the identity. A missing identity is not an error."""
        ...


@dataclass(frozen=True)
class RegisteredModel:
    """One immutable version of a registered model, ``name:version``, as a model registry knows it.

    ``digest`` is mldeploy's content digest (``sha256:<hex>``, see ``mldeploy.hashing``);
    ``download`` is where a deployment fetches the files from (a ``file://`` URI for the
    local registry, a blob/datastore URI on Azure); ``properties`` are fixed at creation.
    """

    name: str
    version: int
    model_uri: str
    digest: str
    size_bytes: int
    created_at: str
    download: str
    description: str
    tags: dict[str, str]
    properties: dict[str, str]


class ModelRegistry(Protocol):
    """Registered model versions: the embedded MLflow registry locally, the workspace registry on Azure ML.

    Versions are numbered by the registry. Content and ``properties`` never change
    after ``create``; only ``description`` and ``tags`` may be updated.
    """

    location: str

    def validate_name(self, name: str, field: str = "model_name") -> None:
        """Raise ``ValidationError(field, ...)`` if the registry would reject this model name. No I/O."""
        ...

    def create(
        self,
        name: str,
        path: str,
        digest: str,
        description: str,
        tags: dict[str, str],
        properties: dict[str, str],
    ) -> RegisteredModel:
        """Copy the files at ``path`` into the registry's storage and register a new version.

        Raises ``ValidationError("path", ...)`` if the content no longer matches ``digest``;
        nothing stays registered or stored then.
        """
        ...

    def get(self, name: str, version: int) -> RegisteredModel:
        """The version, or ``NotFound`` if it does not exist."""
        ...

    def update(self, name: str, version: int, description: str, tags: dict[str, str]) -> RegisteredModel:
        """Set the description and replace the user tags (tags not given are removed)."""
        ...

    def delete(self, name: str, version: int) -> None:
        """Delete the version and its stored files. A missing version is not an error."""
        ...


@dataclass(frozen=True)
class BuiltImage:
    """A local image as the engine knows it: ``id`` (``sha256:...``), ``size_bytes`` (uncompressed) and its tags."""

    id: str
    size_bytes: int
    tags: tuple[str, ...] = ()
    repo_digests: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProbedFacts:
    """What a short run of an image found: ``/etc/os-release`` text and the Python and Conda versions (or None)."""

    os_release: str
    python_version: str | None
    conda_version: str | None


class ImageBuilder(Protocol):
    """Builds, tags, pushes, pulls, probes and removes images on a container engine (Docker Engine)."""

    def build(
        self,
        context_dir: str,
        dockerfile: str,
        tag: str,
        build_args: dict[str, str],
        log_path: str,
        platform: str | None = None,
        nocache: bool = False,
        label: str = "build",
        labels: dict[str, str] | None = None,
    ) -> BuiltImage:
        """Build from a context directory; progress per step, full output to ``log_path``. ``label`` names the build in
        progress lines; ``labels`` are set on the image.

        Raises ``BuildError`` naming the failing step and the last lines of output.
        """
        ...

    def tag(self, image: str, ref: str) -> None:
        """Tag a local image (id or ref) as ``ref`` (``address/repository:tag``)."""
        ...

    def push(self, ref: str, auth: dict[str, str] | None) -> str:
        """Push ``address/repository:tag``; returns the manifest digest. ``AuthError`` when refused."""
        ...

    def pull(self, ref: str, auth: dict[str, str] | None) -> BuiltImage:
        """Pull a reference; ``NotFound`` when the registry has no such manifest, ``AuthError`` when refused."""
        ...

    def inspect(self, ref: str) -> BuiltImage:
        """The local image, or ``NotFound``."""
        ...

    def probe(self, image: str) -> ProbedFacts:
        """Run the image briefly (no network) and read its OS, Python and Conda versions."""
        ...

    def remove(self, ref: str) -> None:
        """Remove a local image tag/reference. Missing is not an error; an image in use is left alone."""
        ...


class ImageRegistry(Protocol):
    """An OCI distribution registry (the v2 HTTP API) as seen with one set of credentials."""

    address: str

    def manifest_digest(self, repository: str, reference: str) -> str:
        """The manifest digest a tag or digest resolves to; ``NotFound`` for a definite 404/MANIFEST_UNKNOWN."""
        ...

    def delete_manifest(self, repository: str, digest: str) -> None:
        """Delete a manifest by digest (and with it every tag on it). ``NotFound`` when already gone."""
        ...


# -- runtimes: where an InferenceDeployment's derived image runs --------------------------------------------
@dataclass(frozen=True)
class DeploySpec:
    """Everything a runtime needs to run (or update) one deployment. Built by ``InferenceDeployment``.

    ``image_ref`` is the pushed derived image by digest (``address/repository@sha256:...``), or None on
    targets that build the image themselves (azure). ``deployment`` is the validated
    ``deploymentconfig.json`` (camelCase keys). ``labels`` carry ``mldeploy.service``,
    ``mldeploy.stack`` and ``mldeploy.urn``: every object a runtime creates carries them, and a
    runtime never removes an object whose labels name another stack. ``keys`` is (primary,
    secondary) when ``authEnabled``. ``previous`` is the running deployment's outputs on update,
    None on create. ``props`` is the resource's full input/props dict, for targets that need more
    (azure: source directory, conda file, models).
    """

    service: str
    image_ref: str | None
    entry_script: str
    deployment: dict[str, Any]
    port: int
    labels: dict[str, str]
    registry: str
    pull_auth: dict[str, str]
    push_auth: dict[str, str]
    keys: tuple[str, str] | None
    health_timeout: float
    previous: dict[str, Any] | None
    props: dict[str, Any]


@dataclass(frozen=True)
class LiveState:
    """What ``read`` found running: ``state`` (``running``, ``degraded``, ``stopped``, ...), the
    replica count and image actually serving, and any target-specific facts to merge into outputs."""

    state: str
    replicas: int | None = None
    image: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)


class Runtime(Protocol):
    """One deployment target (``local``, ``swarm``, ``kubernetes``, ``azure``). Chosen in ``backends/select.py``.

    Implementations live one per module and translate their library's exceptions into
    ``mldeploy.errors`` in one place. ``progress`` receives one-line messages for the user.
    """

    target: str
    builds_image: bool  # whether mldeploy builds and pushes a derived image for this target

    def validate(self, deployment: dict[str, Any], source: str, warn: Callable[[str], None]) -> None:
        """Check-time field rules for this target (no I/O): raise ``ValidationError("deployment_config.<field>", ...)``
        for a field it cannot honour (``computeType`` included: each runtime says which it runs); ``warn`` for one it
        ignores."""
        ...

    def preflight(self, spec: DeploySpec, progress: Callable[[str], None]) -> None:
        """Check-time checks that need the live system (ports, ownership by another stack, cluster capacity).
        Raise ``ValidationError`` naming the input. Must not change anything.

        At check time ``spec.image_ref`` and ``spec.keys`` are None and ``spec.previous`` is the resource's
        previous inputs (so a renamed service may keep its own port). Runs only once every other check passed;
        a ``BackendError`` here fails the preview naming ``target``."""
        ...

    def deploy(self, spec: DeploySpec, progress: Callable[[str], None]) -> dict[str, Any]:
        """Create or update the running deployment from ``spec``; wait until it serves. Returns outputs to merge
        (at least ``state``, ``scoring_uri``, ``swagger_uri``). On failure the previous version keeps serving
        and nothing new is left running."""
        ...

    def read(self, service: str, outputs: dict[str, Any]) -> LiveState:
        """What runs now. ``NotFound`` only for a definite "does not exist"."""
        ...

    def remove(self, service: str, outputs: dict[str, Any], labels: dict[str, str], progress: Callable[[str], None]) -> None:
        """Remove everything the deployment runs (only objects whose labels match). Missing is not an error."""
        ...


def check_compute_type(deployment: dict[str, Any], source: str, target: str, allowed: tuple[str, ...], hint: str = "") -> None:
    """``Runtime.validate``'s first rule: the deployment config's ``computeType`` (default ``local``) is one ``target`` runs."""
    compute = deployment.get("computeType", "local")
    if compute not in allowed:
        raise ValidationError(
            "deployment_config.computeType",
            f"computeType {compute!r} (in {source}) is not run by the {target} target; use {' or '.join(map(repr, allowed))}{hint}",
        )
