"""Drift with credentials that change: a deleted derived manifest, a push identity revoked out of band.

`refresh` finds both; `up` repairs both (a rebuilt and pushed image; a new push identity synced
into the deployment without a redeploy); `destroy` after a revocation succeeds and leaves no
manifest, no container.
"""

from __future__ import annotations

from pathlib import Path

import requests
from mldeploy.backends.htpasswd import HtpasswdIdentityStore

from .conftest import copy_demo, deployment_program, registry_write
from .harness import Project

PORT = 19351
EXPORTS = {
    "container_id": "dep.container_id",
    "image_ref": "dep.image_ref",
    "push_id": "push.client_id",
    "pull_id": "pull.client_id",
    "pull_secret": "pull.client_secret",
}


def _manifest_status(settings, image_ref: str, auth: tuple[str, str]) -> int:  # type: ignore[no-untyped-def]
    name, digest = image_ref.split("@")
    repo = name.split("/", 1)[1]
    return requests.head(f"http://{settings.registry}/v2/{repo}/manifests/{digest}", auth=auth, timeout=10,
                         headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"}).status_code  # fmt: skip


def test_deleted_manifest_and_revoked_push_identity(project: Project, tmp_path: Path, demo_base: str, docker_client, settings) -> None:  # type: ignore[no-untyped-def]
    demo = copy_demo(tmp_path / "demo")
    svc = f"drift-{project.name[-6:]}"
    project.write(deployment_program(demo, svc, demo_base, {"computeType": "local", "port": PORT}, EXPORTS))
    project.up()
    outs = project.outputs()
    pull = (outs["pull_id"], outs["pull_secret"])
    store = HtpasswdIdentityStore(settings.registry_dir, settings.registry)

    # The derived image's manifest deleted out of band (with an identity of the test's own).
    ident, secret = store.create("drift-admin", "AcrPush", None)
    try:
        name, digest = outs["image_ref"].split("@")
        r = registry_write("DELETE", f"http://{settings.registry}/v2/{name.split('/', 1)[1]}/manifests/{digest}", auth=(ident.client_id, secret))
        assert r.status_code == 202, r.text
    finally:
        store.delete(ident.client_id)
    assert _manifest_status(settings, outs["image_ref"], pull) == 404
    project.refresh()
    assert project.ops() == {"svc": "update"}
    project.up()
    repaired = project.outputs()
    assert _manifest_status(settings, repaired["image_ref"], pull) == 200
    assert requests.post(f"http://127.0.0.1:{PORT}/score", json={"data": [[5.1, 3.5, 1.4, 0.2]]}, timeout=10).status_code == 200
    assert project.ops() == {}

    # The push identity revoked out of band: refresh notices it, up makes a new one and syncs it without a redeploy.
    store.delete(repaired["push_id"])
    project.refresh()
    assert project.ops().get("push") == "create"
    project.up()
    after = project.outputs()
    assert after["push_id"] != repaired["push_id"] and after["container_id"] == repaired["container_id"]
    assert project.ops() == {}

    # Revoked again, then destroy at once: it succeeds and leaves no manifest and no container.
    store.delete(after["push_id"])
    res = project.destroy()
    assert "short-lived workspace identity" in res.output
    assert docker_client.containers.list(all=True, filters={"label": f"mldeploy.service={svc}"}) == []
    checker, secret = store.create("drift-check", "AcrPull", None)
    try:
        assert _manifest_status(settings, after["image_ref"], (checker.client_id, secret)) == 404
    finally:
        store.delete(checker.client_id)
