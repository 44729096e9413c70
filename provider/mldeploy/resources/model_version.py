"""ModelVersion: one immutable version of a registered model, ``name:version`` (the source document's ``mymodel:1``).

Inputs: ``model_name``, ``path`` (a file or a directory), ``description``,
``tags``, ``properties`` (e.g. ``{"framework": "sklearn"}``), ``registry``
(``"local"``, the embedded MLflow registry, is the default), and ``digest``:
the content digest, computed *in the program* by the resource's constructor
(``mldeploy.hashing.tree_digest``, cached per file) so that ``pulumi preview
--diff`` shows it changing when the model files change.

Outputs: ``version`` (int), ``model_uri`` (``models:/name/version``),
``digest``, ``size_bytes``, ``created_at``, ``download`` (where a deployment
fetches the files: a ``file://`` directory in the local registry's artifact
store; the files are copied there, never referenced in the working tree).

Id: ``name:version``, e.g. ``mymodel:1``.

Replaced (a new version is registered first, then the old one is deleted) when
``digest``, ``model_name``, ``registry`` or ``properties`` change: the content
and properties of a version are immutable. With Pulumi's ``retain_on_delete``
the engine never calls delete, so the old version stays in the registry.
Updated in place: ``description`` and ``tags``. ``path`` alone never causes a
change: moving the same folder elsewhere keeps the version; renaming the folder
(or the file) changes the digest, since the name is part of what a deployment
sees (``$AZUREML_MODEL_DIR/<folder name>/...``, as on Azure ML).

Containment (``mldeploy.paths``): ``path`` is resolved (symlinks followed) and
must lie inside the project or an allowed root (stack config
``mldeploy:allowedRoots``, passed in the ``path_policy`` input, or
``MLDEPLOY_ALLOWED_ROOTS``); a symlink inside a model folder must stay inside
the folder; a folder over the size guard (20 GiB / 100,000 files by default,
``mldeploy:maxTreeGB`` / ``mldeploy:maxTreeFiles``) is refused. All of it at
preview, before anything is read or registered.
Read (refresh): a version deleted out of band is reported gone (only on a
definite not-found), and the next ``up`` registers it again.
Delete: the version and, unless another version shares them, its stored files.
"""

from __future__ import annotations

import os
from typing import Any

from pulumi import Input, Output, ResourceOptions, dynamic

from .. import watchdog
from ..backends import model_orphans, select
from ..backends.protocols import RegisteredModel
from ..errors import NotFound, ValidationError
from ..hashing import tree_digest
from ..paths import Policy, contain, program_policy
from ._common import diff, is_unknown, progress, run_checks
from .inference_deployment import _static_urn

KIND = "ModelVersion"
REPLACE_KEYS = ("digest", "model_name", "registry", "properties")
UPDATE_KEYS = ("description", "tags")
RESERVED_TAG_PREFIX = "mldeploy."


def _check_registry(news: dict[str, Any]) -> None:
    if is_unknown(news.get("registry")):
        return
    select.model_registry(news.get("registry"))


def _check_model_name(news: dict[str, Any]) -> None:
    name, registry = news.get("model_name"), news.get("registry")
    if is_unknown(name) or is_unknown(registry):
        return
    try:
        store = select.model_registry(registry)
    except ValidationError:
        store = select.model_registry("local")  # the unknown registry is reported by _check_registry
    store.validate_name(str(name), "model_name")


def _check_path(news: dict[str, Any]) -> None:
    path = news.get("path")
    if is_unknown(path):
        return
    if not isinstance(path, str) or not path:
        raise ValidationError("path", "must be the path of a model file or directory, e.g. 'model/'")
    policy = Policy.current(news.get("path_policy"))
    contain(path, "path", policy, what="the model path")
    digest, _size = tree_digest(path, limits=policy)  # raises ValidationError("path", ...) if missing, empty, too big
    given = news.get("digest")
    if given is None:
        news["digest"] = digest  # a program that could not compute it (e.g. a path known only now)


def _check_digest(news: dict[str, Any]) -> None:
    digest = news.get("digest")
    if digest is None or is_unknown(digest):
        return
    if not isinstance(digest, str) or not digest.startswith("sha256:") or len(digest) != 71:
        raise ValidationError("digest", f"expected 'sha256:<64 hex digits>' from mldeploy.hashing.tree_digest, got {digest!r}")


def _check_string_map(field: str, reserved: bool) -> Any:
    def check(news: dict[str, Any]) -> None:
        value = news.get(field)
        if value is None or is_unknown(value):
            return
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ValidationError(field, f"must be a mapping of strings to strings, e.g. {{'stage': 'dev'}}, got {value!r}")
        if reserved:
            bad = sorted(k for k in value if k.startswith(RESERVED_TAG_PREFIX))
            if bad:
                raise ValidationError(field, f"keys starting with {RESERVED_TAG_PREFIX!r} are reserved for mldeploy: {', '.join(bad)}")

    return check


def _check_description(news: dict[str, Any]) -> None:
    value = news.get("description")
    if value is None or is_unknown(value):
        return
    if not isinstance(value, str):
        raise ValidationError("description", f"must be a string, got {value!r}")


def _outs(props: dict[str, Any], model: RegisteredModel) -> dict[str, Any]:
    return {
        **props,
        "model_name": model.name,
        "version": model.version,
        "model_uri": model.model_uri,
        "digest": model.digest or props.get("digest"),
        "size_bytes": model.size_bytes,
        "created_at": model.created_at,
        "download": model.download,
        "description": model.description,
        "tags": model.tags,
    }


def _split_id(id_: str) -> tuple[str, int]:
    name, _, version = id_.rpartition(":")
    return name, int(version)


class ModelVersionProvider(dynamic.ResourceProvider):
    """Holds nothing: the registry is chosen per call from the inputs and the environment."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.CheckResult:
        news = {**news}
        news.setdefault("registry", "local")
        if news.get("registry") in (None, ""):
            news["registry"] = "local"
        news["description"] = news.get("description") or ""
        news["tags"] = news.get("tags") or {}
        news["properties"] = news.get("properties") or {}
        return run_checks(
            news,
            _check_registry,
            _check_model_name,
            _check_digest,
            _check_path,
            _check_description,
            _check_string_map("tags", reserved=True),
            _check_string_map("properties", reserved=False),
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        return diff(olds, news, REPLACE_KEYS, UPDATE_KEYS, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        store = select.model_registry(props.get("registry"))
        name = props["model_name"]
        contain(props["path"], "path", Policy.current(props.get("path_policy")), what="the model path")  # again: links may have moved
        say, owner = (lambda m: progress(f"{KIND} {name}", m)), props.get("resource_urn")
        with watchdog.intent(f"{KIND} {name}", "creating"):
            model = model_orphans.adopt_or_clean(store, name, props["digest"], owner, say) or store.create(
                name,
                props["path"],
                props["digest"],
                props.get("description") or "",
                {**(props.get("tags") or {}), **model_orphans.registration_tags(owner)},
                dict(props.get("properties") or {}),
            )
            if owner:
                model_orphans.confirm(store, name, model.version)
        progress(f"{KIND} {name}", f"registered {name}:{model.version} ({model.size_bytes} bytes, {model.digest}) in {store.location}")
        return dynamic.CreateResult(f"{model.name}:{model.version}", _outs(props, model))

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        store = select.model_registry(props.get("registry"))
        name, version = _split_id(id_)
        try:
            model = store.get(name, version)
        except NotFound:
            return dynamic.ReadResult(None, {})
        return dynamic.ReadResult(id_, _outs(props, model))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        store = select.model_registry(news.get("registry"))
        name, version = _split_id(id_)
        model = store.update(name, version, news.get("description") or "", dict(news.get("tags") or {}))
        progress(f"{KIND} {name}", f"updated description/tags of {id_} in place")
        return dynamic.UpdateResult(_outs({**olds, **news}, model))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        name, version = _split_id(id_)
        store = select.model_registry(props.get("registry"))
        store.delete(name, version)
        model_orphans.delete_pending(store, name, props.get("resource_urn"), version, lambda m: progress(f"{KIND} {name}", m))
        progress(f"{KIND} {name}", f"deleted {id_}")


def _program_digest(path: Any, policy: dict[str, Any]) -> Any:
    """The content digest, computed here in the program; ``None`` lets check() report a bad path by name.

    Nothing outside the project (or an allowed root) is read, and nothing over the size guard.
    """

    def compute(p: Any) -> str | None:
        if not isinstance(p, (str, os.PathLike)):
            return None
        try:
            limits = Policy.current(policy)
            contain(p, "path", limits)
            return tree_digest(os.fspath(p), limits=limits)[0]
        except (ValidationError, OSError):
            return None

    if isinstance(path, (str, os.PathLike)):
        return compute(path)
    return Output.from_input(path).apply(compute)


def _abspath(path: Any) -> Any:
    if isinstance(path, (str, os.PathLike)):
        return os.path.abspath(os.fspath(path))
    return Output.from_input(path).apply(lambda p: os.path.abspath(os.fspath(p)) if p is not None else p)


class ModelVersion(dynamic.Resource, module="mldeploy", name="ModelVersion"):
    """One immutable version of a registered model (``name:version``). See the module docstring."""

    model_name: Output[str]
    version: Output[int]
    model_uri: Output[str]
    digest: Output[str]
    size_bytes: Output[int]
    created_at: Output[str]
    download: Output[str]
    description: Output[str]
    tags: Output[dict[str, str]]
    properties: Output[dict[str, str]]

    def __init__(
        self,
        resource_name: str,
        model_name: Input[str],
        path: Input[str],
        description: Input[str] | None = None,
        tags: Input[dict[str, Input[str]]] | None = None,
        properties: Input[dict[str, Input[str]]] | None = None,
        registry: Input[str] = "local",
        opts: ResourceOptions | None = None,
    ) -> None:
        path = _abspath(path)
        policy = program_policy()
        super().__init__(
            ModelVersionProvider(),
            resource_name,
            {
                "model_name": model_name,
                "path": path,
                "digest": _program_digest(path, policy),
                "path_policy": policy,
                "description": description,
                "tags": tags,
                "properties": properties,
                "registry": registry,
                "resource_urn": _static_urn(resource_name, "pulumi-python:dynamic/mldeploy:ModelVersion", opts.parent if opts else None),
                "version": None,
                "model_uri": None,
                "size_bytes": None,
                "created_at": None,
                "download": None,
            },
            opts,
        )


__all__ = ["ModelVersion", "ModelVersionProvider"]
