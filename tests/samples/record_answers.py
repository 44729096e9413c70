"""Record each vendored Azure ML sample's answer to its own sample requests.

    source .env.sh && python tests/samples/record_answers.py [sample ...]

For each sample (tests/samples/samples.py), with nothing of mldeploy's
packaging involved:

1. the sample's conda file is resolved for the host's Python 3.11 into the
   same pinned lock a deployment uses (``mldeploy.environment``: pip's
   resolver, wheels into the wheelhouse);
2. a scratch venv (``python3.11 -m venv``) gets exactly that lock
   (``pip install --no-index --require-hashes --no-deps``);
3. the models are laid out as Azure ML lays them out: under
   ``<root>/azureml-models/<name>/1/``, a registered folder keeps its name
   (``model/`` -> ``$AZUREML_MODEL_DIR/model/...``), a registered file sits
   directly in it; ``AZUREML_MODEL_DIR`` points at ``<name>/1``;
4. ``azmlinfsrv --entry_script <score.py> --port <port>`` from the venv serves
   the sample's own code directory on the host, each request file is POSTed
   as is, and the answer (status and JSON body) is written to
   ``answers/<request>.answer.json``; ``answers/recording.json`` keeps the
   command, the Python version and the lock.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mldeploy import environment as envmod
from mldeploy.config import InferenceConfig
from mldeploy.settings import Settings
from samples import SAMPLES, Sample

PORT = 19270
PYTHON = "/usr/bin/python3.11"


def record(sample: Sample, root: Path, settings: Settings) -> None:
    ic = InferenceConfig.model_validate(sample.inference_config).resolve(sample.dir)
    req = envmod.to_requirements(envmod.CondaEnvironment.from_file(ic.conda_file))
    python = subprocess.run([PYTHON, "-c", "import platform; print(platform.python_version())"], capture_output=True, text=True, check=True).stdout.strip()
    lock = envmod.resolve(req, python, settings.cache_dir, settings.wheelhouse, print)
    venv = root / "venv"
    subprocess.run([PYTHON, "-m", "venv", str(venv)], check=True)
    (root / "lock.txt").write_text(lock.requirements_txt())
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--no-index", "--find-links", str(settings.wheelhouse),
         "--require-hashes", "--no-deps", "-r", str(root / "lock.txt")],
        check=True,
    )
    models = root / "azureml-models"
    model_dirs = []
    for name, rel in sample.models.items():
        src = sample.dir / rel
        dest = models / name / "1"
        dest.mkdir(parents=True)
        if src.is_dir():
            shutil.copytree(src, dest / src.name)
        else:
            shutil.copy2(src, dest / src.name)
        model_dirs.append(dest)
    model_dir = model_dirs[0] if len(model_dirs) == 1 else models
    cmd = [str(venv / "bin" / "azmlinfsrv"), "--entry_script", str(Path(ic.source_dir) / ic.entry_script), "--port", str(PORT)]
    env = {**os.environ, "AZUREML_MODEL_DIR": str(model_dir)}
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(cmd, cwd=ic.source_dir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{PORT}/", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log_text = (root / "server.log").read_text()
                if sample.fails_upstream and sample.fails_upstream in log_text:
                    (sample.dir / "answers").mkdir(exist_ok=True)
                    (sample.dir / "answers" / "startup-failure.log").write_text(log_text[log_text.find("Traceback"):])
                    print(f"{sample.name}: fails to start as recorded upstream: {sample.fails_upstream}")
                    break
                raise SystemExit(f"{sample.name}: the server did not come up:\n{log_text[-3000:]}")
            time.sleep(0.5)
        (sample.dir / "answers").mkdir(exist_ok=True)
        for request in sample.requests if proc.poll() is None else ():
            body = (sample.dir / request).read_bytes()
            r = requests.post(f"http://127.0.0.1:{PORT}/score", data=body, headers={"Content-Type": "application/json"}, timeout=60)
            try:
                answer: object = r.json()
            except ValueError:
                answer = r.text
            doc = {"request": request, "status": r.status_code, "body": answer}
            sample.answer_path(request).write_text(json.dumps(doc, indent=2) + "\n")
            print(f"{sample.name}: {request} -> {r.status_code} {json.dumps(answer)[:200]}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    server = next(w for w in lock.wheels if w.name.lower() == envmod.INFERENCE_SERVER)
    recording = {
        "how": "tests/samples/record_answers.py: the sample's code served on the host by azmlinfsrv from a scratch venv",
        "command": f"AZUREML_MODEL_DIR=<root>/azureml-models/{'<name>/1' if len(model_dirs) == 1 else ''} "
        f"azmlinfsrv --entry_script {Path(ic.source_dir).relative_to(sample.dir) / ic.entry_script} --port {PORT}",
        "python": python,
        "inference_server": f"{server.name}=={server.version}",
        "model_layout": {name: f"$AZUREML_MODEL_DIR/{Path(rel).name}{'/' if (sample.dir / rel).is_dir() else ''}" for name, rel in sample.models.items()},
        "lock": [f"{w.name}=={w.version}" for w in lock.wheels],
    }
    (sample.dir / "answers" / "recording.json").write_text(json.dumps(recording, indent=2) + "\n")


def main(names: list[str]) -> None:
    settings = Settings.from_env()
    chosen = [s for s in SAMPLES if not names or s.name in names]
    for sample in chosen:
        if sample.refused_at_preview:
            print(f"{sample.name}: skipped, this machine cannot serve it ({sample.refused_at_preview})")
            continue
        with tempfile.TemporaryDirectory(prefix=f"record-{sample.name}-") as tmp:
            record(sample, Path(tmp), settings)


if __name__ == "__main__":
    main(sys.argv[1:])
