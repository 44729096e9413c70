"""InferenceDeployment: a model served as a web service answering ``/score``.

The source document's ``Model.deploy(ws, "myservice", [model],
inference_config, deployment_config)`` as code, converging on every ``pulumi up``.
Where it runs is a ``Runtime`` (``backends/protocols.py``) chosen by target in
``backends/select.py``: ``local`` (a container on this Docker Engine),
``swarm`` (a Swarm service behind an nginx front), ``azure:<workspace ARM id>``
(a managed online endpoint), and ``kubernetes``. This file never asks which.

1. check: resolves the target (``target=``, else the stack config
   ``mldeploy:target``, else by computeType: ``select.DEFAULT_TARGET_BY_COMPUTE_TYPE``);
   reads ``inferenceconfig.json`` and ``deploymentconfig.json`` as the document
   writes them, finds the entry script, source directory and conda file, and
   hashes the source directory (``source_digest``, so ``preview --diff`` shows a
   code change); ``runtime.validate`` applies the target's field rules and
   ``runtime.preflight`` its live checks (the port, a service name another
   stack owns). Bad input fails at preview naming the field and file.
2. create/update: when ``runtime.builds_image``, builds the derived image FROM
   the base image (``mldeploy.derived_image``) and pushes it with the push
   identity; then ``runtime.deploy`` with a ``DeploySpec`` (the runtime pulls
   with the pull-only identity and swaps with no gap; a version that never
   becomes healthy fails the update with its last log lines while the previous
   one keeps serving, and its image is deleted). With ``authEnabled`` the
   provider generates a primary and a secondary key (secret outputs);
   ``regenerate_key`` rotates one.
3. read: ``runtime.read``; only ``NotFound`` reports the deployment gone. A
   stopped, degraded or drifted deployment (replicas or image changed out of
   band) is updated by the next ``up``.
4. delete: ``runtime.remove`` (only this stack's objects), then the derived
   image's manifest in the registry and its local tags.

Id: the service name. Replaced when ``service_name`` or ``target`` changes;
everything else (base image, models, code, environment, config) is an in-place
update. Credentials are used at deploy time only, so a rotated secret alone
does not redeploy.

The base image, environment and GPU fields (``_inference_checks``): the base
image is checked against its registry with its own credentials
(``baseImageRegistry``, else the pull identity on the workspace registry only)
and pinned by digest; the conda file's ``python=`` pin and the environment are
checked against the base image's Python and packages; ``enableGpu`` against
what the target can give. All at preview when the base image is known, else in
the update before anything of the deployment's own is built.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pulumi
from pulumi import Input, Output, ResourceOptions, dynamic

from .. import dockerfile_check, watchdog
from .._lazy import LazyModule
from ..backends import select, wheelhouse_probe
from ..backends.ownership import LABEL_BUILT_FOR, LABEL_SERVICE, LABEL_STACK, LABEL_URN
from ..backends.protocols import DeploySpec, Runtime
from ..errors import AuthError, BackendError, MldeployError, NotFound, ValidationError
from ..paths import Policy, contain
from ..paths import program_policy as _program_policy
from ..settings import Settings, swarm_publish_mode
from . import convergence
from ._common import changed, failure, is_unknown, needs, progress, run_checks
from ._common import changes as _changes

if TYPE_CHECKING:
    from .. import config as amlconfig
    from .. import environment as envmod
    from . import _inference_checks as checks
else:  # built on pydantic: imported when check or a deploy first needs them, not by the program (mldeploy._lazy)
    amlconfig = LazyModule("mldeploy.config")
    envmod = LazyModule("mldeploy.environment")
    checks = LazyModule("mldeploy.resources._inference_checks")

KIND = "InferenceDeployment"
DEFAULT_PORT = 8890
REPLACE_KEYS = ("service_name", "target")
UPDATE_KEYS = (
    "base_image", "base_image_pinned", "models", "inference", "deployment", "source_digest", "environment",
    "base_image_registry", "base_registry_password", "gpu_device_requests",
)  # fmt: skip
#: changed alone, these need no new image and no restart: the next pull of the base image uses them
CREDENTIAL_KEYS = ("base_image_registry", "base_registry_password")
KEY_OUTPUTS = ("primary_key", "secondary_key")
# The deployment's own identities are synced into the outputs without a redeploy, so destroy and refresh use the current ones.
IDENTITY_KEYS = ("push_username", "push_password", "pull_username", "pull_password")
# Facts `read` reports that the next `up` repairs: containers the state does not know, a deleted image manifest.
DRIFT_FACTS = ("unrecorded_containers", "image_missing")


def _label(props: dict[str, Any]) -> str:
    return f"{KIND} {props.get('service_name')}"


def _say(props: dict[str, Any]) -> Callable[[str], None]:
    label = _label(props)
    return lambda message: progress(label, message)


def _runtime(props: dict[str, Any]) -> Runtime | None:
    """The runtime of ``props['target']`` (resolved by check), or None while the target is unknown (preview)."""
    target = props.get("target")
    if is_unknown(target):
        return None
    return select.runtime(target or select.DEFAULT_TARGET)


# -- check ------------------------------------------------------------------
def _check_service_name(news: dict[str, Any]) -> None:
    name = news.get("service_name")
    if is_unknown(name):
        return
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", name):
        raise ValidationError("service_name", f"{name!r} must be 1-63 lowercase letters, digits or '-', starting with a letter or digit")


def _deployment_config(news: dict[str, Any]) -> tuple[amlconfig.DeploymentConfig, str] | None:
    doc = news.get("deployment_config")
    if is_unknown(doc):
        return None
    if isinstance(doc, str):
        return amlconfig.DeploymentConfig.from_file(doc), doc
    return amlconfig.parse(amlconfig.DeploymentConfig, doc or {}, "deployment_config"), "deployment_config"


def _resolve_target(news: dict[str, Any]) -> None:
    """``target`` given (argument or stack config), else by computeType; an unknown name fails naming ``target``."""
    if is_unknown(news.get("target")):
        return
    compute = None
    if not news.get("target"):
        try:
            dc = _deployment_config(news)
        except (ValidationError, TypeError):
            dc = None  # _resolve_deployment reports it
        compute = dc[0].compute_type if dc else None
    news["target"] = select.resolve_target(news.get("target"), compute)
    select.runtime(news["target"])


def _resolve_inference(news: dict[str, Any]) -> None:
    from ..hashing import source_ignore, tree_digest

    policy = Policy.current(news.get("path_policy"))  # containment and size guard (mldeploy.paths)
    path = news.get("inference_config")
    if is_unknown(path):
        return
    if not isinstance(path, str):
        raise ValidationError("inference_config", "must be the path of an inferenceconfig.json file")
    try:
        cfg = amlconfig.InferenceConfig.from_file(path, policy)
        resolved = cfg.resolve(Path(path).parent, policy)
    except ValidationError as exc:
        field = exc.field if exc.field == "inference_config" else f"inference_config.{exc.field}"
        raise ValidationError(field, f"{exc.message} (in {path})") from exc
    if resolved.extra_dockerfile_steps:
        try:
            dockerfile_check.check(resolved.extra_dockerfile_steps, allow_no_from=True)
        except ValueError as exc:
            raise ValidationError("inference_config.extraDockerfileSteps", f"dockerfile parse error in {cfg.extra_dockerfile_steps} on {exc} (in {path})") from exc
    news["inference"] = resolved.model_dump(exclude=None if resolved.enable_gpu else {"enable_gpu"})
    news["source_digest"] = tree_digest(Path(resolved.source_dir), "inference_config.sourceDirectory", keep_name=False, ignore=source_ignore)[0]
    news["base_image_field"] = "base_image"
    if not news.get("base_image") and cfg.base_image:
        news["base_image"] = cfg.base_image
        news["base_image_field"] = "inference_config.baseImage"


def _resolve_deployment(news: dict[str, Any]) -> None:
    """The deployment config, then the target's own field rules (``runtime.validate``)."""
    found = _deployment_config(news)
    if found is None:
        return
    dc, source = found
    news["deployment"] = dc.model_dump(by_alias=True, exclude_none=True)
    news["port"] = dc.port or DEFAULT_PORT
    try:
        runtime = _runtime(news)
    except ValidationError:
        return  # _resolve_target reports it
    if runtime is not None:
        runtime.validate(news["deployment"], source, _say(news))


@needs("inference_config")
def _check_base_image(news: dict[str, Any]) -> None:
    if not news.get("base_image") and not is_unknown(news.get("base_image")):
        raise ValidationError("base_image", "no base image: pass base_image (e.g. a BaseImage's image_ref) or set baseImage in the inference config")


def _builds_image(news: dict[str, Any]) -> bool:
    """Whether mldeploy builds this target's image (Azure ML builds the environment from the conda file itself)."""
    try:
        runtime = _runtime(news)
    except ValidationError:
        return False  # _resolve_target reports it
    return runtime is not None and runtime.builds_image


@needs("inference_config", "base_image")
def _check_base_image_source(news: dict[str, Any]) -> None:
    """The base image asked of its registry with its own credentials; pinned by digest (``_inference_checks``)."""
    if _builds_image(news):
        checks.check_base_image(news)


@needs("inference_config", "base_image")
def _resolve_environment(news: dict[str, Any]) -> None:
    """The ``python=`` pin and the lock, against the base image's Python and packages; skipped until the base image is known."""
    if _builds_image(news):
        checks.check_environment(news)


@needs("inference_config", "target")
def _check_gpu(news: dict[str, Any]) -> None:
    if not is_unknown(news.get("target")):
        checks.check_gpu(news, str(news.get("target") or select.DEFAULT_TARGET))


def _check_keys(news: dict[str, Any]) -> None:
    regen = news.get("regenerate_key")
    if not regen or is_unknown(regen):
        return
    if str(regen).split(":", 1)[0] not in ("primary", "secondary"):
        raise ValidationError("regenerate_key", f"{regen!r}: use 'primary:<anything>' or 'secondary:<anything>'; a change of the value regenerates that key")
    deployment = news.get("deployment")
    if isinstance(deployment, dict) and not is_unknown(deployment) and not deployment.get("authEnabled"):
        raise ValidationError("regenerate_key", f"{regen!r}: keys exist only with authEnabled: true in the deployment config")


def _preflight(news: dict[str, Any], olds: dict[str, Any]) -> None:
    """The target's live checks (port, a service name another stack owns), once what they need is known."""
    needed = ("target", "service_name", "port", "deployment", "stack", "resource_urn")
    if any(is_unknown(news.get(k)) for k in needed) or not isinstance(news.get("service_name"), str) or not news.get("deployment"):
        return
    runtime = _runtime(news)
    if runtime is None:
        return
    try:
        runtime.preflight(_spec(news, None, olds or None), _say(news))
    except BackendError as exc:
        raise ValidationError("target", f"checking the {news['target']} target before deploying: {exc}") from exc


# -- deploying ----------------------------------------------------------------
def _auth(props: dict[str, Any], who: str) -> dict[str, str]:
    return {"username": props.get(f"{who}_username") or "", "password": props.get(f"{who}_password") or ""}


def _labels(props: dict[str, Any]) -> dict[str, str]:
    """The labels every object of this deployment carries (``backends/ownership.py``); tags become ``mldeploy.tag.<k>``."""
    dep = props.get("deployment") or {}
    labels = {LABEL_SERVICE: str(props.get("service_name") or ""), LABEL_STACK: str(props.get("stack") or ""), LABEL_URN: str(props.get("resource_urn") or "")}
    labels.update({f"mldeploy.tag.{k}": str(v) for k, v in (dep.get("tags") or {}).items()})
    if dep.get("description"):
        labels["mldeploy.description"] = str(dep["description"])
    return labels


def _spec(props: dict[str, Any], image_ref: str | None, previous: dict[str, Any] | None) -> DeploySpec:
    keys = (props["primary_key"], props["secondary_key"]) if props.get("primary_key") and props.get("secondary_key") else None
    return DeploySpec(
        service=props["service_name"],
        image_ref=image_ref,
        entry_script=(props.get("inference") or {}).get("entry_script") or "",
        deployment=props.get("deployment") or {},
        port=int(props.get("port") or DEFAULT_PORT),
        labels=_labels(props),
        registry=Settings.from_env().registry,
        pull_auth=_auth(props, "pull"),
        push_auth=_auth(props, "push"),
        keys=keys,
        health_timeout=float(props.get("health_timeout") or 120),
        previous=previous,
        props=props,
    )


def _keys(olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
    """The primary and secondary keys: kept, generated when first needed, or one regenerated (as ``az ml service regen-key``)."""
    if not (news.get("deployment") or {}).get("authEnabled"):
        return {"primary_key": None, "secondary_key": None}
    keys = {k: olds.get(k) or secrets.token_urlsafe(32) for k in KEY_OUTPUTS}
    regen = news.get("regenerate_key")
    if olds and regen and regen != olds.get("regenerate_key"):
        which = str(regen).split(":", 1)[0]
        keys[f"{which}_key"] = secrets.token_urlsafe(32)
        _say(news)(f"regenerated the {which} key; the previous {which} key is refused once the update finishes")
    return keys


def _build_and_push(props: dict[str, Any]) -> tuple[str, str, str]:
    """Build the derived image and push it with the push identity. Returns (image_ref by digest, derived digest, build log)."""
    from ..backends.docker_engine import DockerEngine
    from ..derived_image import derived_digest, write_context

    settings = Settings.from_env()
    say = _say(props)
    service, inference, models = props["service_name"], props["inference"], props.get("models") or []
    engine = DockerEngine(progress=say)
    try:  # pulls the base image with its own credentials; fails before anything of the deployment's own is built
        lock = checks.deploy_lock(props).model_dump()
    except ValidationError as exc:
        raise MldeployError(f"{exc.field}: {exc.message}") from exc
    base = props.get("base_image_pinned") or props["base_image"]
    digest = derived_digest(base, inference, models, props["source_digest"], lock)
    repo = f"{settings.registry}/mldeploy/{service}"
    tag = digest.removeprefix("sha256:")[:16]
    log_path = str(settings.logs_dir / f"deploy-{service}.log")
    wheelhouse_probe.check(settings.wheelhouse_url, f"building the image of {service}")  # before pip's own noise
    if envmod.index_wheelhouse(settings.wheelhouse, [w["filename"] for w in lock.get("wheels") or []]):
        say("listed the lock's new wheels in the wheelhouse index (builds see only the wheels it lists)")
    with tempfile.TemporaryDirectory(prefix="mldeploy-ctx-") as ctx:
        write_context(Path(ctx), base, inference, models, lock)
        say(f"building {repo}:{tag} (log: {log_path})")
        # The image is this deployment's own: another stack deploying the same folder under the same service name
        # (on another target) gets another manifest, so neither's update or destroy deletes the other's.
        built_for = {LABEL_BUILT_FOR: str(props.get("resource_urn") or "")}
        engine.build(ctx, "Dockerfile", f"{repo}:{tag}", {"WHEELHOUSE_URL": settings.wheelhouse_url}, log_path, label="derived image", labels=built_for)
    say(f"pushing {repo}:{tag}")
    pushed = engine.push(f"{repo}:{tag}", _auth(props, "push"))
    return f"{repo}@{pushed}", digest, log_path


def _deploy(runtime: Runtime, props: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """Build and push (when the runtime runs mldeploy's image), then ``runtime.deploy``. Returns the outputs."""
    image_ref = digest = log_path = None
    if runtime.builds_image:
        image_ref, digest, log_path = _build_and_push(props)
    try:
        out = runtime.deploy(_spec(props, image_ref, previous), _say(props))
    except MldeployError:
        if image_ref and image_ref != (previous or {}).get("image_ref"):  # never delete what the running deployment uses
            try:
                _delete_image(image_ref, props, digest)
            except MldeployError as exc:
                _say(props)(f"could not remove the failed image {image_ref}: {exc}")
        raise
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    return {**props, "image_ref": image_ref, "derived_digest": digest, "build_log": log_path, "deployed_at": now, **out}


def _delete_image(image_ref: str | None, props: dict[str, Any], derived: str | None = None) -> None:
    """Delete a derived image's manifest from the registry and its local copies (by digest and by its build tag)."""
    from ..backends.docker_engine import DockerEngine
    from ..backends.oci_registry import OciRegistry

    if not image_ref or "@" not in image_ref:
        return
    name, digest = image_ref.split("@", 1)
    address, repository = name.split("/", 1)
    auth = _auth(props, "push")
    registry = OciRegistry(address, auth["username"], auth["password"])
    try:
        registry.delete_manifest(repository, digest)
    except NotFound:
        pass
    try:  # free the layers no manifest uses any more (the local registry's garbage collection; see registry_gc)
        line = registry.collect_garbage()
        if line:
            _say(props)(line)
    except MldeployError as exc:
        _say(props)(f"registry garbage collection did not run: {exc} (run make registry-gc later)")
    engine = DockerEngine()
    engine.remove(image_ref)
    if derived:
        engine.remove(f"{name}:{derived.removeprefix('sha256:')[:16]}")


def _drift(olds: dict[str, Any], news: dict[str, Any]) -> list[str]:
    """What ``refresh`` found changed out of band, or a key to regenerate: each needs an update."""
    drift = ["regenerate_key"] if (news.get("regenerate_key") or None) != (olds.get("regenerate_key") or None) else []
    want = int((news.get("deployment") or {}).get("numReplicas") or 1) if not is_unknown(news.get("deployment")) else None
    if olds.get("replicas") is not None and want is not None and int(olds["replicas"]) != want:
        drift.append("replicas")
    if olds.get("running_image") and olds.get("running_image") != olds.get("image_ref"):
        drift.append("running_image")
    if olds.get("publish_mode") and olds["publish_mode"] != swarm_publish_mode():  # a swarm front to move
        drift.append("publish_mode")
    drift += [k for k in DRIFT_FACTS if olds.get(k)]
    return drift


# -- provider ---------------------------------------------------------------
class InferenceDeploymentProvider(dynamic.ResourceProvider):
    """Holds nothing: the runtime and its clients are made per call."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.CheckResult:
        news = {**news}
        watchdog.report_interrupted(_label(news), _say(news))
        result = run_checks(
            news, _check_service_name, _resolve_target, _resolve_inference, _resolve_deployment, _check_base_image,
            _check_base_image_source, _resolve_environment, _check_gpu, _check_keys,
        )  # fmt: skip
        if not result.failures:
            try:
                _preflight(news, olds)
            except ValidationError as exc:
                result.failures.append(failure(exc))
        return result

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        replaces = changed(olds, news, REPLACE_KEYS)
        updates = changed(olds, news, UPDATE_KEYS) + convergence.credentials_changed(olds, news, IDENTITY_KEYS)
        drift = _drift(olds, news) or olds.get("state") not in (None, "running")
        # None when inputs changed: the engine then lists only the changed inputs in preview --diff (_common.changes)
        return dynamic.DiffResult(changes=_changes(bool(replaces or updates), bool(drift)), replaces=replaces, delete_before_replace=True)

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        runtime = _runtime(props)
        assert runtime is not None  # the target is known by the time anything is created
        props = {**props, **_keys({}, props)}
        with watchdog.intent(_label(props), "creating"):
            return dynamic.CreateResult(props["service_name"], _deploy(runtime, props, None))

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        runtime = _runtime(props)
        assert runtime is not None
        props = {k: v for k, v in props.items() if k not in DRIFT_FACTS}
        try:
            live = runtime.read(props.get("service_name") or id_, props)
        except NotFound:
            return dynamic.ReadResult(None, {})
        outs = {**props, "state": live.state, **live.facts}
        if runtime.builds_image and convergence.manifest_missing(props.get("image_ref"), _auth(props, "pull")):
            outs["image_missing"] = True  # deleted from the registry out of band: the next `up` rebuilds and pushes it
        if live.replicas is not None:
            outs["replicas"] = live.replicas
        if live.image is not None:
            outs["running_image"] = live.image
        return dynamic.ReadResult(id_, outs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        runtime = _runtime(news)
        assert runtime is not None
        news = {**news, **_keys(olds, news)}
        if olds.get("state") == "running" and not _drift(olds, news) and set(changed(olds, news, UPDATE_KEYS)) <= set(CREDENTIAL_KEYS):
            # Only credentials changed (the base image registry's, or the deployment's own identities, which are
            # synced into the outputs so refresh and destroy use the current ones): nothing to rebuild or restart.
            what = "the base image registry's credentials" if changed(olds, news, CREDENTIAL_KEYS) else "the registry identities"
            _say(news)(f"only {what} changed: nothing to rebuild or restart")
            return dynamic.UpdateResult({**olds, **news})
        with watchdog.intent(_label(news), "updating"):
            outs = _deploy(runtime, news, olds)
        if runtime.builds_image and olds.get("image_ref") and olds["image_ref"] != outs["image_ref"]:
            try:
                _delete_image(olds["image_ref"], news, olds.get("derived_digest"))
            except MldeployError as exc:
                _say(news)(f"could not remove the previous image {olds['image_ref']}: {exc}")
        return dynamic.UpdateResult(outs)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        runtime = _runtime(props)
        assert runtime is not None
        service = props.get("service_name") or id_
        with watchdog.intent(_label(props), "deleting"):
            runtime.remove(service, props, _labels({**props, "service_name": service}), _say(props))
            if runtime.builds_image:
                try:
                    _delete_image(props.get("image_ref"), props, props.get("derived_digest"))
                except AuthError as exc:  # the recorded push identity was revoked out of band: ask the workspace for one
                    _say(props)(f"{exc}; deleting the image with a short-lived workspace identity instead")
                    try:
                        with convergence.workspace_push_auth(props.get("image_ref")) as auth:
                            _delete_image(props.get("image_ref"), {**props, **auth}, props.get("derived_digest"))
                    except MldeployError as again:  # registry GC's business now; destroy goes on
                        _say(props)(f"left the image {props.get('image_ref')} in the registry: {again}")
                except MldeployError as exc:
                    _say(props)(f"left the image {props.get('image_ref')} in the registry: {exc}")
                _remove_local_versions(props.get("image_ref"), props)


def _remove_local_versions(image_ref: str | None, props: dict[str, Any]) -> None:
    """On delete: every local tag of the deployment's own repository, not only the recorded version's. A version an
    update could not remove then (a swarm task still held it), or one an interrupted run built, would outlive it."""
    from ..backends.docker_engine import DockerEngine

    if not image_ref or "@" not in image_ref:
        return
    try:
        DockerEngine(progress=_say(props)).remove_repository(image_ref.split("@", 1)[0])
    except MldeployError as exc:
        _say(props)(f"left local images of {image_ref.split('@', 1)[0]}: {exc}")


# -- resource ---------------------------------------------------------------
def _model_input(m: Any) -> Any:
    if isinstance(m, dict):
        return m
    return Output.all(m.model_name, m.version, m.download, m.digest).apply(
        lambda v: {"name": v[0], "version": v[1], "download": v[2], "digest": v[3]}
    )


def _identity(identity: Any, field: str) -> tuple[Any, Any]:
    if isinstance(identity, dict):
        return identity["username"], Output.secret(identity["password"])
    if identity is None:
        raise ValidationError(field, "an identity is required (a ServicePrincipal, or {'username': ..., 'password': ...})")
    return identity.client_id, identity.client_secret


def _names_base_image_registry(inference_config: str) -> bool:
    """Whether the file may give ``baseImageRegistry``: most do not, and then the program need not load the
    pydantic models (``mldeploy._lazy``). A file that cannot be read or parsed is left to the full reading."""
    try:
        contain(inference_config, "inference_config", Policy.current(), what="the inference config")
        doc = json.loads(Path(inference_config).read_text())
    except (ValidationError, OSError, ValueError):
        return True
    return not isinstance(doc, dict) or doc.get("baseImageRegistry") is not None or doc.get("base_image_registry") is not None


def _base_image_registry(given: dict[str, Any] | None, inference_config: str) -> tuple[Any, Any]:
    """``baseImageRegistry`` as inputs: ``{address, username}``, and the password as a Pulumi secret.

    From the ``base_image_registry`` argument, else from the inference config file
    as the document writes it. A file that does not parse is left to ``check``,
    which names the problem.
    """
    doc: Any = given
    if doc is None:
        if not _names_base_image_registry(inference_config):
            return None, None
        try:
            cfg = amlconfig.InferenceConfig.from_file(inference_config)
        except (ValidationError, OSError):
            return None, None
        if cfg.base_image_registry is None:
            return None, None
        r = cfg.base_image_registry
        doc = {"address": r.address, "username": r.username, "password": r.password.get_secret_value() if r.password else None}
    password = doc.get("password")
    return {"address": doc.get("address"), "username": doc.get("username")}, (Output.secret(password) if password is not None else None)


def _static_urn(name: str, type_: str, parent: Any) -> str:
    """The resource's URN, for labels, computed without depending on the parent's ``urn`` Output.

    ``pulumi.resource.create_urn(parent=...)`` would make this resource depend on
    its own parent (a ModelService), which the engine rejects as a cycle. The
    parent's type is known statically; deeper nesting than one component level
    is not reflected in the type chain.
    """
    chain = type_
    parent_type = getattr(parent, "_type", None)
    if parent_type and parent_type != "pulumi:pulumi:Stack":
        chain = f"{parent_type}${type_}"
    return f"urn:pulumi:{pulumi.get_stack()}::{pulumi.get_project()}::{chain}::{name}"


class InferenceDeployment(dynamic.Resource, module="mldeploy", name="InferenceDeployment"):
    """A model served as a web service. See the module docstring."""

    scoring_uri: Output[str]
    swagger_uri: Output[str]
    state: Output[str]
    image_ref: Output[str]
    container_id: Output[str]
    derived_digest: Output[str]
    port: Output[int]
    environment: Output[dict[str, Any]]
    build_log: Output[str]
    container_name: Output[str]
    deployed_at: Output[str]
    replicas: Output[int]
    running_image: Output[str]
    primary_key: Output[str]
    secondary_key: Output[str]

    def __init__(
        self,
        resource_name: str,
        service_name: Input[str],
        inference_config: str,
        models: list[Any],
        push_identity: Any,
        pull_identity: Any,
        deployment_config: str | dict[str, Any] | None = None,
        base_image: Input[str] | None = None,
        target: Input[str] | None = None,
        health_timeout: int = 120,
        base_python_version: Input[str] | None = None,
        accept_image_python: bool = False,
        regenerate_key: Input[str] | None = None,
        base_image_registry: dict[str, Any] | None = None,
        opts: ResourceOptions | None = None,
    ) -> None:
        """``target``: ``local``, ``swarm``, ``kubernetes`` or ``azure:<workspace ARM id>``; unset, the stack config
        ``mldeploy:target``, else by the deployment config's computeType (``select.DEFAULT_TARGET_BY_COMPUTE_TYPE``:
        ``aks`` runs on ``kubernetes``, anything else ``local``). The kubernetes target's cluster: the stack config
        ``mldeploy:kubeconfig`` / ``mldeploy:kubeContext``, else ``KUBECONFIG``, else the embedded cluster's. ``regenerate_key`` (authEnabled):
        ``"primary:<tag>"`` or ``"secondary:<tag>"``; each change of the value regenerates that key.
        ``base_image_registry``: ``{"address", "username", "password"}`` (the password may be an Output) for a base
        image on a private registry; else ``baseImageRegistry`` from the inference config file."""
        config = pulumi.Config("mldeploy")
        target = target or config.get("target")
        urn = _static_urn(resource_name, "pulumi-python:dynamic/mldeploy:InferenceDeployment", opts.parent if opts else None)
        push_user, push_password = _identity(push_identity, "push_identity")
        pull_user, pull_password = _identity(pull_identity, "pull_identity")
        registry, registry_password = _base_image_registry(base_image_registry, inference_config)
        secret_outputs = ["push_password", "pull_password", "base_registry_password", "primary_key", "secondary_key"]
        opts = ResourceOptions.merge(opts, ResourceOptions(additional_secret_outputs=secret_outputs))
        super().__init__(
            InferenceDeploymentProvider(),
            resource_name,
            {
                "service_name": service_name,
                "target": target,
                "inference_config": str(Path(inference_config).resolve()),
                "deployment_config": str(Path(deployment_config).resolve()) if isinstance(deployment_config, str) else deployment_config,
                "base_image": base_image,
                "base_image_registry": registry,
                "base_registry_password": registry_password,
                "models": [_model_input(m) for m in models],
                "push_username": push_user,
                "push_password": push_password,
                "pull_username": pull_user,
                "pull_password": pull_password,
                "health_timeout": health_timeout,
                "base_python_version": base_python_version,
                "accept_image_python": accept_image_python,
                "stack": pulumi.get_stack(),
                "resource_urn": urn,
                "regenerate_key": regenerate_key,
                # the kubernetes target's cluster: else KUBECONFIG, else the embedded cluster's kubeconfig
                "kubeconfig": config.get("kubeconfig"),
                "kube_context": config.get("kubeContext"),
                "path_policy": _program_policy(),  # mldeploy.paths: stack config mldeploy:allowedRoots, size guard
                "replicas": None,
                "running_image": None,
                "primary_key": None,
                "secondary_key": None,
                "environment": None,
                "build_log": None,
                "container_name": None,
                "deployed_at": None,
                "scoring_uri": None,
                "swagger_uri": None,
                "state": None,
                "image_ref": None,
                "container_id": None,
                "derived_digest": None,
                "port": None,
            },
            opts,
        )


__all__ = ["InferenceDeployment", "InferenceDeploymentProvider"]
