"""Real Azure ML samples, vendored unchanged (tests/samples/), deployed through a real `pulumi up`.

Each sample is served from its own files (score.py, conda file, model files)
and must answer its own sample requests with the answers recorded by serving
it with azmlinfsrv directly on the host (tests/samples/record_answers.py).
Then a preview must show no change, and destroy must leave no container,
no registry manifest and no local image of it.

All samples share one base image (the demo's, built once per session).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import docker.errors
import pytest
import requests

from .conftest import Creds, local_tags
from .harness import Project

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "samples"
sys.path.insert(0, str(SAMPLES_DIR))

from samples import SAMPLES, Sample  # noqa: E402

pytestmark = pytest.mark.integration

SERVED = [s for s in SAMPLES if not s.refused_at_preview and not s.fails_upstream]
REFUSED = [s for s in SAMPLES if s.refused_at_preview]
BROKEN = [s for s in SAMPLES if s.fails_upstream]


def sample_project(tmp_path: Path, sample: Sample, base: str) -> Project:
    """A throwaway stack running the sample's own __main__.py (as `pulumi up` in its directory would)."""
    p = Project(tmp_path / "proj")
    p.write(f"import runpy\nrunpy.run_path({str(sample.dir / '__main__.py')!r}, run_name='__main__')\n")
    p.config("baseImage", base)
    p.config("serviceName", f"smp-{sample.name}")
    return p


def manifest_status(image_ref: str, creds: Creds) -> int:
    address, rest = image_ref.split("/", 1)
    repo, digest = rest.split("@", 1)
    r = requests.head(
        f"http://{address}/v2/{repo}/manifests/{digest}",
        headers={"Authorization": creds.basic, "Accept": "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"},
        timeout=10,
    )
    return r.status_code


def repo_tags(docker_client, image_ref: str) -> set[str]:  # type: ignore[no-untyped-def]
    """The local tags of an image reference's repository (``repo@digest`` or ``repo@``)."""
    return local_tags(docker_client, image_ref.split("@")[0])


@pytest.mark.parametrize("sample", SERVED, ids=[s.name for s in SERVED])
def test_sample_answers_its_recorded_answer(tmp_path: Path, sample: Sample, demo_base: str, docker_client, push_creds: Creds) -> None:  # type: ignore[no-untyped-def]
    p = sample_project(tmp_path, sample, demo_base)
    tags_before = repo_tags(docker_client, f"{push_creds.registry}/mldeploy/smp-{sample.name}@")
    t0 = time.monotonic()
    try:
        p.up()
        up_s = time.monotonic() - t0
        out = p.outputs()
        assert out["scoring_uri"] == f"http://127.0.0.1:{sample.port}/score"
        for request in sample.requests:
            recorded = sample.answer(request)
            r = requests.post(out["scoring_uri"], data=(sample.dir / request).read_bytes(), headers={"Content-Type": "application/json"}, timeout=60)
            try:
                body: object = r.json()
            except ValueError:
                body = r.text
            assert (r.status_code, body) == (recorded["status"], recorded["body"]), f"{sample.name}: {request}"
        if sample.swagger_inputs:
            # the server's OpenAPI document, generated from score.py's Inference Schema decorators
            r = requests.get(out["scoring_uri"].rsplit("/", 1)[0] + "/swagger.json", timeout=30)
            assert r.status_code == 200, r.text[:500]
            doc = r.json()
            assert doc.get("swagger") or doc.get("openapi"), doc
            text = json.dumps(doc)
            for name in sample.swagger_inputs:
                assert f'"{name}"' in text, f"{sample.name}: /swagger.json does not name the input {name!r}"

        t1 = time.monotonic()
        p.pulumi("preview", "--expect-no-changes", "--diff")
        preview_s = time.monotonic() - t1

        container_id, image_ref = out["container_id"], out["image_ref"]
        assert docker_client.containers.get(container_id).status == "running"
        assert manifest_status(image_ref, push_creds) == 200
        t2 = time.monotonic()
        p.destroy()
        print(f"\n{sample.name}: up {up_s:.0f} s, no-change preview {preview_s:.1f} s, destroy {time.monotonic() - t2:.0f} s")
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(container_id)
        assert docker_client.containers.list(all=True, filters={"label": f"mldeploy.service=smp-{sample.name}"}) == []
        assert manifest_status(image_ref, push_creds) == 404
        with pytest.raises(docker.errors.ImageNotFound):
            docker_client.images.get(image_ref)
        assert repo_tags(docker_client, image_ref) <= tags_before, "destroy left a local tag of the derived image"
    finally:
        p.cleanup()


@pytest.mark.parametrize("sample", REFUSED, ids=[s.name for s in REFUSED])
def test_sample_this_machine_cannot_serve_is_refused_at_preview(tmp_path: Path, sample: Sample, demo_base: str, docker_client) -> None:  # type: ignore[no-untyped-def]
    """A sample whose pins have no wheels for the base image's Python fails preview naming the pin; nothing is created."""
    p = sample_project(tmp_path, sample, demo_base)
    try:
        res = p.preview(check=False)
        assert res.returncode != 0
        assert sample.refused_at_preview in res.output
        assert "Python 3.11" in res.output
        assert "condaFile" in res.output or "conda.yaml" in res.output
        assert docker_client.containers.list(all=True, filters={"label": f"mldeploy.service=smp-{sample.name}"}) == []
    finally:
        p.cleanup()


@pytest.mark.parametrize("sample", BROKEN, ids=[s.name for s in BROKEN])
def test_sample_broken_upstream_fails_up_with_its_own_error(tmp_path: Path, sample: Sample, demo_base: str, docker_client) -> None:  # type: ignore[no-untyped-def]
    """A sample that does not start as published (recorded on the host too) fails `pulumi up` with its own
    traceback in the output, and destroy leaves no container behind."""
    assert sample.fails_upstream and sample.fails_upstream in (sample.dir / "answers" / "startup-failure.log").read_text()
    p = sample_project(tmp_path, sample, demo_base)
    try:
        res = p.up(check=False)
        assert res.returncode != 0
        assert sample.fails_upstream in res.output
        p.destroy()
        assert docker_client.containers.list(all=True, filters={"label": f"mldeploy.service=smp-{sample.name}"}) == []
    finally:
        p.cleanup()


def test_every_sample_is_vendored_with_provenance_and_answers() -> None:
    """Every vendored file is listed with its sha256 in PROVENANCE.md and unchanged; every served sample has its answers."""
    import hashlib

    for sample in SAMPLES:
        prov = (sample.dir / "PROVENANCE.md").read_text()
        ours = {"__main__.py", "Pulumi.yaml", "inferenceconfig.json", "deploymentconfig.json", "PROVENANCE.md"}
        files = [f for f in sample.dir.rglob("*") if f.is_file() and "__pycache__" not in f.parts and "answers" not in f.relative_to(sample.dir).parts]
        vendored = [f for f in files if f.relative_to(sample.dir).as_posix() not in ours and not f.match("Pulumi.*.yaml")]
        assert vendored, sample.name
        for f in vendored:
            rel = f.relative_to(sample.dir).as_posix()
            digest = hashlib.sha256(f.read_bytes()).hexdigest()
            assert f"`{rel}`" in prov and digest in prov, f"{sample.name}: {rel} is not in PROVENANCE.md with sha256 {digest}"
        if not sample.refused_at_preview and not sample.fails_upstream:
            for request in sample.requests:
                assert sample.answer(request)["status"] == 200, f"{sample.name}: {request}"
            for request, expected in sample.upstream_answers.items():
                assert sample.answer(request)["body"] == expected, f"{sample.name}: {request} differs from upstream's own expected answer"
            json.loads((sample.dir / "answers" / "recording.json").read_text())
