"""BaseImage through the real engine: real builds on Docker Engine, real pushes to the local registry.

One session-scoped stack builds the demo base image (stacks/demo/base: Debian's
python3, a venv and the inference server from the wheelhouse, ~20 s cold);
the other tests build small images FROM it, pinned by digest, so each of
their builds takes a second or two.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from mldeploy.backends.htpasswd import HtpasswdIdentityStore
from mldeploy.settings import Settings

from .conftest import Creds, local_tags, push, registry_write
from .harness import Project, Result

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONTEXT = ROOT / "stacks" / "demo" / "base"
PINNED = re.compile(r"^127\.0\.0\.1:\d+/[a-z0-9/_.-]+@sha256:[0-9a-f]{64}$")
ACCEPT = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"


def manifest_status(settings: Settings, creds: Creds, repo: str, ref: str) -> tuple[int, str | None]:
    """(HTTP status, digest) of HEAD /v2/<repo>/manifests/<ref>."""
    r = requests.head(
        f"http://{settings.registry}/v2/{repo}/manifests/{ref}",
        headers={"Authorization": creds.basic, "Accept": ACCEPT},
        timeout=10,
    )
    return r.status_code, r.headers.get("Docker-Content-Digest")


def repo_tags(settings: Settings, creds: Creds, repo: str) -> list[str]:
    r = requests.get(f"http://{settings.registry}/v2/{repo}/tags/list", headers={"Authorization": creds.basic}, timeout=10)
    if r.status_code == 404:
        return []
    r.raise_for_status()
    return list(r.json().get("tags") or [])


def built(res: Result) -> bool:
    """Whether an `up` ran a Docker build (the provider prints one line per Dockerfile step)."""
    return bool(re.search(r"build: step \d+/\d+:", res.output))


@pytest.fixture(scope="module", autouse=True)
def _drop_local_test_images(settings: Settings, docker_client: Any) -> Iterator[None]:
    """Local tags of images whose stack was dropped by refresh are not deleted by destroy; remove them here."""
    yield
    for tag in local_tags(docker_client, f"{settings.registry}/pytest/*"):
        if re.match(rf"^{re.escape(settings.registry)}/pytest/(rebuild|nopython|broken|reuse|refresh|pullonly)-[0-9a-f]{{6}}:", tag):
            try:
                docker_client.api.remove_image(tag)
            except Exception:
                pass


@dataclass
class DemoBase:
    project: Project
    up: Result
    outputs: dict[str, Any]
    repo: str

    @property
    def ref(self) -> str:
        return str(self.outputs["image_ref"])


@pytest.fixture(scope="session")
def demo_base(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> Iterator[DemoBase]:
    """The demo base image, built from stacks/demo/base through a Pulumi stack, with an AcrPull identity beside it."""
    repo = f"pytest/demo-base-{uuid.uuid4().hex[:6]}"
    project = Project(tmp_path_factory.mktemp("demo-base") / "proj")
    project.write(
        f"""
        import pulumi
        from mldeploy.resources.base_image import BaseImage
        from mldeploy.resources.service_principal import ServicePrincipal

        base = BaseImage("demo-base", context={str(DEMO_CONTEXT)!r}, repository={repo!r}, tag="v1")
        puller = ServicePrincipal("puller", role="AcrPull")
        for k in ("image_ref", "digest", "tags", "size_bytes", "os", "python_version", "conda_version", "build_log", "content_tag"):
            pulumi.export(k, getattr(base, k))
        pulumi.export("puller_id", puller.client_id)
        pulumi.export("puller_secret", puller.client_secret)
        """
    )
    try:
        up = project.up()
        yield DemoBase(project, up, project.outputs(), repo)
    finally:
        project.cleanup()


CHILD_DOCKERFILE = """\
ARG BASE
FROM ${BASE}
ARG GREETING=hello
RUN echo "$GREETING" > /greeting.txt
"""


def child_program(context: Path, repo: str, base: str, greeting: str, extra: str = "", creds: str = "") -> str:
    return f"""
        import pulumi
        from mldeploy.resources.base_image import BaseImage
        from mldeploy.resources.service_principal import ServicePrincipal
        {creds and "pusher = ServicePrincipal('pusher', role='AcrPush')"}
        img = BaseImage(
            "img",
            context={str(context)!r},
            repository={repo!r},
            tag="v1",
            build_args={{"BASE": {base!r}, "GREETING": {greeting!r}}},
            {creds}
            {extra}
        )
        pulumi.export("image_ref", img.image_ref)
        pulumi.export("digest", img.digest)
        pulumi.export("adopted", img.adopted)
        pulumi.export("python_version", img.python_version)
        pulumi.export("build_log", img.build_log)
        pulumi.export("content_tag", img.content_tag)
        """


def make_context(tmp_path: Path, dockerfile: str = CHILD_DOCKERFILE) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


# -- the demo base image ---------------------------------------------------------
def test_demo_base_is_built_validated_pushed_and_pinned(demo_base: DemoBase, push_creds: Creds, settings: Settings) -> None:
    out = demo_base.outputs
    assert built(demo_base.up), demo_base.up.output
    assert PINNED.match(out["image_ref"]), out["image_ref"]
    assert out["image_ref"].endswith("@" + out["digest"])
    # The facts found by running the image.
    assert out["os"]["id"] == "debian" and out["os"]["version"] == "12"
    assert re.match(r"^3\.11\.\d+$", out["python_version"])
    assert out.get("conda_version") is None  # Pulumi leaves null outputs out
    assert out["size_bytes"] > 100_000_000
    assert "found debian 12, python 3.11" in demo_base.up.output
    # WHEELHOUSE_URL was injected (the Dockerfile declares it and fails the build without it).
    log = Path(out["build_log"]).read_text()
    assert "Step 1/" in log and "azureml-inference-server-http" in log
    # The registry holds it under the tag and the content tag, both at the recorded digest.
    assert manifest_status(settings, push_creds, demo_base.repo, "v1") == (200, out["digest"])
    assert manifest_status(settings, push_creds, demo_base.repo, out["content_tag"]) == (200, out["digest"])
    assert sorted(out["tags"]) == sorted(["v1", out["content_tag"]])


def test_demo_base_is_pullable_with_an_acrpull_identity(demo_base: DemoBase, docker_client: Any, settings: Settings) -> None:
    import docker.errors

    puller = {"username": demo_base.outputs["puller_id"], "password": demo_base.outputs["puller_secret"]}
    ref = demo_base.ref
    name = ref.split("@")[0]
    # Untag the digest reference locally (the layers stay), then pull it back by digest as the AcrPull identity.
    try:
        docker_client.api.remove_image(ref)
    except docker.errors.APIError:
        pass
    events = list(docker_client.api.pull(name, tag=ref.split("@")[1], auth_config=puller, stream=True, decode=True))
    assert not [e for e in events if "error" in e], events
    img = docker_client.images.get(ref)
    assert ref in img.attrs["RepoDigests"]
    out = docker_client.containers.run(img.id, ["python", "-c", "import azureml_inference_server_http, sklearn; print('ok')"], remove=True)
    assert out.strip() == b"ok"
    # The same identity cannot push.
    bad = push(docker_client, name, "v1", puller)
    assert [e for e in bad if "error" in e], bad


# -- rebuilds ---------------------------------------------------------------------
def test_unchanged_noop_then_dockerfile_and_build_arg_edits_rebuild_then_destroy(
    project: Project, tmp_path: Path, demo_base: DemoBase, push_creds: Creds, settings: Settings, docker_client: Any
) -> None:
    repo = f"pytest/rebuild-{uuid.uuid4().hex[:6]}"
    ctx = make_context(tmp_path)
    creds = "service_principal=pusher,"
    project.write(child_program(ctx, repo, demo_base.ref, "hello", creds=creds))

    first = project.up()
    assert built(first)
    outs1 = project.outputs()
    assert PINNED.match(outs1["image_ref"]) and outs1["adopted"] is False
    assert manifest_status(settings, push_creds, repo, "v1") == (200, outs1["digest"])
    assert docker_client.containers.run(outs1["image_ref"], ["cat", "/greeting.txt"], remove=True).strip() == b"hello"

    # Unchanged: nothing to do, and an `up` builds and pushes nothing.
    assert project.ops() == {}
    second = project.up()
    assert not built(second) and "pushed" not in second.output
    assert project.outputs()["digest"] == outs1["digest"]

    # A Dockerfile edit: the preview says why, the up rebuilds.
    (ctx / "Dockerfile").write_text(CHILD_DOCKERFILE + 'RUN echo edited > /edited.txt\n')
    assert project.ops() == {"img": "update"}
    pre = project.preview()
    assert "context_digest" in pre.output, pre.output
    assert not built(pre) and "pushed" not in pre.output  # preview never builds or pushes
    third = project.up()
    assert built(third) and "step 5/5: RUN echo edited" in third.output, third.output
    outs3 = project.outputs()
    assert outs3["digest"] != outs1["digest"]
    assert manifest_status(settings, push_creds, repo, "v1") == (200, outs3["digest"])

    # A build arg edit: shown in the preview's diff, and rebuilt.
    project.write(child_program(ctx, repo, demo_base.ref, "bonjour", creds=creds))
    pre = project.preview()
    assert "GREETING" in pre.output and "bonjour" in pre.output, pre.output
    fourth = project.up()
    assert built(fourth)
    outs4 = project.outputs()
    assert outs4["digest"] != outs3["digest"]
    assert docker_client.containers.run(outs4["image_ref"], ["cat", "/greeting.txt"], remove=True).strip() == b"bonjour"

    # Destroy removes the manifest from the registry.
    project.destroy()
    assert manifest_status(settings, push_creds, repo, outs4["digest"])[0] == 404
    assert repo_tags(settings, push_creds, repo) == []


def test_image_without_python_fails_validation_and_is_not_pushed(project: Project, tmp_path: Path, push_creds: Creds, settings: Settings) -> None:
    repo = f"pytest/nopython-{uuid.uuid4().hex[:6]}"
    ctx = make_context(tmp_path, f"FROM {settings.base_os_image}\nRUN echo no python here > /note.txt\n")
    project.write(
        f"""
        from mldeploy.resources.base_image import BaseImage
        BaseImage("img", context={str(ctx)!r}, repository={repo!r}, tag="v1")
        """
    )
    res = project.up(check=False)
    assert res.returncode != 0
    assert "python >=3.9,<3.14: no python3 or python on the image's PATH" in res.output, res.output
    assert "it was not pushed" in res.output
    # The OS requirement was met, so it is not listed.
    assert "os debian" not in res.output
    assert repo_tags(settings, push_creds, repo) == []
    assert project.outputs() == {}


def test_broken_run_step_fails_showing_the_step_and_keeps_the_previous_image(
    project: Project, tmp_path: Path, demo_base: DemoBase, push_creds: Creds, settings: Settings
) -> None:
    repo = f"pytest/broken-{uuid.uuid4().hex[:6]}"
    ctx = make_context(tmp_path)
    project.write(child_program(ctx, repo, demo_base.ref, "hello"))
    project.up()
    good = project.outputs()

    (ctx / "Dockerfile").write_text(CHILD_DOCKERFILE + "RUN ls /no/such/dir && echo unreachable\n")
    res = project.up(check=False)
    assert res.returncode != 0
    assert "failing step: Step 5/5 : RUN ls /no/such/dir && echo unreachable" in res.output, res.output
    assert "No such file or directory" in res.output
    assert "full build log:" in res.output
    # Nothing new was pushed; the state and the registry keep the previous image.
    assert project.outputs()["image_ref"] == good["image_ref"]
    assert manifest_status(settings, push_creds, repo, "v1") == (200, good["digest"])
    assert sorted(repo_tags(settings, push_creds, repo)) == sorted(["v1", good["content_tag"]])


def test_content_addressed_reuse_after_destroy_with_retain(
    project: Project, tmp_path: Path, demo_base: DemoBase, push_creds: Creds, settings: Settings
) -> None:
    repo = f"pytest/reuse-{uuid.uuid4().hex[:6]}"
    ctx = make_context(tmp_path)
    project.write(child_program(ctx, repo, demo_base.ref, "reuse", extra="retain_on_delete=True,"))
    assert built(project.up())
    first = project.outputs()
    project.destroy()
    assert manifest_status(settings, push_creds, repo, first["digest"])[0] == 200  # retained

    # Recreated: the registry already holds this content, so it is adopted, not built.
    again = project.up()
    assert not built(again), again.output
    assert "adopting it, no build" in again.output
    second = project.outputs()
    assert second["adopted"] is True and second["digest"] == first["digest"] and second.get("build_log") is None

    project.write(child_program(ctx, repo, demo_base.ref, "reuse", extra="retain_on_delete=False,"))
    project.up()
    project.destroy()
    assert manifest_status(settings, push_creds, repo, first["digest"])[0] == 404


def test_refresh_auth_error_keeps_state_and_a_deleted_manifest_is_noticed(
    project: Project, tmp_path: Path, demo_base: DemoBase, push_creds: Creds, settings: Settings
) -> None:
    store = HtpasswdIdentityStore(settings.registry_dir, settings.registry)
    ident, secret = store.create("pytest-refresh", "AcrPush", 1)
    repo = f"pytest/refresh-{uuid.uuid4().hex[:6]}"
    ctx = make_context(tmp_path)
    project.config("user", ident.client_id)
    project.config("pass", secret, secret=True)
    program = child_program(
        ctx, repo, demo_base.ref, "refresh",
        extra="username=pulumi.Config().require('user'), password=pulumi.Config().require_secret('pass'),",
    )
    project.write(program)
    project.up()
    digest = project.outputs()["digest"]
    assert secret not in project.export()

    # Credentials refused during refresh: the refresh fails, the image stays in state.
    store.delete(ident.client_id)
    res = project.refresh(check=False)
    assert res.returncode != 0 and "refused" in res.output, res.output
    assert "dynamic/mldeploy:BaseImage" in project.export() and digest in project.export()
    assert project.ops() == {}

    # New credentials; then the manifest is deleted out of band: refresh notices it is gone.
    ident2, secret2 = store.create("pytest-refresh2", "AcrPush", 1)
    try:
        project.config("user", ident2.client_id)
        project.config("pass", secret2, secret=True)
        project.up()
        r = registry_write("DELETE", f"http://{settings.registry}/v2/{repo}/manifests/{digest}", headers={"Authorization": push_creds.basic})
        assert r.status_code == 202
        refreshed = project.refresh()
        assert "dynamic/mldeploy:BaseImage" not in project.export(), refreshed.output
        assert project.ops() == {"img": "create"}
    finally:
        project.cleanup()
        store.delete(ident2.client_id)


def test_invalid_inputs_fail_the_check(project: Project, tmp_path: Path, settings: Settings) -> None:
    ctx = make_context(tmp_path)
    project.write(
        f"""
        from mldeploy.resources.base_image import BaseImage
        BaseImage("img", context={str(ctx)!r}, repository="127.0.0.1:5000/Bad_Repo", tag="-x", build_args={{"BASE": {settings.base_os_image!r}}})
        """
    )
    res = project.preview(check=False)
    assert res.returncode != 0
    assert "repository" in res.output and "starts with a registry address" in res.output, res.output
    assert "tag" in res.output and "not a valid tag" in res.output


def test_push_with_a_pull_only_identity_is_refused(project: Project, tmp_path: Path, demo_base: DemoBase, push_creds: Creds, settings: Settings) -> None:
    repo = f"pytest/pullonly-{uuid.uuid4().hex[:6]}"
    ctx = make_context(tmp_path)
    program = child_program(ctx, repo, demo_base.ref, "pull-only", creds="service_principal=pusher,")
    project.write(program.replace("role='AcrPush'", "role='AcrPull'"))
    res = project.up(check=False)
    assert res.returncode != 0
    assert "pushing needs an AcrPush identity" in res.output, res.output
    assert repo_tags(settings, push_creds, repo) == []
