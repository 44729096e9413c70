"""ServicePrincipal through the real engine, enforced by the real registry endpoint."""

from __future__ import annotations

import requests

from .conftest import push
from .harness import Project

PROGRAM = """
import pulumi
from mldeploy import ServicePrincipal
pull = ServicePrincipal("pull", role="AcrPull", display_name="sp-test-pull", rotate_on=pulumi.Config().get("rotate") or "1")
push = ServicePrincipal("push", role="AcrPush", display_name="sp-test-push")
for name, sp in (("pull", pull), ("push", push)):
    pulumi.export(f"{name}_id", sp.client_id)
    pulumi.export(f"{name}_secret", sp.client_secret)
    pulumi.export(f"{name}_registry", sp.registry_address)
"""


def _login(registry: str, user: str, password: str) -> int:
    return requests.get(f"http://{registry}/v2/", auth=(user, password), timeout=10).status_code


def _push_errors(docker_client, repo: str, tag: str, user: str, password: str) -> list[str]:  # type: ignore[no-untyped-def]
    events = push(docker_client, repo, tag, {"username": user, "password": password})
    return [e["error"] for e in events if "error" in e]


def test_roles_rotation_revocation_and_secrecy(project: Project, docker_client, tiny_image: str, settings) -> None:  # type: ignore[no-untyped-def]
    project.write(PROGRAM)
    up = project.up()
    outs = project.outputs()
    reg = outs["pull_registry"]
    assert reg == settings.registry
    pull_id, pull_secret = outs["pull_id"], outs["pull_secret"]
    push_id, push_secret = outs["push_id"], outs["push_secret"]

    # Both can log in; a wrong password cannot.
    assert _login(reg, pull_id, pull_secret) == 200
    assert _login(reg, push_id, push_secret) == 200
    assert _login(reg, pull_id, push_secret) == 401

    # AcrPull pulls, and is refused a push by the registry endpoint.
    repo = tiny_image.rsplit(":", 1)[0]
    docker_client.images.pull(repo, tag="v1", auth_config={"username": pull_id, "password": pull_secret})
    docker_client.images.get(tiny_image).tag(repo, "sp-test")
    errors = _push_errors(docker_client, repo, "sp-test", pull_id, pull_secret)
    assert errors and ("401" in errors[0] or "unauthorized" in errors[0].lower() or "authentication required" in errors[0].lower()), errors
    # AcrPush pushes.
    assert _push_errors(docker_client, repo, "sp-test", push_id, push_secret) == []

    # Nothing secret in state or in what the CLI printed.
    preview = project.preview()
    exported = project.export()
    for secret in (pull_secret, push_secret):
        assert secret not in exported
        assert secret not in up.output
        assert secret not in preview.output

    # Rotation: a new secret; the old one is refused right after the update.
    project.config("rotate", "2")
    assert project.ops() == {"pull": "update"}
    project.up()
    rotated = project.outputs()
    assert rotated["pull_id"] == pull_id
    assert rotated["pull_secret"] != pull_secret
    assert _login(reg, pull_id, pull_secret) == 401
    assert _login(reg, pull_id, rotated["pull_secret"]) == 200
    assert rotated["push_secret"] == push_secret  # untouched

    # Out-of-band revocation is found by refresh and repaired by up.
    from mldeploy.backends.htpasswd import HtpasswdIdentityStore

    HtpasswdIdentityStore(settings.registry_dir, settings.registry).delete(push_id)
    project.refresh()
    assert project.ops() == {"push": "create"}
    project.up()
    assert _login(reg, project.outputs()["push_id"], project.outputs()["push_secret"]) == 200

    # Destroy revokes: later logins fail.
    final = project.outputs()
    project.destroy()
    assert _login(reg, final["pull_id"], final["pull_secret"]) == 401
    assert _login(reg, final["push_id"], final["push_secret"]) == 401


def test_unknown_role_fails_preview_listing_valid_roles(project: Project, settings) -> None:  # type: ignore[no-untyped-def]
    display = f"sp-test-bad-{project.name}"  # unique: the check below looks only for what this test could have created
    project.write(
        f"""
        from mldeploy import ServicePrincipal
        ServicePrincipal("bad", role="Owner", display_name="{display}")
        """
    )
    res = project.preview(check=False)
    assert res.returncode != 0
    assert "unknown role 'Owner'; valid roles: AcrPull, AcrPush" in res.output
    res = project.up(check=False)
    assert res.returncode != 0
    # No identity of this test's display name exists: not in the registry's password files, not in its metadata.
    for name in ("htpasswd", "htpasswd-push"):
        path = settings.registry_dir / name
        users = [line.split(":", 1)[0] for line in path.read_text().splitlines()] if path.exists() else []
        assert not [u for u in users if u.startswith(display)], f"{name} has an identity of {display}"
    meta = settings.registry_dir / "identities.json"
    assert display not in (meta.read_text() if meta.exists() else "")
    assert "ServicePrincipal" not in project.export()  # nor in the stack's state
