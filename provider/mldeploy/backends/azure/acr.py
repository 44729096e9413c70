"""Azure Container Registry: remote builds (the document's ``az acr build``) and the registry API.

``AcrBuilder.remote_build``: upload the build context (``.dockerignore``
honoured, as a ``tar.gz``) to the URL the registry hands out
(``getBuildSourceUploadUrl``), schedule a ``DockerBuildRequest`` run
(``scheduleRun``, a long-running operation), then follow the run: its log blob
(``listLogSasUrl``) is read from the last offset on every poll and each new
line goes to the ``log`` callback (Pulumi's log), until the run ends. The
result carries the run id, its duration, and the image digest the run
reports. A failed, cancelled or timed-out run raises ``BuildError`` with the
log's last lines. The runs API lives in api-version 2019-06-01-preview of
azure-mgmt-containerregistry (removed in 15.x, hence the pin below 15); there
``scheduleRun`` answers a plain 200 with the queued Run. A registry in ABAC mode
(``roleAssignmentMode: AbacRepositoryPermissions``) gets the run scheduled at
``REGISTRY_API`` with ``credentials.sourceRegistry.identity: "[caller]"``, as
``az acr build --source-acr-auth-id [caller]`` does. ``TasksOperationsNotAllowed``
(ACR Tasks disabled for the subscription) becomes a ``BuildError`` that says to
build locally and push.

``AcrImageRegistry`` implements ``ImageRegistry`` on the registry's v2 API with
an Entra token (``/oauth2/exchange`` then ``/oauth2/token``), for reading and
deleting manifests of remotely built images without any password.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...context import context_files, dockerfile_path
from ...errors import AuthError, BackendError, BuildError, NotFound, ValidationError
from ._common import AzureTarget, azure_errors, call, error_code, parse_target, translate
from .credentials import ARM_SCOPE, AzureClient, arm_json
from .workspace import REGISTRY_API, RegistryBound

RUNS_API = "2019-06-01-preview"
TERMINAL = ("Succeeded", "Failed", "Canceled", "Error", "Timeout")
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


@dataclass(frozen=True)
class RemoteBuild:
    run_id: str
    status: str
    duration_seconds: float
    digest: str
    image_names: tuple[str, ...]
    log_tail: str


def context_archive(context_dir: str, dockerfile: str | None) -> bytes:
    """A ``tar.gz`` of the build context as the Docker CLI would send it (``.dockerignore`` honoured)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for rel in context_files(context_dir, dockerfile):
            tar.add(os.path.join(context_dir, rel), arcname=rel, recursive=False)
        df = dockerfile_path(context_dir, dockerfile)
        rel_df = os.path.relpath(df, context_dir)
        if rel_df.startswith(".."):  # a Dockerfile outside the context travels with it
            tar.add(str(df), arcname=".mldeploy.Dockerfile", recursive=False)
    return buf.getvalue()


class AcrBuilder(RegistryBound):
    """Remote builds on one registry (a workspace target resolves to its registry)."""

    def __init__(self, target: AzureTarget | str, credential: Any = None, transport: Any = None, poll_interval: float = 3.0) -> None:
        self.target = parse_target(target) if isinstance(target, str) else target
        self._credential = credential
        self._transport = transport
        self.poll_interval = poll_interval

    def _client(self) -> Any:
        from azure.mgmt.containerregistry import ContainerRegistryManagementClient

        kwargs: dict[str, Any] = {"api_version": RUNS_API}
        if self._transport is not None:
            kwargs["transport"] = self._transport
        return ContainerRegistryManagementClient(self.credential, self.info.target.subscription_id, **kwargs)

    def _blob(self, url: str) -> Any:
        from azure.storage.blob import BlobClient

        kwargs = {"transport": self._transport} if self._transport is not None else {}
        return BlobClient.from_blob_url(url, **kwargs)

    def remote_build(
        self,
        context_dir: str,
        dockerfile: str | None,
        repository: str,
        tags: list[str],
        build_args: dict[str, str],
        platform: str | None = None,
        nocache: bool = False,
        log: Callable[[str], None] = lambda line: None,
        timeout: int = 3600,
    ) -> RemoteBuild:
        from azure.mgmt.containerregistry.v2019_06_01_preview import models as m

        reg = self.info.target
        client = self._client()
        where = f"registry {reg.name}"
        upload = call(f"asking {where} for a source upload URL", client.registries.get_build_source_upload_url, reg.resource_group, reg.name)
        archive = context_archive(context_dir, dockerfile)
        blob = self._blob(upload.upload_url)
        call(f"uploading the build context ({len(archive)} bytes) to {where}", blob.upload_blob, archive, overwrite=True)
        df = dockerfile_path(context_dir, dockerfile)
        rel_df = os.path.relpath(df, context_dir)
        os_, _, rest = (platform or "linux/amd64").partition("/")
        arch, _, variant = rest.partition("/")
        names = [f"{repository}:{t}" for t in tags]
        request = m.DockerBuildRequest(
            source_location=upload.relative_path,
            docker_file_path=".mldeploy.Dockerfile" if rel_df.startswith("..") else rel_df,
            image_names=names,
            is_push_enabled=True,
            no_cache=nocache,
            arguments=[m.Argument(name=k, value=str(v), is_secret=False) for k, v in sorted(build_args.items())],
            platform=m.PlatformProperties(os=os_.capitalize(), architecture=arch or "amd64", variant=variant or None),
            timeout=timeout,
        )
        started = time.monotonic()
        try:
            if self.info.abac:
                # ABAC registries do not let a quick build's agent into the source registry by role; it acts as the
                # caller (the document's `az acr build --source-acr-auth-id [caller]`), at an API version that has it.
                body = {**request.serialize(), "credentials": {"sourceRegistry": {"identity": "[caller]"}}}
                log(f"{reg.name} uses ABAC repository permissions: the build runs as you ([caller]), which needs 'Container Registry Repository Writer'")
                answer = arm_json(self.credential, self._transport, "POST", f"{reg.arm_id}/scheduleRun", REGISTRY_API, body)
                run_id = answer["properties"]["runId"]
            else:
                # On RUNS_API scheduleRun answers 200 with the queued Run itself; the poller only reads it.
                poller = client.registries.begin_schedule_run(reg.resource_group, reg.name, request, polling_interval=self.poll_interval)
                run_id = poller.result().run_id
        except Exception as exc:
            raise tasks_refused(exc, reg.name) or translate(exc, f"scheduling a build on {where}") from exc
        log(f"run {run_id} scheduled on {self.info.login_server}")
        offset, log_url = 0, None
        lines: list[str] = []
        while True:
            run = call(f"reading run {run_id}", client.runs.get, reg.resource_group, reg.name, run_id)
            if log_url is None:
                try:
                    log_url = call(f"reading the log URL of run {run_id}", client.runs.get_log_sas_url, reg.resource_group, reg.name, run_id).log_link
                except NotFound:
                    log_url = None
            if log_url:
                offset = self._follow(log_url, offset, lines, log)
            if run.status in TERMINAL:
                break
            if time.monotonic() - started > timeout + 60:
                raise BuildError(f"run {run_id} on {where} did not finish within {timeout}s", log_tail="\n".join(lines[-30:]))
            time.sleep(self.poll_interval)
        if log_url:
            offset = self._follow(log_url, offset, lines, log)
        tail = "\n".join(lines[-30:])
        if run.status != "Succeeded":
            raise BuildError(
                f"remote build run {run_id} on {where} ended {run.status}" + (f": {run.run_error_message}" if run.run_error_message else ""),
                log_tail=tail,
            )
        digest = next((i.digest for i in run.output_images or [] if i.digest), "")
        if not digest:
            raise BackendError(f"run {run_id} succeeded but reported no image digest")
        duration = (run.finish_time - run.start_time).total_seconds() if run.start_time and run.finish_time else time.monotonic() - started
        return RemoteBuild(run_id, run.status, duration, digest, tuple(names), tail)

    def _follow(self, url: str, offset: int, lines: list[str], log: Callable[[str], None]) -> int:
        """Read the log blob from ``offset``; emit complete new lines; the new offset."""
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        blob = self._blob(url)
        try:
            data = blob.download_blob(offset=offset).readall()
        except ResourceNotFoundError:
            return offset  # the agent has not written the log yet
        except HttpResponseError as exc:
            if exc.status_code == 416:  # nothing new beyond offset
                return offset
            raise BackendError(f"reading the build log: {exc}") from exc
        end = data.rfind(b"\n") + 1
        for raw in data[:end].decode("utf-8", "replace").splitlines():
            lines.append(raw)
            log(raw)
        return int(offset + end)


def tasks_refused(exc: BaseException, registry: str) -> BuildError | None:
    """``TasksOperationsNotAllowed`` (ACR Tasks disabled for the subscription: free trial, student and some
    sponsored subscriptions) as a ``BuildError`` that says what to do instead; None for anything else."""
    if "TasksOperationsNotAllowed" not in error_code(exc):
        return None
    return BuildError(
        f"registry {registry} refused the remote build: ACR Tasks are not allowed on this subscription (TasksOperationsNotAllowed; "
        "usual on free-trial and student subscriptions, and no role fixes it). Build locally and push instead: leave BaseImage's "
        "build_on unset (the local Docker Engine builds and pushes to the registry), or ask Azure support to enable ACR Tasks"
    )


class AcrImageRegistry(AzureClient):
    """``ImageRegistry`` on an ACR login server with an Entra token (no password)."""

    def __init__(self, address: str, credential: Any = None, transport: Any = None) -> None:
        self.address = address
        self._credential = credential
        self._transport = transport

    def _pipeline(self) -> Any:
        from azure.core import PipelineClient
        from azure.core.pipeline.policies import RetryPolicy

        kwargs = {"transport": self._transport} if self._transport is not None else {}
        return PipelineClient(f"https://{self.address}", policies=[RetryPolicy()], **kwargs)

    def _token(self, client: Any, scope: str) -> str:
        from azure.core.rest import HttpRequest

        aad = self.credential.get_token(ARM_SCOPE).token
        with azure_errors(f"signing in to {self.address}"):
            resp = client.send_request(
                HttpRequest("POST", f"https://{self.address}/oauth2/exchange", data={"grant_type": "access_token", "service": self.address, "access_token": aad})
            )
            if resp.status_code in (401, 403):
                raise AuthError(f"{self.address} refused the Entra token (HTTP {resp.status_code}); the identity needs AcrPull/AcrPush")
            resp.raise_for_status()
            refresh = resp.json()["refresh_token"]
            resp = client.send_request(
                HttpRequest("POST", f"https://{self.address}/oauth2/token", data={"grant_type": "refresh_token", "service": self.address, "scope": scope, "refresh_token": refresh})
            )
            resp.raise_for_status()
            return str(resp.json()["access_token"])

    def _manifest(self, method: str, repository: str, reference: str, actions: str) -> Any:
        from azure.core.rest import HttpRequest

        client = self._pipeline()
        token = self._token(client, f"repository:{repository}:{actions}")
        with azure_errors(f"{method} {self.address}/{repository} {reference}"):
            resp = client.send_request(
                HttpRequest(method, f"https://{self.address}/v2/{repository}/manifests/{reference}", headers={"Authorization": f"Bearer {token}", "Accept": MANIFEST_TYPES})
            )
        if resp.status_code in (401, 403):
            raise AuthError(f"{self.address} refused {method} on {repository} (HTTP {resp.status_code})")
        if resp.status_code == 404:
            raise NotFound(f"{self.address} has no manifest {repository} {reference}")
        if resp.status_code >= 300:
            raise BackendError(f"{method} {self.address}/{repository} {reference}: HTTP {resp.status_code}")
        return resp

    def manifest_digest(self, repository: str, reference: str) -> str:
        resp = self._manifest("HEAD", repository, reference, "pull")
        return resp.headers.get("Docker-Content-Digest") or reference

    def delete_manifest(self, repository: str, digest: str) -> None:
        if not digest.startswith("sha256:"):
            raise ValidationError("digest", f"delete by digest, not {digest!r}")
        self._manifest("DELETE", repository, digest, "delete")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


__all__ = ["AcrBuilder", "AcrImageRegistry", "RemoteBuild", "context_archive"]
