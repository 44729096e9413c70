"""InferenceDeployment's check-time work on the inference config's base image, environment and GPU fields.

Kept apart from the resource so that each step reads on its own; the resource
calls them in order from ``check`` (and the environment again at deploy time
when the base image was not known at preview).

- ``check_base_image``: the base image's source and credentials
  (``mldeploy.base_ref``), its manifest asked of its registry with exactly those
  credentials; sets ``base_image_pinned`` (the reference by digest the derived
  image is built FROM).
- ``check_environment``: the base image's Python and installed packages (the
  image pulled with its own credentials if this engine lacks it, then probed
  once per image id), the conda file's ``python=`` pin checked against them, and
  the lock resolved together with the base's packages; sets ``environment``
  (the lock's short summary; the full lock stays in the cache by digest).
- ``check_gpu``: ``enableGpu`` honoured only where the target can give GPUs.
"""

from __future__ import annotations

import json
from typing import Any

from .. import base_ref
from .. import environment as envmod
from ..errors import NotFound, ValidationError
from ..settings import Settings
from ._common import is_unknown, progress

FACTS_CACHE = "image-facts.json"


def _label(news: dict[str, Any]) -> str:
    return f"InferenceDeployment {news.get('service_name')}"


def base_source(news: dict[str, Any]) -> base_ref.BaseImageSource | None:
    """The base image's source with its credentials, or None when something it needs is not known yet."""
    base = news.get("base_image")
    registry = news.get("base_image_registry")
    password = news.get("base_registry_password")
    pull = {"username": news.get("pull_username"), "password": news.get("pull_password")}
    if not base or is_unknown(base) or is_unknown(registry) or is_unknown(password):
        return None
    field = news.get("base_image_field") or "base_image"
    src = base_ref.source(str(base), field, registry or None, password or None, Settings.from_env().registry, None if is_unknown(pull) else pull)
    if src.ref.address == Settings.from_env().registry and src.credentials_from == "anonymous" and is_unknown(pull):
        return None  # the workspace registry with a pull identity still to be created: checked at deploy
    return src


def check_base_image(news: dict[str, Any]) -> None:
    """Resolve the base image against its registry with its own credentials (``base_ref``); sets ``base_image_pinned``."""
    from ..backends.docker_engine import local_image_id

    src = base_source(news)
    if src is None:
        return
    base = str(news["base_image"])
    if base_ref.is_local_only(src, base, lambda ref: local_image_id(ref) is not None):
        news["base_image_pinned"] = base
        return
    news["base_image_pinned"] = base_ref.resolve(src)


def pull_base(news: dict[str, Any], say: Any = None) -> str | None:
    """Make sure this engine has the base image, pulled with its own credentials. Returns the reference, or None."""
    from ..backends.docker_engine import DockerEngine, local_image_id

    ref = news.get("base_image_pinned") or news.get("base_image")
    if not ref or is_unknown(ref):
        return None
    if local_image_id(str(ref)) is not None:  # every preview asks: one request, no Docker SDK
        return str(ref)
    engine = DockerEngine(progress=say or (lambda m: None))
    src = base_source(news)
    if src is None:
        return None
    if say:
        say(f"pulling base image {ref} ({'with baseImageRegistry credentials' if src.credentials_from == 'baseImageRegistry' else src.credentials_from.replace('_', ' ')})")
    engine.pull(str(ref), src.auth)
    return str(ref)


def image_facts(ref: str) -> dict[str, Any]:
    """The image's Python version and ``pip inspect`` report, probed once per image id (cached)."""
    from ..backends.docker_engine import DockerEngine, local_image_id

    image_id = local_image_id(ref)
    if image_id is None:
        raise NotFound(f"image {ref} is not on this Docker Engine")
    cache = Settings.from_env().cache_dir / FACTS_CACHE
    known: dict[str, Any] = json.loads(cache.read_text()) if cache.exists() else {}
    if image_id not in known:
        engine = DockerEngine()
        report = engine.pip_inspect(ref)
        known[image_id] = {
            "python": engine.probe(ref).python_version,
            "installed": [d.model_dump() for d in envmod.InstalledDist.from_inspect(report)] if report else None,
        }
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(known))
        tmp.replace(cache)
    return known[image_id]  # type: ignore[no-any-return]


def check_environment(news: dict[str, Any], pull: bool = True) -> envmod.Lock | None:
    """Check the ``python=`` pin and resolve the lock against the base image; sets ``environment``. None if the base is not known yet."""
    inference = news.get("inference")
    if not isinstance(inference, dict):
        return None
    conda_file = inference.get("conda_file")
    env = envmod.CondaEnvironment.from_file(conda_file) if conda_file else envmod.CondaEnvironment(path="(no condaFile)")
    try:
        req = envmod.to_requirements(env)
    except ValidationError as exc:
        raise ValidationError("inference_config.condaFile", exc.message) from exc
    label = _label(news)
    ref = pull_base(news, lambda m: progress(label, m)) if pull else None
    if ref is None:
        return None
    facts = image_facts(ref)
    python = news.get("base_python_version") if isinstance(news.get("base_python_version"), str) else None
    python = python or facts.get("python")
    if not python:
        raise ValidationError(news.get("base_image_field") or "base_image", f"the base image {ref} has no python3 or python on its PATH")
    warning = envmod.check_python(req, python, bool(news.get("accept_image_python")), conda_file or "")
    if warning:
        progress(label, warning)
    base = [envmod.InstalledDist.model_validate(d) for d in facts.get("installed") or []]
    settings = Settings.from_env()
    lock = envmod.resolve(req, python, settings.cache_dir, settings.wheelhouse, lambda m: progress(label, m), base=base)
    news["environment"] = lock.summary()
    return lock


def deploy_lock(props: dict[str, Any]) -> envmod.Lock:
    """The lock the deployment builds with: the one preview resolved (by digest), else resolved now, before anything is built."""
    summary = props.get("environment")
    if isinstance(summary, dict) and summary.get("digest"):
        lock = envmod.load_lock(Settings.from_env().cache_dir, str(summary["digest"]))
        if lock is not None:
            pull_base(props, lambda m: progress(_label(props), m))
            return lock
    if not props.get("base_image_pinned"):
        check_base_image(props)  # the base image was built in this same update: check it now, before anything of ours is built
    lock = check_environment(props)
    if lock is None:
        raise ValidationError("base_image", f"the base image {props.get('base_image')} could not be pulled or probed")
    return lock


def check_gpu(news: dict[str, Any], target: str) -> None:
    """``enableGpu: true`` only where the target can give the container GPUs; refused at preview naming what was checked."""
    inference = news.get("inference")
    if not isinstance(inference, dict) or not inference.get("enable_gpu"):
        return
    if target != "local":
        raise ValidationError("inference_config.enableGpu", f"the {target} target does not schedule GPUs; set enableGpu to false, or deploy with target='local' on a machine with GPUs")
    from ..backends.docker_engine import DockerEngine, gpu_support

    gpu = gpu_support(DockerEngine().info())
    if not gpu.available:
        raise ValidationError(
            "inference_config.enableGpu",
            f"this machine's Docker Engine has no GPU to give containers ({gpu.checked}): install the NVIDIA "
            "Container Toolkit (an nvidia runtime) or enable CDI devices, or set enableGpu to false",
        )
    news["gpu_device_requests"] = list(gpu.device_requests)


__all__ = ["base_source", "check_base_image", "check_environment", "check_gpu", "deploy_lock", "image_facts", "pull_base"]
