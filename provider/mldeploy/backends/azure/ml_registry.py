"""``ModelRegistry`` on an Azure ML workspace: model versions through azure-ai-ml's ``MLClient.models``.

Files go to the workspace's default datastore (its blob container), content
addressed like the local registry: ``mldeploy/models/<name>/<digest hex>/<files>``,
hashed as they are uploaded (a change since the program computed the digest
fails the create with ``ValidationError("path")`` and registers nothing). A
marker blob ``mldeploy/models/<name>/<digest hex>.complete`` is written last;
when it exists, the same content is not uploaded again.

The version is registered with the datastore path (``azureml://datastores/...``),
so azure-ai-ml uploads nothing itself. mldeploy's metadata is in the version's
immutable ``properties``: ``mldeploy.digest`` and ``mldeploy.size_bytes`` beside
the user's properties; ``description`` and ``tags`` are the mutable part.

Versions are numbered here (the highest existing version + 1, archived versions
included: the default listing hides them), as the local registry's MLflow does.

Uploads authenticate as azure-ai-ml's own uploads do: with the SAS or account key
the datastore's ``listSecrets`` hands out, or, for an identity-based datastore, the
caller's Entra token (which needs ``Storage Blob Data Contributor``); a storage 403
names the missing role (``datastore_credential``). Delete removes the version (the REST API's
``DELETE .../models/<name>/versions/<v>``, which ``MLClient.models`` does not expose
publicly, so the generated client behind it is used) and, unless another
version has the same digest, its blobs.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, cast

from ...errors import AuthError, BackendError, MldeployError, NotFound, ValidationError
from ...hashing import tree_files
from ..protocols import RegisteredModel
from ._common import AzureTarget, azure_errors, call, error_code, parse_target, status_of, translate
from .credentials import AzureClient
from .workspace import ml_client

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
DIGEST = "mldeploy.digest"
SIZE = "mldeploy.size_bytes"
PREFIX = "mldeploy/models"


class _HashingReader:
    """A file wrapper that hashes what the blob client reads."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.h = hashlib.sha256()
        self.n = 0

    def read(self, size: int = -1) -> bytes:
        data = self.f.read(size)
        self.h.update(data)
        self.n += len(data)
        return data

    def __getattr__(self, name: str) -> Any:
        if name in ("seek", "tell", "seekable"):
            raise AttributeError(name)  # a forward-only stream: every byte is read (and hashed) once
        return getattr(self.f, name)


class AzureMlModelRegistry(AzureClient):
    """``ModelRegistry`` on one workspace. Holds its target; SDK clients are made per call."""

    def __init__(self, workspace: AzureTarget | str, credential: Any = None, transport: Any = None) -> None:
        self.workspace = parse_target(workspace) if isinstance(workspace, str) else workspace
        if self.workspace.kind != "workspace":
            raise ValidationError("registry", f"a model registry needs an Azure ML workspace, not the container registry {self.workspace.name}")
        self._credential = credential
        self._transport = transport
        self.location = str(self.workspace)

    def _ml(self) -> Any:
        return ml_client(self.workspace, self.credential, self._transport)

    def _container(self, ml: Any) -> tuple[Any, str]:
        return default_container(ml, self.credential, self._transport)

    def _model(self, m: Any) -> RegisteredModel:
        props = dict(m.properties or {})
        return RegisteredModel(
            name=m.name,
            version=int(m.version),
            model_uri=f"azureml:{m.name}:{m.version}",
            digest=props.get(DIGEST, ""),
            size_bytes=int(props.get(SIZE, "0") or 0),
            created_at=_iso(getattr(getattr(m, "creation_context", None), "created_at", None)),
            download=str(m.path or ""),
            description=m.description or "",
            tags=dict(m.tags or {}),
            properties={k: v for k, v in props.items() if not k.startswith("mldeploy.") and not k.startswith("azureml.")},
        )

    def _versions(self, ml: Any, name: str) -> list[Any]:
        """Every version of ``name``, archived ones included: the default listing (``listViewType=ActiveOnly``)
        hides archived versions, and numbering past only the active ones would collide with an archived one."""
        from azure.ai.ml.constants import ListViewType

        try:
            return call(f"listing versions of model {name}", lambda: list(ml.models.list(name=name, list_view_type=ListViewType.ALL)))
        except NotFound:
            return []

    # -- ModelRegistry ---------------------------------------------------------
    def validate_name(self, name: str, field: str = "model_name") -> None:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ValidationError(
                field, f"invalid model name {name!r}: use 1-255 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )

    def _upload(self, container: Any, name: str, src: Path, digest: str) -> int:
        return upload_verified(container, f"{PREFIX}/{name}/{digest.split(':', 1)[1]}", src, digest)

    @staticmethod
    def _delete_blobs(container: Any, folder: str) -> None:
        delete_blobs(container, folder)

    def create(self, name: str, path: str, digest: str, description: str, tags: dict[str, str], properties: dict[str, str]) -> RegisteredModel:
        from azure.ai.ml.constants import AssetTypes
        from azure.ai.ml.entities import Model

        self.validate_name(name)
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest or ""):
            raise ValidationError("digest", f"expected 'sha256:<64 hex digits>', got {digest!r}")
        src = Path(path)
        ml = self._ml()
        container, datastore = self._container(ml)
        size = self._upload(container, name, src, digest)
        folder = f"{PREFIX}/{name}/{digest.split(':', 1)[1]}"
        target = f"{folder}/{Path(os.path.abspath(src)).name}"  # the uploaded file or folder under its own name, as Azure ML stores it
        version = max((int(v.version) for v in self._versions(ml, name) if str(v.version).isdigit()), default=0) + 1
        model = Model(
            name=name,
            version=str(version),
            path=f"azureml://datastores/{datastore}/paths/{target}",
            type=AssetTypes.CUSTOM_MODEL,
            description=description or None,
            tags={str(k): str(v) for k, v in tags.items()},
            properties={**{str(k): str(v) for k, v in properties.items()}, DIGEST: digest, SIZE: str(size)},
        )
        return self._model(call(f"registering {name}:{version}", ml.models.create_or_update, model))

    def get(self, name: str, version: int) -> RegisteredModel:
        ml = self._ml()
        return self._model(call(f"reading model version {name}:{version}", ml.models.get, name, str(version)))

    def update(self, name: str, version: int, description: str, tags: dict[str, str]) -> RegisteredModel:
        ml = self._ml()
        what = f"updating model version {name}:{version}"
        m = call(what, ml.models.get, name, str(version))
        m.description = description or None
        m.tags = {str(k): str(v) for k, v in tags.items()}
        return self._model(call(what, ml.models.create_or_update, m))

    def delete(self, name: str, version: int) -> None:
        ml = self._ml()
        what = f"deleting model version {name}:{version}"
        try:
            m = call(what, ml.models.get, name, str(version))
        except NotFound:
            return
        digest = (m.properties or {}).get(DIGEST)
        ops = getattr(ml.models, "_model_versions_operation", None)
        if ops is None:  # pragma: no cover - an azure-ai-ml without the generated client
            raise BackendError(f"{what}: this azure-ai-ml has no model version delete; archive it with `az ml model archive`")
        try:
            call(what, ops.delete, name=name, version=str(version), resource_group_name=self.workspace.resource_group, workspace_name=self.workspace.name)
        except NotFound:
            return
        if digest and not any((v.properties or {}).get(DIGEST) == digest for v in self._versions(ml, name) if str(v.version) != str(version)):
            container, _ = self._container(ml)
            self._delete_blobs(container, f"{PREFIX}/{name}/{digest.split(':', 1)[1]}")


DATA_ROLE = "Storage Blob Data Contributor"


def datastore_credential(ml: Any, ds: Any, credential: Any, progress: Callable[[str], None] = lambda m: None) -> tuple[Any, str]:
    """The credential to write to a datastore's blobs with, as azure-ai-ml's own uploads choose it
    (``_artifact_utilities.get_datastore_info``), and what it is:

    - a key- or SAS-based datastore (the workspace default, ``credentialsType: AccountKey``): the SAS token or
      account key from ``POST .../datastores/<name>/listSecrets`` (needs the workspace action
      ``Microsoft.MachineLearningServices/workspaces/datastores/listsecrets/action``, which Owner, Contributor
      and AzureML Data Scientist have);
    - an identity-based datastore, or when listSecrets is refused: the caller's Entra token, which needs the
      data role ``Storage Blob Data Contributor`` on the storage account (Owner/Contributor have no data actions).
    """
    from azure.core.exceptions import HttpResponseError

    kind = type(getattr(ds, "credentials", None)).__name__
    if kind in ("NoneCredentialConfiguration", "AadCredentialConfiguration"):
        return credential, "entra"
    list_secrets = getattr(ml.datastores, "_list_secrets", None)
    if list_secrets is None:  # pragma: no cover - an azure-ai-ml without it
        return credential, "entra"
    try:
        secrets = list_secrets(name=ds.name, expirable_secret=True)
    except HttpResponseError as exc:
        progress(f"listing the secrets of datastore {ds.name} was refused (HTTP {exc.status_code}); uploading with your Entra token instead")
        return credential, "entra"
    sas = getattr(secrets, "sas_token", None)
    if sas:
        return sas, "sas"
    key = getattr(secrets, "key", None)
    if key:
        return {"account_name": ds.account_name, "account_key": key}, "key"
    return credential, "entra"


def default_container(ml: Any, credential: Any, transport: Any, progress: Callable[[str], None] = lambda m: None) -> tuple[Any, str]:
    """The workspace's default datastore as a blob ``ContainerClient`` (authorized as ``datastore_credential``
    chooses), and the datastore's name."""
    from azure.storage.blob import ContainerClient

    ds = call("reading the workspace's default datastore", ml.datastores.get_default)
    account_url = f"{getattr(ds, 'protocol', None) or 'https'}://{ds.account_name}.blob.{getattr(ds, 'endpoint', None) or 'core.windows.net'}"
    blob_credential, how = datastore_credential(ml, ds, credential, progress)
    kwargs = {"transport": transport} if transport is not None else {}
    container = ContainerClient(account_url, ds.container_name, credential=blob_credential, **kwargs)
    cast(Any, container).mldeploy_auth = how  # for the 403 message below
    return container, ds.name


def _refused(exc: BaseException, container: Any, what: str) -> MldeployError | None:
    """An ``AuthError`` naming the missing role for a storage 403, else None."""
    if status_of(exc) != 403:
        return None
    account = str(getattr(container, "account_name", "") or getattr(container, "url", ""))
    code = getattr(exc, "error_code", None) or error_code(exc) or "AuthorizationFailure"
    if getattr(container, "mldeploy_auth", "entra") == "entra":
        fix = (
            f"uploads use your Entra identity, which needs the data role '{DATA_ROLE}' on storage account {account} "
            "(Owner and Contributor have no data actions): `az role assignment create --role "
            f"\"{DATA_ROLE}\" --assignee <you> --scope <storage account id>`, or a role with "
            "Microsoft.MachineLearningServices/workspaces/datastores/listsecrets/action on the workspace"
        )
    else:
        fix = f"the datastore's key/SAS from listSecrets was refused by {account} (key rotated, or the account forbids shared-key access); grant '{DATA_ROLE}' instead"
    return AuthError(f"{what}: storage refused the upload (HTTP 403 {code}): {fix}")


def upload_verified(container: Any, folder: str, src: Path, digest: str, *, keep_name: bool = True, ignore: Any = None) -> int:
    """Upload a file or directory's files under ``folder/``, hashing the bytes sent; the total size.

    Skipped when ``folder.complete`` exists (the same content is stored). Raises
    ``ValidationError("path")`` and removes what it uploaded when the bytes do not
    have ``digest``.
    """
    marker = container.get_blob_client(f"{folder}.complete")
    try:
        with azure_errors(f"checking stored files under {folder}"):
            if marker.exists():
                return int(marker.download_blob().readall().decode().strip() or 0)
    except MldeployError as exc:
        refused = _refused(exc.__cause__ or exc, container, f"checking stored files under {folder}")
        if refused:
            raise refused from exc
        raise
    tree = hashlib.sha256()
    total = 0
    for rel, full in tree_files(src, keep_name=keep_name, ignore=ignore):  # as tree_digest named and hashed them
        with open(full, "rb") as f:
            reader = _HashingReader(f)
            try:
                container.upload_blob(f"{folder}/{rel}", reader, length=full.stat().st_size, overwrite=True)
            except Exception as exc:
                what = f"uploading {rel} to {folder}"
                raise (_refused(exc, container, what) or translate(exc, what)) from exc
        tree.update(f"{rel}\0{reader.h.hexdigest()}\n".encode())
        total += reader.n
    got = f"sha256:{tree.hexdigest()}"
    if got != digest:
        delete_blobs(container, folder)
        raise ValidationError(
            "path", f"the files under {str(src)!r} changed while being uploaded (digest {got}, the program computed {digest}); run `pulumi up` again"
        )
    call(f"marking {folder} complete", marker.upload_blob, str(total).encode(), overwrite=True)
    return total


def delete_blobs(container: Any, folder: str) -> None:
    with azure_errors(f"deleting {folder}"):
        for blob in container.list_blobs(name_starts_with=folder + "/"):
            container.delete_blob(blob.name)
        marker = container.get_blob_client(f"{folder}.complete")
        if marker.exists():
            marker.delete_blob()


def _iso(value: Any) -> str:
    if value is None:
        return ""
    iso = getattr(value, "isoformat", None)
    return iso(timespec="seconds").replace("+00:00", "Z") if iso else str(value)


__all__ = ["AzureMlModelRegistry"]
