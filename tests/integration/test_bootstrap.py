"""Bootstrap: the real engine, the real registry, the debootstrap base image."""

from __future__ import annotations

import importlib.metadata
import subprocess

import requests

from .conftest import Creds, push
from .harness import Project


def test_pulumi_cli_matches_sdk() -> None:
    out = subprocess.run(["pulumi", "version"], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "v" + importlib.metadata.version("pulumi") == "v3.259.0"


def test_dynamic_resource_lifecycle_with_secret(project: Project) -> None:
    """up, a no-change up, preview, refresh, destroy of a dynamic resource from the installed package."""
    project.write(
        """
        import pulumi
        from mldeploy import ServicePrincipal
        sp = ServicePrincipal("boot", role="AcrPull", display_name="bootstrap-test")
        pulumi.export("client_id", sp.client_id)
        pulumi.export("role", sp.role)
        pulumi.export("secret", sp.client_secret)
        """
    )
    up = project.up()
    assert "+ 2 created" in up.output or "2 created" in up.output
    outs = project.outputs()
    assert outs["role"] == "AcrPull"
    assert outs["client_id"].startswith("bootstrap-test-")
    secret = outs["secret"]
    assert len(secret) >= 32

    again = project.up()
    assert "2 unchanged" in again.output, again.output
    assert project.ops() == {}
    project.refresh()
    assert project.ops() == {}

    exported = project.export()
    assert secret not in exported
    assert secret not in up.output and secret not in again.output

    project.destroy()
    assert project.outputs() == {}


def test_tiny_image_push_and_pull_by_digest(docker_client, tiny_image: str, push_creds: Creds, settings) -> None:  # type: ignore[no-untyped-def]
    repo, tag = tiny_image.rsplit(":", 1)
    path = repo.split("/", 1)[1]
    # Without credentials the registry refuses.
    anon = requests.get(f"http://{settings.registry}/v2/{path}/manifests/{tag}", timeout=10)
    assert anon.status_code == 401
    # With them, the manifest is there; pull it back by digest.
    head = requests.head(
        f"http://{settings.registry}/v2/{path}/manifests/{tag}",
        headers={"Authorization": push_creds.basic, "Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        timeout=10,
    )
    assert head.status_code == 200
    digest = head.headers["Docker-Content-Digest"]
    assert digest.startswith("sha256:")
    ref = f"{repo}@{digest}"
    try:
        docker_client.images.remove(ref, force=True)
    except Exception:
        pass
    img = docker_client.images.pull(ref, auth_config=push_creds.auth_config)
    out = docker_client.containers.run(img.id, ["cat", "/tiny.txt"], remove=True)
    assert out.strip() == b"tiny"


def test_push_without_credentials_is_refused(docker_client, tiny_image: str) -> None:  # type: ignore[no-untyped-def]
    repo = tiny_image.rsplit(":", 1)[0]
    events = push(docker_client, repo, "v1", {"username": "nobody", "password": "wrong"})
    errors = [e["error"] for e in events if "error" in e]
    assert errors, events
    assert "401" in errors[0] or "unauthorized" in errors[0].lower() or "authentication required" in errors[0].lower()
