"""InferenceDeployment: a model served as a web service answering ``/score``.

The source document's ``Model.deploy(ws, "myservice", [model],
inference_config, deployment_config)`` as code, converging on every ``pulumi up``.

What it does, in order (``mldeploy.derived_image`` has the image layout):

1. check: reads ``inferenceconfig.json`` and ``deploymentconfig.json`` as the
   document writes them, finds the entry script, source directory and conda
   file, and hashes the source directory (``source_digest``), so bad input
   fails at preview naming the field and file, and ``preview --diff`` shows a
   code change as a changed ``source_digest``.
2. create/update: builds the derived image FROM the base image, pushes it
   with the push identity, pulls it back by digest with the pull-only
   identity, starts the container beside any old one, waits for its health
   route, then stops the old one (no gap; see ``backends/docker_runtime.py``).
   A container that never becomes healthy fails the update with its last log
   lines, and the old container keeps serving.

Id: the service name. Replaced when ``service_name`` or ``target`` changes;
everything else (base image, models, code, environment, port) is an in-place
update that swaps containers. Credentials are used at deploy time only, so a
rotated secret alone does not redeploy.

Read: a removed container is reported gone (the next ``up`` recreates it); a
stopped one is reported with its state, and the next ``up`` replaces it.
Delete: removes the containers, the derived image's manifest in the registry
and its local tag.

Target ``swarm`` (``target="swarm"``, stack config ``mldeploy:target``, or
computeType ``aks``): the same build and push, then a Swarm service with
``numReplicas`` tasks behind an nginx front, rolled out and rolled back by
Swarm itself (``backends/docker_swarm.py``). With ``authEnabled`` the provider
generates a primary and a secondary key (secret outputs); ``regenerate_key``
rotates one. Read reports the service's replica count and image, so a service
removed or scaled out of band is repaired by the next ``up``.
"""

from __future__ import annotations

import datetime as dt
import secrets
import tempfile
from pathlib import Path
from typing import Any

import pulumi
from pulumi import Input, Output, ResourceOptions, dynamic

from ..config import DeploymentConfig, InferenceConfig, parse
from ..errors import MldeployError, NotFound, ValidationError
from ..settings import Settings
from . import _azure_deploy as _azure
from . import _inference_checks as checks
from ._common import changed, failure, is_unknown, needs, progress, run_checks
from ._common import changes as _changes

KIND = "InferenceDeployment"
TARGETS = ("local", "swarm")
COMPUTE_TYPES = {"local": ("local",), "swarm": ("aks", "local")}  # which computeTypes each target runs
DEFAULT_PORT = 8890
REPLACE_KEYS = ("service_name", "target")
UPDATE_KEYS = (
    "base_image", "base_image_pinned", "models", "inference", "deployment", "source_digest", "environment",
    "base_image_registry", "base_registry_password", "gpu_device_requests",
)  # fmt: skip
#: changed alone, these need no new image and no container swap: the next pull uses them
CREDENTIAL_KEYS = ("base_image_registry", "base_registry_password")


# -- check ------------------------------------------------------------------
def _check_target(news: dict[str, Any]) -> None:
    if _azure.is_azure(news):  # azure:<workspace ARM id>
        from ..backends.azure import parse_target

        parse_target(news["target"], "target")
        return
    if news.get("target") not in TARGETS and not is_unknown(news.get("target")):
        raise ValidationError("target", f"unknown target {news.get('target')!r}; valid targets: {', '.join(TARGETS)}")


def _check_service_name(news: dict[str, Any]) -> None:
    import re

    name = news.get("service_name")
    if is_unknown(name):
        return
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", name):
        raise ValidationError("service_name", f"{name!r} must be 1-63 lowercase letters, digits or '-', starting with a letter or digit")


def _resolve_inference(news: dict[str, Any]) -> None:
    from ..hashing import tree_digest

    path = news.get("inference_config")
    if is_unknown(path):
        return
    if not isinstance(path, str):
        raise ValidationError("inference_config", "must be the path of an inferenceconfig.json file")
    try:
        cfg = InferenceConfig.from_file(path)
        resolved = cfg.resolve(Path(path).parent)
    except ValidationError as exc:
        field = exc.field if exc.field == "inference_config" else f"inference_config.{exc.field}"
        raise ValidationError(field, f"{exc.message} (in {path})") from exc
    news["inference"] = resolved.model_dump(exclude=None if resolved.enable_gpu else {"enable_gpu"})
    news["source_digest"] = tree_digest(Path(resolved.source_dir))[0]
    news["base_image_field"] = "base_image"
    if not news.get("base_image") and cfg.base_image:
        news["base_image"] = cfg.base_image
        news["base_image_field"] = "inference_config.baseImage"


@needs("inference_config")
def _check_base_image_source(news: dict[str, Any]) -> None:
    if _azure.is_azure(news):
        return
    checks.check_base_image(news)


@needs("inference_config", "base_image")
def _resolve_environment(news: dict[str, Any]) -> None:
    """The ``python=`` pin and the lock, against the base image (``_inference_checks``); skipped until the base image is known."""
    if _azure.is_azure(news):
        return  # Azure ML builds the environment from the conda file itself
    checks.check_environment(news)


@needs("inference_config")
def _check_gpu(news: dict[str, Any]) -> None:
    checks.check_gpu(news, "azure" if _azure.is_azure(news) else str(news.get("target") or "local"))


def _resolve_deployment(news: dict[str, Any]) -> None:
    doc = news.get("deployment_config")
    if is_unknown(doc):
        return
    if isinstance(doc, str):
        dc = DeploymentConfig.from_file(doc)
        source = doc
    else:
        dc = parse(DeploymentConfig, doc or {}, "deployment_config")
        source = "deployment_config"
    target = news.get("target") or "local"
    allowed = ("local", "aci", "aks") if _azure.is_azure(news) else COMPUTE_TYPES.get(target, ("local",))
    if dc.compute_type not in allowed:
        raise ValidationError(
            "deployment_config.computeType",
            f"computeType {dc.compute_type!r} (in {source}) is not run by the {target} target yet; use {' or '.join(map(repr, allowed))}",
        )
    news["deployment"] = dc.model_dump(by_alias=True, exclude_none=True)
    if target == "swarm":
        _check_swarm_fields(news, source)
    news["port"] = dc.port or DEFAULT_PORT


def _check_port(news: dict[str, Any], olds: dict[str, Any] | None = None) -> None:
    """The port must be free, or held by this deployment (under its new or, when it is being renamed, its old name)."""
    from ..backends import docker_runtime

    port = news.get("port")
    if _azure.is_azure(news) or not isinstance(port, (int, float)) or not docker_runtime.port_in_use(int(port)):
        return
    port = int(port)
    owner = docker_runtime.owner_of_port(port)
    ours = {news.get("service_name"), (olds or {}).get("service_name")} - {None}
    if owner is None or owner.labels.get(docker_runtime.LABEL_SERVICE) not in ours:
        who = f"container {owner.name}" if owner else "another process"
        raise ValidationError("deployment_config.port", f"port {port} is in use by {who}; choose a free port in the deployment config")


@needs("inference_config")
def _check_base_image(news: dict[str, Any]) -> None:
    if not news.get("base_image") and not is_unknown(news.get("base_image")):
        raise ValidationError("base_image", "no base image: pass base_image (e.g. a BaseImage's image_ref) or set baseImage in the inference config")


def _select_target(news: dict[str, Any]) -> None:
    """No target given (argument or stack config ``mldeploy:target``): computeType ``aks`` selects ``swarm``."""
    if news.get("target") or is_unknown(news.get("target")):
        return
    news["target"] = "local"
    doc = news.get("deployment_config")
    try:
        dc = DeploymentConfig.from_file(doc) if isinstance(doc, str) else parse(DeploymentConfig, doc or {}, "deployment_config")
    except (ValidationError, TypeError):
        return  # _resolve_deployment reports it
    if dc.compute_type == "aks":
        news["target"] = "swarm"


def _check_swarm_fields(news: dict[str, Any], source: str) -> None:
    from ..backends import docker_swarm

    errors, warnings = docker_swarm.unsupported(news["deployment"])
    for w in warnings:
        progress(f"{KIND} {news.get('service_name')}", f"warning: {w}")
    if errors:
        field = errors[0][0] if len(errors) == 1 else "(several fields)"
        detail = "; ".join(f"{f}: {m}" for f, m in errors)
        raise ValidationError(f"deployment_config.{field}", f"the swarm target cannot honour this (in {source}): {detail}")


def _check_swarm(news: dict[str, Any]) -> None:
    if news.get("target") != "swarm":
        if news.get("regenerate_key"):
            raise ValidationError("regenerate_key", "keys exist only on the swarm target with authEnabled: true")
        return
    name = news.get("service_name")
    if isinstance(name, str) and len(name) > 48:
        raise ValidationError("service_name", f"{name!r}: at most 48 characters on the swarm target (services are named mldeploy-<name>-front)")
    regen = news.get("regenerate_key")
    if regen and not is_unknown(regen) and str(regen).split(":", 1)[0] not in ("primary", "secondary"):
        raise ValidationError("regenerate_key", f"{regen!r}: use 'primary:<anything>' or 'secondary:<anything>'; a change of the value regenerates that key")


# -- swarm target -----------------------------------------------------------
def _swarm_keys(olds: dict[str, Any], news: dict[str, Any], label: str) -> dict[str, Any]:
    """The primary and secondary keys: kept, generated when first needed, or one regenerated (as ``az ml service regen-key``)."""
    if not (news.get("deployment") or {}).get("authEnabled"):
        return {"primary_key": None, "secondary_key": None}
    keys = {k: olds.get(k) or secrets.token_urlsafe(32) for k in ("primary_key", "secondary_key")}
    regen = news.get("regenerate_key")
    if olds and regen and regen != olds.get("regenerate_key"):
        which = str(regen).split(":", 1)[0]
        keys[f"{which}_key"] = secrets.token_urlsafe(32)
        progress(label, f"regenerated the {which} key; the previous {which} key is refused once the front is updated")
    return keys


def _swarm_deploy(props: dict[str, Any], label: str, image_ref: str, digest: str, log_path: str) -> dict[str, Any]:
    from ..backends import docker_swarm as sw

    settings = Settings.from_env()
    service, dep, port = props["service_name"], props.get("deployment") or {}, int(props["port"])
    labels = sw.base_labels(service, props.get("stack") or "", props.get("resource_urn") or "", dep.get("tags"), dep.get("description"))
    say = lambda m: progress(label, m)  # noqa: E731
    front = sw.front_image(settings.registry, settings.base_os_image, _auth(props, "push"), str(settings.logs_dir / "swarm-front-build.log"), say)
    keys = (props["primary_key"], props["secondary_key"]) if props.get("primary_key") else None
    replicas = int(dep.get("numReplicas") or 1)
    facts = sw.deploy(
        service=service, image=image_ref, front=front, entry_script=props["inference"]["entry_script"], deployment=dep, port=port,
        labels=labels, keys=keys, registry=settings.registry, pull_auth=_auth(props, "pull"),
        timeout=float(props.get("health_timeout") or 120) * max(1, replicas), progress=say,
    )  # fmt: skip
    return {
        **props,
        "image_ref": image_ref,
        "derived_digest": digest,
        "container_id": None,
        "container_name": facts["swarm_service"],
        "replicas": facts["replicas"],
        "running_image": image_ref,
        "front_image": front,
        "publish_mode": facts["publish_mode"],
        "state": "running",
        "scoring_uri": f"http://127.0.0.1:{port}/score",
        "swagger_uri": f"http://127.0.0.1:{port}/swagger.json",
        "build_log": log_path,
        "deployed_at": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
    }


def _swarm_read(id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
    from ..backends import docker_swarm as sw

    try:
        facts = sw.read(props.get("service_name") or id_)
    except NotFound:
        return dynamic.ReadResult(None, {})
    state = "running" if facts["front"] and facts["running"] >= facts["replicas"] else "degraded"
    return dynamic.ReadResult(id_, {**props, "replicas": facts["replicas"], "running_image": facts["image"], "state": state})


def _swarm_drift(olds: dict[str, Any], news: dict[str, Any]) -> list[str]:
    """What ``refresh`` found changed out of band, or a key to regenerate: each needs an update."""
    if news.get("target") != "swarm" or olds.get("target") != "swarm":
        return []
    drift = ["regenerate_key"] if (news.get("regenerate_key") or None) != (olds.get("regenerate_key") or None) else []
    want = int((news.get("deployment") or {}).get("numReplicas") or 1) if not is_unknown(news.get("deployment")) else None
    if olds.get("replicas") is not None and want is not None and int(olds["replicas"]) != want:
        drift.append("replicas")
    if olds.get("running_image") and olds.get("running_image") != olds.get("image_ref"):
        drift.append("running_image")
    return drift


# -- helpers ----------------------------------------------------------------
def _auth(props: dict[str, Any], who: str) -> dict[str, str]:
    return {"username": props[f"{who}_username"], "password": props[f"{who}_password"]}


def _deploy(props: dict[str, Any], label: str) -> dict[str, Any]:
    """Build, push, pull by digest, start and health-check. Returns the outputs."""
    from ..backends import docker_runtime as rt
    from ..backends.docker_engine import DockerEngine
    from ..derived_image import derived_digest, write_context

    settings = Settings.from_env()
    service = props["service_name"]
    inference, models = props["inference"], props.get("models") or []
    engine = DockerEngine(progress=lambda m: progress(label, m))
    try:
        lock_model = checks.deploy_lock(props)  # pulls the base image with its own credentials; fails before anything of ours is built
    except ValidationError as exc:
        raise MldeployError(f"{exc.field}: {exc.message}") from exc
    props = {**props, "environment": lock_model.summary()}
    lock = lock_model.model_dump()
    base = props.get("base_image_pinned") or props["base_image"]
    digest = derived_digest(base, inference, models, props["source_digest"], lock)
    repo = f"{settings.registry}/mldeploy/{service}"
    tag = digest.removeprefix("sha256:")[:16]

    log_path = str(settings.logs_dir / f"deploy-{service}.log")
    with tempfile.TemporaryDirectory(prefix="mldeploy-ctx-") as ctx:
        write_context(Path(ctx), base, inference, models, lock)
        progress(label, f"building {repo}:{tag} (log: {log_path})")
        engine.build(ctx, "Dockerfile", f"{repo}:{tag}", {"WHEELHOUSE_URL": settings.wheelhouse_url}, log_path, label="derived image")
    progress(label, f"pushing {repo}:{tag}")
    pushed = engine.push(f"{repo}:{tag}", _auth(props, "push"))
    image_ref = f"{repo}@{pushed}"
    if props.get("target") == "swarm":  # Swarm's nodes pull it, with the pull-only identity
        return _swarm_deploy(props, label, image_ref, digest, log_path)
    engine.pull(image_ref, _auth(props, "pull"))  # as the deployment: with the pull-only identity

    port = int(props["port"])
    name = f"mldeploy-{service}-{secrets.token_hex(3)}"
    labels = {rt.LABEL_SERVICE: service, rt.LABEL_STACK: props.get("stack", ""), rt.LABEL_URN: props.get("resource_urn") or ""}
    progress(label, f"starting {name} on 127.0.0.1:{port}")
    entry = f"/var/azureml-app/{inference['entry_script']}"
    try:
        c = rt.start(image_ref, name, entry, port, labels, float(props.get("health_timeout") or 120), device_requests=props.get("gpu_device_requests"))
    except MldeployError:
        if image_ref != props.get("image_ref"):  # never delete what the running deployment uses
            try:
                _delete_image(image_ref, props, digest)
            except MldeployError as exc:
                progress(label, f"could not remove the failed image {image_ref}: {exc}")
        raise
    progress(label, f"healthy: http://127.0.0.1:{port}/score")
    return {
        **props,
        "image_ref": image_ref,
        "derived_digest": digest,
        "container_id": c.id,
        "container_name": c.name,
        "state": "running",
        "scoring_uri": f"http://127.0.0.1:{port}/score",
        "swagger_uri": f"http://127.0.0.1:{port}/swagger.json",
        "build_log": log_path,
        "deployed_at": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
    }


def _delete_image(image_ref: str | None, props: dict[str, Any], derived: str | None = None) -> None:
    """Delete a derived image's manifest from the registry and its local copies (by digest and by its build tag)."""
    from ..backends.docker_engine import DockerEngine
    from ..backends.oci_registry import OciRegistry

    if not image_ref or "@" not in image_ref:
        return
    name, digest = image_ref.split("@", 1)
    address, repository = name.split("/", 1)
    auth = _auth(props, "push")
    try:
        OciRegistry(address, auth["username"], auth["password"]).delete_manifest(repository, digest)
    except NotFound:
        pass
    engine = DockerEngine()
    engine.remove(image_ref)
    if derived:
        engine.remove(f"{name}:{derived.removeprefix('sha256:')[:16]}")


# -- provider ---------------------------------------------------------------
class InferenceDeploymentProvider(dynamic.ResourceProvider):
    """Holds nothing: Docker and registry clients are built per call."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.CheckResult:
        news = {**news}
        _select_target(news)
        result = run_checks(
            news, _check_target, _check_service_name, _resolve_inference, _resolve_deployment, _check_base_image,
            _check_base_image_source, _resolve_environment, _check_gpu, _check_swarm,
        )  # fmt: skip
        try:
            _check_port(news, olds)
        except ValidationError as exc:
            result.failures.append(failure(exc))
        return result

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        replaces = changed(olds, news, REPLACE_KEYS)
        updates = changed(olds, news, UPDATE_KEYS)
        not_running = olds.get("state") not in (None, "running")
        drift = _swarm_drift(olds, news)
        return dynamic.DiffResult(
            changes=_changes(bool(replaces or updates), bool(drift or not_running)), replaces=replaces, delete_before_replace=True
        )

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        label = f"{KIND} {props['service_name']}"
        from ..backends import docker_runtime as rt

        if _azure.is_azure(props):
            return _azure.create(props)
        if props.get("target") == "swarm":
            from ..backends import docker_swarm

            props = {**props, **_swarm_keys({}, props, label)}
            try:
                return dynamic.CreateResult(props["service_name"], _deploy(props, label))
            except MldeployError:
                try:
                    docker_swarm.remove(props["service_name"])  # nothing half-made is left behind
                except MldeployError as exc:
                    progress(label, f"could not clean up the failed deployment: {exc}")
                raise
        for old in rt.find(props["service_name"]):  # leftovers of a failed or out-of-band-broken deployment
            if old.status != "running":
                rt.remove(old.id)
        outs = _deploy(props, label)
        for old in rt.find(props["service_name"]):
            if old.id != outs["container_id"]:
                rt.remove(old.id)
        return dynamic.CreateResult(props["service_name"], outs)

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        from ..backends import docker_runtime as rt

        if _azure.is_azure(props):
            return _azure.read(id_, props)
        if props.get("target") == "swarm":
            return _swarm_read(id_, props)
        try:
            c = rt.get(props.get("container_id") or "")
        except NotFound:
            return dynamic.ReadResult(None, {})
        return dynamic.ReadResult(id_, {**props, "state": c.status})

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        from ..backends import docker_runtime as rt

        label = f"{KIND} {news['service_name']}"
        if _azure.is_azure(news):
            return _azure.update(olds, news)
        if news.get("target") == "swarm":
            news = {**news, **_swarm_keys(olds, news, label)}
        if olds.get("state") == "running" and olds.get("image_ref") and set(changed(olds, news, UPDATE_KEYS)) <= set(CREDENTIAL_KEYS):
            progress(label, "only the base image registry's credentials changed: nothing to rebuild or restart")
            return dynamic.UpdateResult({**olds, **news})
        outs = _deploy(news, label)
        for old in rt.find(news["service_name"]) if news.get("target") != "swarm" else []:  # Swarm replaced its own tasks
            if old.id != outs["container_id"]:
                progress(label, f"stopping previous container {old.name}")
                rt.remove(old.id)
        if olds.get("image_ref") and olds["image_ref"] != outs["image_ref"]:
            try:
                _delete_image(olds["image_ref"], news, olds.get("derived_digest"))
            except MldeployError as exc:
                progress(label, f"could not remove the previous image {olds['image_ref']}: {exc}")
        return dynamic.UpdateResult(outs)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        from ..backends import docker_runtime as rt

        if _azure.is_azure(props):
            return _azure.delete(props)
        if props.get("target") == "swarm":
            from ..backends import docker_swarm

            docker_swarm.remove(props.get("service_name", id_))
        for c in rt.find(props.get("service_name", id_)) if props.get("target") != "swarm" else []:
            rt.remove(c.id)
        _delete_image(props.get("image_ref"), props, props.get("derived_digest"))


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


def _base_image_registry(given: dict[str, Any] | None, inference_config: str) -> tuple[Any, Any]:
    """``baseImageRegistry`` as inputs: ``{address, username}`` and the password as a Pulumi secret.

    From the ``base_image_registry`` argument (the password may be an Output), else
    from the inference config file as the document writes it. A file that does not
    parse is left to ``check``, which names the problem.
    """
    doc: Any = given
    if doc is None:
        try:
            cfg = InferenceConfig.from_file(inference_config)
        except (ValidationError, OSError):
            return None, None
        if cfg.base_image_registry is None:
            return None, None
        r = cfg.base_image_registry
        doc = {"address": r.address, "username": r.username, "password": r.password.get_secret_value() if r.password else None}
    password = doc.get("password")
    public = {"address": doc.get("address"), "username": doc.get("username")}
    return public, (Output.secret(password) if password is not None else None)


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
        target: str | None = None,
        health_timeout: int = 120,
        base_python_version: Input[str] | None = None,
        accept_image_python: bool = False,
        regenerate_key: Input[str] | None = None,
        base_image_registry: dict[str, Any] | None = None,
        opts: ResourceOptions | None = None,
    ) -> None:
        """``target``: ``local`` or ``swarm``; unset, the stack config ``mldeploy:target``, else ``swarm`` when the
        deployment config's computeType is ``aks`` and ``local`` otherwise. ``regenerate_key`` (swarm,
        authEnabled): ``"primary:<tag>"`` or ``"secondary:<tag>"``; each change of the value regenerates that key."""
        target = target or pulumi.Config("mldeploy").get("target")
        urn = _static_urn(resource_name, "pulumi-python:dynamic/mldeploy:InferenceDeployment", opts.parent if opts else None)
        push_user, push_password = _identity(push_identity, "push_identity")
        pull_user, pull_password = _identity(pull_identity, "pull_identity")
        registry, registry_password = _base_image_registry(base_image_registry, inference_config)
        opts = ResourceOptions.merge(
            opts, ResourceOptions(additional_secret_outputs=["push_password", "pull_password", "base_registry_password", "primary_key", "secondary_key"])
        )
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
