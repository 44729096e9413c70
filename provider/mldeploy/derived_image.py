"""The derived image, packaged as Azure ML does it.

    FROM <base image, by digest>
    environment layer   the condaFile resolved into a lock (mldeploy.environment), installed
                        from the wheelhouse with --require-hashes
    model layer         models under /var/azureml-app/azureml-models/<name>/<version>/<registered
                        file or folder, under its own name>
    code layer          the source directory, with the entry script
    extraDockerfileSteps
    CMD azmlinfsrv --entry_script <entry script>

Layer order is base, environment, model, code: a score.py or model edit
rebuilds only the last layers and never reinstalls wheels.

The model layout is Azure ML's, v1 and v2 alike: each model version is the
directory ``/var/azureml-app/azureml-models/<name>/<version>/`` holding exactly
one entry, the registered file or folder under its own name. Registering
``model/`` serves ``$AZUREML_MODEL_DIR/model/<files>``; registering
``model.pkl`` serves ``$AZUREML_MODEL_DIR/model.pkl``. ``AZUREML_MODEL_DIR`` is
that ``<name>/<version>`` directory when one model is deployed and
``/var/azureml-app/azureml-models`` when several are (v1 ``Model.deploy`` with a
list; v2 deploys one model). ``AML_APP_ROOT=/var/azureml-app`` makes v1's
``Model.get_model_path(name)`` find ``azureml-models/<name>/<version>/<entry>``.
Sources: "Advanced entry script authoring" (v1, section "Load registered
models"), "Specify model to deploy for use in online endpoint" (v2),
azureml-core ``Model._collect_model_artifact_paths`` / ``_get_model_path_local``
and azure-ai-ml ``_local_endpoints/azureml_image_context.py``. The registry's
stored copy already has that one entry (``mldeploy.hashing`` keeps the folder
name), so the model layer copies it as it is.

File modes are kept: model files and source files enter the build context
with their own permission bits (``shutil.copy2``), and the image layers keep
them (Docker's tar and ``COPY`` keep modes). A symlink in the source directory
is followed only when it stays inside it (``mldeploy.paths.walk``).

The image also carries a ``gunicorn.conf.py`` (gunicorn loads it from the
working directory). It turns on ``reuse_port`` and binds the server to
``MLDEPLOY_BIND_HOST`` (127.0.0.1 by default) instead of azmlinfsrv's fixed
0.0.0.0; with ``WORKER_PRELOAD=true``, the entry script's ``init()`` runs before
the port is bound. Together they let a new container start beside the old one
on the same port, on the host network, and take over with no gap.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from .hashing import source_ignore, tree_files
from .paths import walk

APP_ROOT = "/var/azureml-app"
MODELS_ROOT = f"{APP_ROOT}/azureml-models"
PACKAGING_VERSION = "2"  # 2: registered folder names kept under <name>/<version>

GUNICORN_CONF = '''\
# Written by mldeploy. gunicorn reads ./gunicorn.conf.py before its command line.
import os

reuse_port = True


def on_starting(server):
    host = os.environ.get("MLDEPLOY_BIND_HOST")
    if host:
        server.cfg.set("bind", [f"{host}:{addr.rsplit(':', 1)[1]}" for addr in server.cfg.bind])
'''


def _version(m: dict[str, Any]) -> str:
    """A model version as text. Numbers cross the Pulumi engine as floats (1.0): print 1."""
    v = m["version"]
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def model_dir(models: list[dict[str, Any]]) -> str:
    if len(models) == 1:
        m = models[0]
        return f"{MODELS_ROOT}/{m['name']}/{_version(m)}"
    return MODELS_ROOT


def requirements_lock(lock: list[dict[str, Any]]) -> str:
    """The lock as a pip requirements file with hashes (``pip install --require-hashes``)."""
    return "".join(f"{w['name']}=={w['version']} --hash=sha256:{w['sha256']}\n" for w in lock)


def dockerfile(base_image: str, inference: dict[str, Any], models: list[dict[str, Any]], lock: list[dict[str, Any]]) -> str:
    lines = [
        "# Derived image written by mldeploy: base, environment, model, code.",
        f"FROM {base_image}",
        "ARG WHEELHOUSE_URL",
    ]
    if lock:
        lines += [
            "COPY env/requirements.lock /opt/mldeploy/requirements.lock",
            'RUN pip install --no-cache-dir --no-index --find-links "$WHEELHOUSE_URL" --require-hashes --no-deps '
            "-r /opt/mldeploy/requirements.lock",
        ]
    if models:
        lines.append(f"COPY models/ {MODELS_ROOT}/")
    lines += [
        f"COPY app/ {APP_ROOT}/",
        f"WORKDIR {APP_ROOT}",
        f"ENV AZUREML_MODEL_DIR={model_dir(models)} AZUREML_ENTRY_SCRIPT={inference['entry_script']} "
        f"AML_APP_ROOT={APP_ROOT} WORKER_PRELOAD=true MLDEPLOY_BIND_HOST=127.0.0.1",
    ]
    if inference.get("extra_dockerfile_steps"):
        lines.append(inference["extra_dockerfile_steps"].rstrip())
    lines.append(f'CMD ["azmlinfsrv", "--entry_script", "{APP_ROOT}/{inference["entry_script"]}"]')
    return "\n".join(lines) + "\n"


def _copy_keeping_mode(src: Path, dest: Path) -> None:
    """Copy one file with its permission bits (never loosened); parent directories as the umask gives."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dest)


def write_context(dest: Path, base_image: str, inference: dict[str, Any], models: list[dict[str, Any]], lock: list[dict[str, Any]]) -> Path:
    """Lay out the derived image's build context in ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel, full in tree_files(inference["source_dir"], "sourceDirectory", keep_name=False, ignore=source_ignore):
        _copy_keeping_mode(full, dest / "app" / rel)
    (dest / "app").mkdir(exist_ok=True)
    (dest / "app" / "gunicorn.conf.py").write_text(GUNICORN_CONF)
    for m in models:
        src = Path(str(m["download"]).removeprefix("file://"))
        target = dest / "models" / m["name"] / _version(m)
        if src.is_dir():  # the stored version: one entry, the registered file or folder under its own name
            for rel, full, _size in walk(src, "models", kind="the stored model"):
                _copy_keeping_mode(full, target / rel)
        else:
            _copy_keeping_mode(src, target / src.name)
    (dest / "env").mkdir()
    (dest / "env" / "requirements.lock").write_text(requirements_lock(lock))
    (dest / "Dockerfile").write_text(dockerfile(base_image, inference, models, lock))
    # The image's modes must not depend on mldeploy's umask (its state is 0600/0700): the directories and
    # the files mldeploy writes itself are made readable (as under a usual 022 umask), so a base image's
    # non-root USER can traverse and read them. The user's own files keep exactly their modes (never
    # loosened). ``dest`` itself (a private temporary directory) stays as it is.
    generated = {dest / "app" / "gunicorn.conf.py", dest / "env" / "requirements.lock", dest / "Dockerfile"}
    for path in [*dest.rglob("*")]:
        if path.is_symlink():
            continue
        if path.is_dir():
            path.chmod(path.stat().st_mode | 0o555)
        elif path in generated:
            path.chmod(path.stat().st_mode | 0o444)
    return dest


def derived_digest(
    base_image: str, inference: dict[str, Any], models: list[dict[str, Any]], source_digest: str, lock: list[dict[str, Any]]
) -> str:
    """What the derived image is made of: changes exactly when the image must be rebuilt."""
    doc = {
        "packaging": PACKAGING_VERSION,
        "base_image": base_image,
        "entry_script": inference["entry_script"],
        "environment": requirements_lock(lock),
        "extra": inference.get("extra_dockerfile_steps") or "",
        "models": [[m["name"], _version(m), m["digest"]] for m in models],
        "source": source_digest,
    }
    return "sha256:" + hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
