"""BaseImage: the source document's "create a custom base image", as a resource.

Build a Docker image from a context directory and a Dockerfile, check that it
can host the inference server, and push it to a registry. The output
``image_ref`` is pinned by digest (``registry/repo@sha256:...``).

Content digest. The program (this constructor, not the provider) computes
``context_digest`` (``mldeploy.context``): the files the engine will receive
(``.dockerignore`` honoured by the Docker SDK's own code), their modes, the
Dockerfile, the build args and what each ``FROM`` resolves to (a local image's
id, a registry image's digest). It is an input, so ``pulumi preview --diff``
shows when, and why, an image will be rebuilt; unchanged, nothing is built or
pushed. ``triggers`` (any value) forces a rebuild when it changes, without
the layer cache.

Content-addressed reuse. Every image is also tagged ``ctx-<content key>``
(from ``context_digest``, ``platform`` and ``triggers``). If the registry
already holds that tag (another stack, another machine, a stack destroyed
with ``retain_on_delete`` and recreated), the image is
adopted: pulled if not local, checked, tagged, and no build happens.

Requirements. After a build (or an adoption) the image runs for a second with
no network to read ``/etc/os-release``, the Python version and the Conda
version. An image missing a requirement (``mldeploy.requirements``; the
default is what the inference server needs) is not pushed, and the error
lists every unmet requirement with the value found. The facts are outputs:
``os`` (``id``, ``version``, ``name``), ``python_version``, ``conda_version``.
Before that, at preview, what the Dockerfile and its build args already say
(``ARG PYTHON_VERSION``'s value, a ``FROM python:3.8-slim``, ``debian:buster``
or ``ubuntu:18.04`` base) is checked against the requirements
(``mldeploy.declared_facts``): such a mismatch fails ``check`` naming the
build arg or the Dockerfile line, before anything is built or created.

Registries (``mldeploy.refs``): ``registry="local"`` with no credentials is
the workspace's registry, whose credentials come from the workspace (a
short-lived ``AcrPush`` identity per operation, revoked after); a
``service_principal`` (role ``AcrPush``) or ``username``/``password`` makes it
a private registry; another address without credentials is public.

Id: ``<registry>/<repository>:<tag>`` at creation.
Replaced when the registry address or ``repository`` changes (the old
manifest is deleted after the new image is pushed). Updated in place: a new
``context_digest``, ``platform``, ``triggers`` or ``tag`` build (or adopt) and
push, then the superseded manifest is deleted (unless ``retain_on_delete``);
a ``requirements`` change re-checks the recorded facts; credentials and
``retain_on_delete`` are just recorded. A failing build or check leaves the
previous image in place and in state. Preview never builds or pushes.
Read (refresh): the manifest is looked up by digest, the tags by name; a
definite 404 of the manifest reports the image gone, a missing or moved tag
makes the next ``up`` push it again; an auth or network error fails the
refresh and never drops the image from state.
Delete: ``DELETE /v2/<repo>/manifests/<digest>`` (which drops every tag on
it) and the local tags, unless ``retain_on_delete``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pulumi
from pulumi import Input, Output, ResourceOptions, dynamic

from .. import dockerfile_check
from .._lazy import LazyModule
from ..backends import select, wheelhouse_probe
from ..backends.docker_engine import DockerEngine, local_image_id
from ..backends.protocols import ImageBuilder, ImageRegistry
from ..context import context_digest, context_files, dockerfile_path, effective_build_args, from_refs
from ..errors import AuthError, BackendError, NotFound, ValidationError
from ..paths import Policy, contain, program_policy, tree_size
from ..settings import Settings
from ._common import changed, is_unknown, needs, progress, run_checks

if TYPE_CHECKING:
    from .. import declared_facts, refs
    from .. import requirements as reqmod
    from ..requirements import ImageFacts

    RegistryModel = refs.WorkspaceRegistry | refs.PrivateRegistry | refs.PublicRegistry
else:  # built on pydantic: imported when check or a deploy first needs them, not by the program (mldeploy._lazy)
    declared_facts = LazyModule("mldeploy.declared_facts")
    refs = LazyModule("mldeploy.refs")
    reqmod = LazyModule("mldeploy.requirements")

KIND = "BaseImage"
REPLACE_KEYS = ("registry_address", "repository")
UPDATE_KEYS = (
    "context_digest",
    "platform",
    "triggers",
    "tag",
    "build_args",
    "requirements",
    "registry_kind",
    "username",
    "password",
    "retain_on_delete",
)
_PLATFORM = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(?:/[a-z0-9]+)?$")
WORKSPACE_IDENTITY = "mldeploy-baseimage"


# -- the program side: the content digest --------------------------------------
def resolve_parent(ref: str) -> str:
    """What a ``FROM`` reference resolves to: a pinned digest, a local image's id, or a registry's digest.

    Classic builds use a local image when there is one, so a local image's id
    wins; otherwise the registry is asked anonymously. When neither answers the
    reference itself is used, and a changed parent then goes unnoticed (a warning says so).
    """
    if "@" in ref:
        return ref.split("@", 1)[1]
    local = local_image_id(ref)  # one request on the engine's socket, without loading the Docker SDK
    if local is not None:
        return local
    from ..backends.oci_registry import OciRegistry

    try:
        parsed = refs.parse_image_ref(ref, "dockerfile")
        if parsed.address == refs.DOCKER_HUB:
            raise BackendError("Docker Hub needs a token even for anonymous lookups, which mldeploy does not fetch")
        return OciRegistry(parsed.address, timeout=5).manifest_digest(parsed.repository, parsed.tag or "latest")
    except (BackendError, ValidationError) as exc:
        with contextlib.suppress(Exception):
            pulumi.log.warn(
                f"{KIND}: FROM {ref} is not a local image and its registry did not answer ({exc}); "
                "a change to it will not trigger a rebuild. Pull it first to track it."
            )
        return f"unresolved:{ref}"


def _tree_signature(context: str, key: object) -> str:
    """sha256 over ``key`` and every entry under ``context``: name, mode, size, mtime, link target (``lstat``, no reads)."""
    h = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode())
    root = os.path.abspath(context)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            link = os.readlink(full) if stat.S_ISLNK(st.st_mode) else ""
            h.update(f"{os.path.relpath(full, root)}\0{st.st_mode}\0{st.st_size}\0{st.st_mtime_ns}\0{link}\n".encode())
    return h.hexdigest()


_CONTEXT_CACHE_ENTRIES = 256


def compute_context_digest(
    context: str, dockerfile: str | None, build_args: Mapping[str, str] | None, policy: Policy | None = None
) -> str:
    """``context_digest`` as the program computes it (build args with ``WHEELHOUSE_URL`` injected).

    The context and the Dockerfile must lie inside the project or an allowed root (``mldeploy.paths``)
    before anything in them is read; the context's size guard runs whenever it is read (a cache miss).

    Cached by a signature of the context's entries (names, modes, sizes, mtimes; the
    accepted limit of ``mldeploy.hashing``), the Dockerfile's text, the build args and
    what each ``FROM`` resolves to: an unchanged context is neither read nor walked
    through the Docker SDK's ``.dockerignore`` rules (which would load the SDK).
    """
    policy = policy or Policy.current()
    contain(context, "context", policy, what="the build context")
    contain(dockerfile_path(context, dockerfile), "dockerfile", policy, what="the Dockerfile")
    df = dockerfile_path(context, dockerfile)
    if not df.is_file():
        raise ValidationError("dockerfile", f"{str(df)!r} does not exist")
    text = df.read_text()
    settings = Settings.from_env()
    args = effective_build_args(text, build_args, settings.wheelhouse_url)
    parents = [(ref, resolve_parent(ref)) for ref in from_refs(text, args)]
    cache = settings.cache_dir / "context-digests.json"
    try:
        signature = _tree_signature(context, [str(df), dockerfile, text, args, parents, repr(policy)])
        known: dict[str, str] = json.loads(cache.read_text()) if cache.exists() else {}
    except (OSError, ValueError):
        signature, known = "", {}
    if signature and signature in known:
        return known[signature]
    contained_context(context, dockerfile, policy)
    digest = context_digest(context, dockerfile, args, parents)
    if signature:
        known[signature] = digest
        with contextlib.suppress(OSError):
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(dict(list(known.items())[-_CONTEXT_CACHE_ENTRIES:])))
            os.replace(tmp, cache)
    return digest


def contained_context(context: str, dockerfile: str | None, policy: Policy) -> None:
    """Containment and the size guard for a build: the context directory, the Dockerfile, and what Docker would send.

    Links inside the context are sent as links (Docker never follows them), so only the context
    itself and the Dockerfile are resolved.
    """
    ctx = contain(context, "context", policy, what="the build context")
    contain(dockerfile_path(context, dockerfile), "dockerfile", policy, what="the Dockerfile")
    if not ctx.is_dir():
        return
    # The size guard walks what Docker would send through the SDK's .dockerignore rules (which loads the
    # SDK): on every preview the program and check() would repeat it, so a context it passed is remembered
    # by the same stat signature as the context digest's cache.
    cache = Settings.from_env().cache_dir / "context-guarded.json"
    try:
        signature = _tree_signature(str(ctx), ["size guard", dockerfile or "Dockerfile", repr(policy)])
        passed: list[str] = json.loads(cache.read_text()) if cache.exists() else []
    except (OSError, ValueError):
        signature, passed = "", []
    if signature and signature in passed:
        return
    tree_size(context_files(ctx, dockerfile or "Dockerfile"), ctx, "context", policy)
    if signature:
        with contextlib.suppress(OSError):
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps([*passed, signature][-_CONTEXT_CACHE_ENTRIES:]))
            os.replace(tmp, cache)


def _program_context_digest(context: str, dockerfile: str | None, build_args: Mapping[str, str] | None, policy: dict[str, Any]) -> str | None:
    """The digest in the program; ``None`` when an input is wrong, so that check() reports it by name."""
    try:
        return compute_context_digest(context, dockerfile, build_args, Policy.current(policy))
    except ValidationError:
        return None


# -- validators (check) ----------------------------------------------------------
def _check_context(news: dict[str, Any]) -> None:
    ctx, df = news.get("context"), news.get("dockerfile")
    if is_unknown(ctx):
        return
    if not isinstance(ctx, str) or not os.path.isdir(ctx):
        raise ValidationError("context", f"{ctx!r} is not a directory (the build context, e.g. 'base/')")
    if is_unknown(df):
        return
    contained_context(ctx, df, Policy.current(news.get("path_policy")))
    if not dockerfile_path(ctx, df).is_file():
        raise ValidationError("dockerfile", f"{str(dockerfile_path(ctx, df))!r} does not exist (relative paths are relative to the context)")
    dockerfile_check.check_file(dockerfile_path(ctx, df))  # Docker's parse rules: a typo fails at preview


def _check_repository(news: dict[str, Any]) -> None:
    repo = news.get("repository")
    if is_unknown(repo):
        return
    if isinstance(repo, str) and "/" in repo and refs.is_address(repo.split("/", 1)[0]):
        raise ValidationError(
            "repository",
            f"{repo!r} starts with a registry address; pass registry={repo.split('/', 1)[0]!r} and repository={repo.split('/', 1)[1]!r}",
        )
    if isinstance(repo, str) and (":" in repo or "@" in repo):
        raise ValidationError("repository", f"{repo!r} carries a tag or digest; give the tag as tag=")
    refs.check_repository(repo, "repository")  # type: ignore[arg-type]


def _check_tag(news: dict[str, Any]) -> None:
    tag = news.get("tag")
    if is_unknown(tag):
        return
    refs.check_tag(tag, "tag")  # type: ignore[arg-type]
    if str(tag).startswith("ctx-"):
        raise ValidationError("tag", "tags starting with 'ctx-' are reserved for content-addressed tags")


def _check_build_args(news: dict[str, Any]) -> None:
    args = news.get("build_args")
    if args is None or is_unknown(args):
        return
    if not isinstance(args, dict) or not all(isinstance(k, str) and isinstance(v, (str, int, float)) for k, v in args.items()):
        raise ValidationError("build_args", "must map names to strings, e.g. {'PYTHON_VERSION': '3.11'}")


def _check_platform(news: dict[str, Any]) -> None:
    platform = news.get("platform")
    if platform is None or is_unknown(platform):
        return
    if not isinstance(platform, str) or not _PLATFORM.match(platform):
        raise ValidationError("platform", f"{platform!r} is not a platform such as 'linux/amd64' or 'linux/arm64/v8'")


def _check_requirements(news: dict[str, Any]) -> None:
    if is_unknown(news.get("requirements")):
        return
    reqmod.ImageRequirements.from_input(news.get("requirements"))


@needs("context", "dockerfile", "build_args", "requirements")
def _check_declared_requirements(news: dict[str, Any]) -> None:
    """What the Dockerfile and its build args already say (Python version, base OS) against the requirements, before any build.

    ``mldeploy.declared_facts``; anything not known at preview is left to the check after the build.
    """
    args = news.get("build_args")
    if any(is_unknown(news.get(k)) for k in ("context", "dockerfile", "requirements")) or (args is not None and not isinstance(args, dict)):
        return  # a whole build_args not known yet (an output of another resource)
    args = args or {}
    unknown = {k for k, v in args.items() if is_unknown(v)}
    path = dockerfile_path(news["context"], news["dockerfile"])
    text = path.read_text()
    given = effective_build_args(text, {k: v for k, v in args.items() if k not in unknown}, Settings.from_env().wheelhouse_url)
    declared_facts.check(reqmod.ImageRequirements.from_input(news.get("requirements")), text, path, given, unknown)


def _check_registry(news: dict[str, Any]) -> None:
    keys = ("registry", "username", "password", "registry_kind")
    if any(is_unknown(news.get(k)) for k in keys):
        return
    _registry(news)


def _check_context_digest(news: dict[str, Any]) -> None:
    d = news.get("context_digest")
    if is_unknown(d) or d is None:  # None: the program could not compute it; check() does, once the inputs pass
        return
    if not isinstance(d, str) or not re.fullmatch(r"sha256:[0-9a-f]{64}", d):
        raise ValidationError("context_digest", "is computed by the BaseImage constructor; do not set it by hand")


def _check_build_on(news: dict[str, Any]) -> None:
    build_on = news.get("build_on")
    if build_on is None or is_unknown(build_on):
        return
    from ..backends.azure._common import parse_target

    if not isinstance(build_on, str) or not build_on.startswith("azure:"):
        raise ValidationError(
            "build_on",
            f"{build_on!r}: remote builds run on an Azure container registry; pass 'azure:<workspace or registry ARM id>', "
            "or leave build_on unset to build with the local Docker Engine",
        )
    parse_target(build_on, "build_on")


# -- helpers -------------------------------------------------------------------
def _registry(props: Mapping[str, Any]) -> RegistryModel:
    return refs.registry_from_inputs(
        props.get("registry"),
        Settings.from_env().registry,
        props.get("username") or None,
        props.get("password") or None,
        props.get("registry_kind") or None,
    )


def content_tag(props: Mapping[str, Any]) -> str:
    """``ctx-<hex>``: the tag naming this content (context digest, platform, triggers)."""
    key = json.dumps(
        {"context_digest": props.get("context_digest"), "platform": props.get("platform"), "triggers": props.get("triggers")},
        sort_keys=True,
        default=str,
    )
    return "ctx-" + hashlib.sha256(key.encode()).hexdigest()


def _label(props: Mapping[str, Any]) -> str:
    return f"{KIND} {props.get('repository')}:{props.get('tag')}"


@contextlib.contextmanager
def credentials(reg: RegistryModel, role: str = "AcrPush") -> Iterator[dict[str, str] | None]:
    """Credentials for one operation, as a docker ``auth_config`` (None for a public registry).

    The workspace's registry: a fresh identity with ``role`` from the workspace's
    identity store (``AcrPull`` is enough to read), revoked when the operation ends.
    """
    if isinstance(reg, refs.PrivateRegistry):
        yield {"username": reg.username, "password": reg.password.get_secret_value()}
    elif isinstance(reg, refs.WorkspaceRegistry):
        store = select.identity_store(reg.address)
        ident, secret = store.create(WORKSPACE_IDENTITY, role, 1)
        try:
            yield {"username": ident.client_id, "password": secret}
        finally:
            store.delete(ident.client_id)
    else:
        yield None


def _oci(reg: RegistryModel, auth: dict[str, str] | None) -> ImageRegistry:
    from ..backends.oci_registry import OciRegistry  # loads requests: only for operations on a registry

    return OciRegistry(reg.address, (auth or {}).get("username"), (auth or {}).get("password"))


def _log_path(props: Mapping[str, Any]) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{props.get('repository')}-{props.get('tag')}").strip("-")
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S%f")
    return Settings.from_env().logs_dir / "builds" / f"{slug}-{stamp}.log"


def _facts_from_probe(os_release: str, python_version: str | None, conda_version: str | None) -> ImageFacts:
    osr = reqmod.parse_os_release(os_release)
    return reqmod.ImageFacts(
        os_id=osr.get("ID") or None,
        os_id_like=osr.get("ID_LIKE", "").split(),
        os_version=osr.get("VERSION_ID") or None,
        os_pretty=osr.get("PRETTY_NAME") or None,
        python_version=python_version,
        conda_version=conda_version,
    )


def _facts_from_outs(outs: Mapping[str, Any]) -> ImageFacts:
    os_ = outs.get("os") or {}
    return reqmod.ImageFacts(
        os_id=os_.get("id"),
        os_id_like=list(os_.get("id_like") or []),
        os_version=os_.get("version"),
        os_pretty=os_.get("name"),
        python_version=outs.get("python_version"),
        conda_version=outs.get("conda_version"),
    )


def _require(props: Mapping[str, Any], facts: ImageFacts, where: str) -> None:
    req = reqmod.ImageRequirements.from_input(props.get("requirements"))
    problems = reqmod.unmet(req, facts)
    if problems:
        conda_note = ""
        if req.conda and not facts.conda_version:
            conda_note = "\nNote: Conda cannot be downloaded on this machine; an image with Conda must be built elsewhere, or drop conda=True."
        raise ValidationError(
            "requirements",
            f"{where} does not meet the base image requirements ({req.describe()}); it was not pushed:\n"
            + "\n".join(f"  - {p}" for p in problems)
            + conda_note,
        )


class BaseImageProvider(dynamic.ResourceProvider):
    """Holds nothing: the engine and registry clients are made per call from the environment.

    ``engine`` / ``registry`` hooks exist for unit tests (fakes); they are looked up per call.
    """

    def _engine(self, label: str) -> ImageBuilder:
        return DockerEngine(progress=lambda m: progress(label, m))

    def _registry_client(self, reg: RegistryModel, auth: dict[str, str] | None) -> ImageRegistry:
        return _oci(reg, auth)

    def _credentials(self, reg: RegistryModel, role: str = "AcrPush") -> contextlib.AbstractContextManager[dict[str, str] | None]:
        return credentials(reg, role)

    def _remote_builder(self, build_on: str) -> Any:
        """The registry-side builder for ``build_on`` (``azure:<workspace or registry ARM id>``)."""
        from ..backends.azure.acr import AcrBuilder

        return AcrBuilder(build_on)

    # -- check / diff --------------------------------------------------------
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.CheckResult:
        news = {**news}
        news.setdefault("dockerfile", "Dockerfile")
        news.setdefault("tag", "latest")
        if news.get("dockerfile") is None:
            news["dockerfile"] = "Dockerfile"
        if news.get("registry") in (None, ""):
            news["registry"] = "local"
        result = run_checks(
            news,
            _check_context,
            _check_repository,
            _check_tag,
            _check_build_args,
            _check_platform,
            _check_requirements,
            _check_declared_requirements,
            _check_registry,
            _check_context_digest,
            _check_build_on,
        )
        if result.failures:
            return result
        if not is_unknown(news.get("registry")):
            reg_input = news.get("registry")
            news["registry_address"] = Settings.from_env().registry if reg_input in ("local", "workspace") else reg_input
        if news.get("context_digest") is None and not any(is_unknown(news.get(k)) for k in ("context", "dockerfile", "build_args")):
            news["context_digest"] = compute_context_digest(
                news["context"], news["dockerfile"], news.get("build_args"), Policy.current(news.get("path_policy"))
            )
        if not any(is_unknown(news.get(k)) for k in ("context", "dockerfile", "build_args")):
            text = dockerfile_path(news["context"], news["dockerfile"]).read_text()
            news["build_args"] = effective_build_args(text, news.get("build_args"), Settings.from_env().wheelhouse_url)
        if not is_unknown(news.get("requirements")):
            news["requirements"] = reqmod.ImageRequirements.from_input(news.get("requirements")).model_dump()
        return dynamic.CheckResult(news, [])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        replaces = changed(olds, news, REPLACE_KEYS)
        updates = changed(olds, news, UPDATE_KEYS)
        tag = news.get("tag")
        drifted = not is_unknown(tag) and tag not in (olds.get("tags") or [])
        return dynamic.DiffResult(
            changes=bool(replaces or updates or drifted),
            replaces=replaces,
            stables=[],
            delete_before_replace=False,
        )

    # -- create / update -------------------------------------------------------
    def _ensure(self, props: dict[str, Any], nocache: bool) -> dict[str, Any]:
        """Adopt the content-tagged image from the registry, or build it; check it; push; the outputs."""
        label = _label(props)
        reg = _registry(props)
        ctag = content_tag(props)
        target = refs.ImageRef(address=reg.address, repository=props["repository"], tag=props["tag"])
        content_ref = str(target.with_tag(ctag))
        engine = self._engine(label)
        with self._credentials(reg) as auth:
            registry = self._registry_client(reg, auth)
            build_log = None
            adopted = False
            remote_run: dict[str, Any] | None = None
            try:
                existing = registry.manifest_digest(target.repository, ctag) if not nocache else None
            except NotFound:
                existing = None
            if existing:
                adopted = True
                progress(label, f"registry already holds this content as {ctag[:16]}…; adopting it, no build")
                try:
                    local = engine.inspect(content_ref)
                    if f"{target.name}@{existing}" not in local.repo_digests:
                        local = engine.pull(content_ref, auth)
                except NotFound:
                    local = engine.pull(content_ref, auth)
            elif props.get("build_on"):
                # The document's `az acr build`: the registry builds and pushes; then the image is checked here.
                log_path = _log_path(props)
                build_log = str(log_path)
                log_path.parent.mkdir(parents=True, exist_ok=True)
                progress(label, f"remote build on {props['build_on'].rsplit('/', 1)[-1]} (log: {log_path})")
                with open(log_path, "w") as log:
                    def line(text: str) -> None:
                        log.write(text + "\n")
                        if text.startswith(("Step ", "Successfully", "run ")):
                            progress(label, text[:120])

                    run = self._remote_builder(props["build_on"]).remote_build(
                        props["context"],
                        props.get("dockerfile") or "Dockerfile",
                        target.repository,
                        [ctag],
                        dict(props.get("build_args") or {}),
                        platform=props.get("platform"),
                        nocache=nocache,
                        log=line,
                    )
                progress(label, f"remote build run {run.run_id} finished in {run.duration_seconds:.0f}s")
                remote_run = {"run_id": run.run_id, "duration_seconds": run.duration_seconds}
                try:
                    local = engine.pull(f"{target.name}@{run.digest}", auth)
                    engine.tag(local.id, content_ref)
                except Exception:
                    with contextlib.suppress(Exception):
                        registry.delete_manifest(target.repository, run.digest)
                    raise
                adopted = True  # already in the registry under the content tag: nothing left to push but the tag
            else:
                log_path = _log_path(props)
                build_log = str(log_path)
                wheelhouse_probe.check((props.get("build_args") or {}).get("WHEELHOUSE_URL"), f"building {props['context']}")
                progress(label, f"building {props['context']} (log: {log_path})")
                local = engine.build(
                    props["context"],
                    props.get("dockerfile") or "Dockerfile",
                    content_ref,
                    dict(props.get("build_args") or {}),
                    str(log_path),
                    platform=props.get("platform"),
                    nocache=nocache,
                    label="build",
                )
            mine = [] if adopted and remote_run is None else [content_ref]
            try:
                probed = engine.probe(local.id)
                facts = _facts_from_probe(probed.os_release, probed.python_version, probed.conda_version)
                progress(label, f"found {facts.os_label}, python {facts.python_version or 'none'}, conda {facts.conda_version or 'none'}")
                _require(props, facts, f"image {content_ref if adopted else local.id[:19]}")
                engine.tag(local.id, str(target))
                mine.append(str(target))
                try:
                    if not adopted:
                        progress(label, f"pushing {content_ref}")
                        engine.push(content_ref, auth)
                    digest = engine.push(str(target), auth)
                except AuthError as exc:
                    who = f"identity {auth['username']!r}" if auth else "anonymous access"
                    raise AuthError(f"{exc}\n{reg.address} refused a push by {who}: pushing needs an AcrPush identity") from exc
            except Exception:
                # Not pushed: drop the local tags this attempt made (layers stay cached for the next try).
                for ref in mine:
                    with contextlib.suppress(Exception):
                        engine.remove(ref)
                if remote_run is not None:  # a remote build pushed before the check: take it back
                    with contextlib.suppress(Exception):
                        registry.delete_manifest(target.repository, run.digest)
                raise
            progress(label, f"pushed {target.pinned(digest)}")
        return {
            **props,
            "image_ref": target.pinned(digest),
            "digest": digest,
            "tags": [props["tag"], ctag],
            "content_tag": ctag,
            "image_id": local.id,
            "size_bytes": local.size_bytes,
            "os": {"id": facts.os_id, "version": facts.os_version, "name": facts.os_pretty, "id_like": facts.os_id_like},
            "python_version": facts.python_version,
            "conda_version": facts.conda_version,
            "build_log": build_log,
            "adopted": adopted and remote_run is None,
            "remote_build": remote_run,
        }

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        outs = self._ensure(props, nocache=False)
        return dynamic.CreateResult(f"{props['registry_address']}/{props['repository']}:{props['tag']}", outs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        same_content = content_tag(olds) == content_tag(news) and olds.get("digest")
        tag_in_place = news.get("tag") in (olds.get("tags") or [])
        if same_content and tag_in_place:
            # Nothing to build or push: re-check recorded facts against (maybe new) requirements.
            _require(news, _facts_from_outs(olds), f"image {olds.get('image_ref')}")
            keep = {k: olds.get(k) for k in ("image_ref", "digest", "tags", "content_tag", "image_id", "size_bytes", "os",
                                             "python_version", "conda_version", "build_log", "adopted", "remote_build")}
            return dynamic.UpdateResult({**news, **keep})
        if same_content and olds.get("image_id"):
            # The tag went missing or moved in the registry: push it again from the recorded content.
            progress(_label(news), "the tag is missing or moved in the registry; pushing it again")
        nocache = olds.get("triggers") != news.get("triggers")
        outs = self._ensure(news, nocache=nocache)
        if olds.get("digest") and olds["digest"] != outs["digest"] and not news.get("retain_on_delete"):
            self._drop_superseded(olds, news)
        return dynamic.UpdateResult(outs)

    def _drop_superseded(self, olds: dict[str, Any], news: dict[str, Any]) -> None:
        """Delete the manifest the update replaced (best effort: the new image is already pushed)."""
        label = _label(news)
        reg = _registry(news)
        try:
            with self._credentials(reg) as auth:
                registry = self._registry_client(reg, auth)
                registry.delete_manifest(olds["repository"], olds["digest"])
            progress(label, f"deleted the superseded {olds.get('image_ref')}")
            _collect_garbage(label, registry)
        except NotFound:
            pass
        except BackendError as exc:
            progress(label, f"could not delete the superseded {olds.get('image_ref')}: {exc}")
        if olds.get("content_tag") and olds.get("content_tag") != content_tag(news):
            with contextlib.suppress(BackendError):
                self._engine(label).remove(f"{reg.address}/{olds['repository']}:{olds['content_tag']}")

    # -- read / delete -----------------------------------------------------------
    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        reg = _registry(props)
        repo, digest = props.get("repository"), props.get("digest")
        if not repo or not digest:
            return dynamic.ReadResult(id_, props)
        with self._credentials(reg, "AcrPull") as auth:
            registry = self._registry_client(reg, auth)
            try:
                registry.manifest_digest(repo, digest)
            except NotFound:
                progress(_label(props), f"{props.get('image_ref')} is gone from the registry")
                return dynamic.ReadResult(None, {})
            tags = []
            for tag in (props.get("tag"), props.get("content_tag")):
                if not tag:
                    continue
                try:
                    if registry.manifest_digest(repo, tag) == digest:
                        tags.append(tag)
                    else:
                        progress(_label(props), f"tag {tag} now points at another manifest")
                except NotFound:
                    progress(_label(props), f"tag {tag} is gone from the registry")
        return dynamic.ReadResult(id_, {**props, "tags": tags})

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        label = _label(props)
        if props.get("retain_on_delete"):
            progress(label, f"retained {props.get('image_ref')} in the registry (retain_on_delete)")
            return
        reg = _registry(props)
        repo, digest = props.get("repository"), props.get("digest")
        if repo and digest:
            with self._credentials(reg) as auth:
                try:
                    registry = self._registry_client(reg, auth)
                    registry.delete_manifest(repo, digest)
                    progress(label, f"deleted {props.get('image_ref')} from the registry")
                    _collect_garbage(label, registry)
                except NotFound:
                    progress(label, f"{props.get('image_ref')} was already gone from the registry")
        engine = self._engine(label)
        name = f"{reg.address}/{repo}"
        for tag in (props.get("tag"), props.get("content_tag")):
            if tag:
                try:
                    engine.remove(f"{name}:{tag}")
                except BackendError as exc:
                    progress(label, f"left local image {name}:{tag}: {exc}")


def _collect_garbage(label: str, registry: ImageRegistry) -> None:
    """Free a deleted manifest's layers (the local registry's ``OciRegistry.collect_garbage``)."""
    collect = getattr(registry, "collect_garbage", None)  # test fakes have none
    line = collect() if collect else None
    if line:
        progress(label, line)


# -- the program side: the resource ------------------------------------------------
def _plain(value: Any) -> bool:
    if isinstance(value, (Output, pulumi.Output)) or hasattr(value, "__await__"):
        return False
    if isinstance(value, dict):
        return all(_plain(v) for v in value.values())
    return True


class BaseImage(dynamic.Resource, module="mldeploy", name="BaseImage"):
    """A custom base image built, checked and pushed to a registry. See the module docstring."""

    image_ref: Output[str]
    digest: Output[str]
    tags: Output[list[str]]
    content_tag: Output[str]
    context_digest: Output[str]
    image_id: Output[str]
    size_bytes: Output[int]
    os: Output[dict[str, Any]]
    python_version: Output[str | None]
    conda_version: Output[str | None]
    build_log: Output[str | None]
    adopted: Output[bool]
    remote_build: Output[dict[str, Any] | None]

    def __init__(
        self,
        resource_name: str,
        context: Input[str],
        repository: Input[str],
        tag: Input[str] = "latest",
        dockerfile: Input[str] = "Dockerfile",
        build_args: Input[Mapping[str, Input[str]]] | None = None,
        registry: Input[str] = "local",
        service_principal: Any | None = None,
        username: Input[str] | None = None,
        password: Input[str] | None = None,
        registry_kind: Input[str] | None = None,
        requirements: reqmod.ImageRequirements | Mapping[str, Any] | None = None,
        platform: Input[str] | None = None,
        triggers: Input[Any] | None = None,
        retain_on_delete: bool = False,
        build_on: Input[str] | None = None,
        opts: ResourceOptions | None = None,
    ) -> None:
        if service_principal is not None:
            if username is not None or password is not None:
                raise ValidationError("service_principal", "give either service_principal or username/password, not both")
            username = service_principal.client_id
            password = service_principal.client_secret
            if registry == "local":
                registry = service_principal.registry_address
        if password is not None:
            password = Output.secret(password)
        if requirements is not None:  # (reqmod is loaded only when requirements are given)
            if isinstance(requirements, reqmod.ImageRequirements):
                requirements = requirements.model_dump()
            else:
                requirements = reqmod.ImageRequirements.from_input(dict(requirements)).model_dump()

        if isinstance(context, str):
            context = os.path.abspath(context)
        else:
            context = Output.from_input(cast(Any, context)).apply(os.path.abspath)
        policy = program_policy()
        if _plain(context) and _plain(dockerfile) and _plain(build_args):
            digest: Input[str] | None = _program_context_digest(context, dockerfile, build_args, policy)  # type: ignore[arg-type]
        else:
            digest = Output.all(context, dockerfile, build_args).apply(lambda a: cast(str, _program_context_digest(a[0], a[1], a[2], policy)))

        opts = ResourceOptions.merge(opts, ResourceOptions(additional_secret_outputs=["password"]))
        super().__init__(
            BaseImageProvider(),
            resource_name,
            {
                "context": context,
                "dockerfile": dockerfile,
                "build_args": build_args,
                "registry": registry,
                "registry_kind": registry_kind,
                "username": username,
                "password": password,
                "repository": repository,
                "tag": tag,
                "requirements": requirements,
                "platform": platform,
                "triggers": triggers,
                "retain_on_delete": retain_on_delete,
                "build_on": build_on,
                "context_digest": digest,
                "path_policy": policy,
                "registry_address": None,
                "image_ref": None,
                "digest": None,
                "tags": None,
                "content_tag": None,
                "image_id": None,
                "size_bytes": None,
                "os": None,
                "python_version": None,
                "conda_version": None,
                "build_log": None,
                "adopted": None,
                "remote_build": None,
            },
            opts,
        )


__all__ = ["BaseImage", "BaseImageProvider", "compute_context_digest", "content_tag", "credentials", "resolve_parent"]
