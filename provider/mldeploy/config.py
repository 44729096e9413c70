"""The source document's JSON files as pydantic models.

``inferenceconfig.json`` and ``deploymentconfig.json`` are read as they are
(camelCase in JSON, snake_case in Python). Unknown fields are errors that name
the field and the file, as are missing files the config points at.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic.alias_generators import to_camel

from .errors import ValidationError
from .paths import Policy, contain, is_inside, walk


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class BaseImageRegistry(_Camel):
    """A private registry outside the workspace: address, username, password (a secret)."""

    address: str
    username: str | None = None
    password: SecretStr | None = None


class InferenceConfig(_Camel):
    """``az ml model deploy --ic``: how to package the model into a web service."""

    entry_script: str
    runtime: Literal["python"] = "python"
    conda_file: str | None = None
    extra_dockerfile_steps: str | None = None
    source_directory: str | None = None
    enable_gpu: bool = False
    base_image: str | None = None
    base_image_registry: BaseImageRegistry | str | None = None
    description: str | None = None

    @field_validator("base_image_registry", mode="before")
    @classmethod
    def _registry_as_address(cls, v: Any) -> Any:
        # The document's JSON gives the registry as a bare address string.
        return {"address": v} if isinstance(v, str) else v

    @classmethod
    def from_file(cls, path: str | Path, policy: Policy | None = None) -> "InferenceConfig":
        """Read the file; it must lie inside the project or an allowed root (``mldeploy.paths``)."""
        contain(path, "inference_config", policy or Policy.current(), what="the inference config")
        loaded: InferenceConfig = _load(cls, Path(path))
        return loaded

    def resolve(self, base_dir: Path, policy: Policy | None = None) -> "ResolvedInference":
        """Check the files this config points at, relative to ``base_dir`` (the JSON file's directory).

        Each one is resolved (symlinks followed) and must stay inside the project or an allowed root
        (``policy``, default ``Policy.current()``); the entry script must lie inside the source
        directory (only that directory is shipped). The source directory's size is checked against
        the policy's size guard before anything is read.
        """
        from .hashing import source_ignore

        policy = policy or Policy.current()
        given_src = (base_dir / self.source_directory) if self.source_directory else base_dir
        src = contain(given_src, "sourceDirectory", policy, what=f"sourceDirectory {self.source_directory or '.'!r} ->")
        if not src.is_dir():
            raise ValidationError("sourceDirectory", f"{given_src} is not a directory")
        entry = contain(src / self.entry_script, "entryScript", policy, what=f"entryScript {self.entry_script!r} ->")
        if not is_inside(entry, src):
            raise ValidationError(
                "entryScript",
                f"{self.entry_script!r} resolves to {str(entry)!r}, outside sourceDirectory {str(src)!r}; "
                "only the source directory is shipped, so the entry script must be inside it",
            )
        if not entry.is_file():
            raise ValidationError("entryScript", f"{entry} does not exist; entryScript is relative to sourceDirectory ({src})")
        conda = None
        if self.conda_file:
            from .environment import CondaEnvironment

            conda = contain(src / self.conda_file, "condaFile", policy, what=f"condaFile {self.conda_file!r} ->")
            if not conda.is_file():
                conda = contain(base_dir / self.conda_file, "condaFile", policy, what=f"condaFile {self.conda_file!r} ->")
            if not conda.is_file():
                raise ValidationError("condaFile", f"{self.conda_file} does not exist (looked in {src} and {base_dir})")
            CondaEnvironment.from_file(conda)  # parse errors name the file, the line and the entry
        extra = None
        if self.extra_dockerfile_steps:
            what = f"extraDockerfileSteps {self.extra_dockerfile_steps!r} ->"
            extra = contain(src / self.extra_dockerfile_steps, "extraDockerfileSteps", policy, what=what)
            if not extra.is_file():
                extra = contain(base_dir / self.extra_dockerfile_steps, "extraDockerfileSteps", policy, what=what)
            if not extra.is_file():
                raise ValidationError("extraDockerfileSteps", f"{self.extra_dockerfile_steps} does not exist")
        walk(src, "sourceDirectory", policy, source_ignore, kind="sourceDirectory")  # links, size guard
        if self.enable_gpu:
            raise ValidationError("enableGpu", "this machine has no GPU and the local target runs CPU images only; set enableGpu to false")
        return ResolvedInference(
            source_dir=str(src),
            entry_script=self.entry_script,
            conda_file=str(conda) if conda else None,
            extra_dockerfile_steps=extra.read_text() if extra else None,
        )


class ResolvedInference(BaseModel):
    """An InferenceConfig with its files found and read: what the deployment's inputs carry."""

    source_dir: str
    entry_script: str
    conda_file: str | None
    extra_dockerfile_steps: str | None


class ContainerResourceRequirements(_Camel):
    cpu: float | None = Field(default=None, gt=0)
    memory_in_gb: float | None = Field(default=None, alias="memoryInGB", gt=0)
    cpu_limit: float | None = Field(default=None, gt=0)  # aks: AksWebservice.deploy_configuration(cpu_cores_limit=)
    memory_in_gb_limit: float | None = Field(default=None, alias="memoryInGBLimit", gt=0)  # aks: memory_gb_limit
    gpu: int | None = None


class AutoScaler(_Camel):
    autoscale_enabled: bool | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    refresh_period_in_seconds: int | None = None
    target_utilization: int | None = None


class LivenessProbeRequirements(_Camel):
    period_seconds: int | None = None
    initial_delay_seconds: int | None = None
    timeout_seconds: int | None = None
    failure_threshold: int | None = None
    success_threshold: int | None = None


class DeploymentConfig(_Camel):
    """``az ml model deploy --dc``: where and how the service runs.

    ``local`` runs here; the ``aci`` and ``aks`` fields of the same format parse
    and validate, and a target that does not run them says so at preview.
    """

    compute_type: Literal["local", "aci", "aks"] = "local"
    port: int | None = Field(default=None, ge=1, le=65535)
    # aci / aks
    container_resource_requirements: ContainerResourceRequirements | None = None
    auth_enabled: bool | None = None
    ssl_enabled: bool | None = None
    app_insights_enabled: bool | None = None
    location: str | None = None
    dns_name_label: str | None = None
    description: str | None = None
    tags: dict[str, str] | None = None
    # aks
    auto_scaler: AutoScaler | None = None
    num_replicas: int | None = Field(default=None, ge=1)
    scoring_timeout_ms: int | None = Field(default=None, ge=1)
    max_concurrent_requests_per_container: int | None = Field(default=None, ge=1)
    max_queue_wait_ms: int | None = None
    liveness_probe_requirements: LivenessProbeRequirements | None = None
    namespace: str | None = None
    compute_target_name: str | None = None

    @classmethod
    def from_file(cls, path: str | Path) -> "DeploymentConfig":
        loaded: DeploymentConfig = _load(cls, Path(path))
        return loaded


def _load(cls: Any, path: Path) -> Any:
    field = "inference_config" if cls is InferenceConfig else "deployment_config"
    if not path.is_file():
        raise ValidationError(field, f"{path} does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValidationError(field, f"{path} is not valid JSON: {exc}") from exc
    return parse(cls, data, str(path))


def parse(cls: Any, data: Any, source: str) -> Any:
    """Validate ``data`` as ``cls``; the error names each bad field and the file."""
    try:
        return cls.model_validate(data)
    except PydanticValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(root)"
            msg = "unknown field; check its spelling against the documented fields" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"{loc}: {msg}")
        field = "inference_config" if cls is InferenceConfig else "deployment_config"
        raise ValidationError(field, f"{source}: " + "; ".join(problems)) from exc
