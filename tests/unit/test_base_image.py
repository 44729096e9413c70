"""BaseImage provider logic with an in-memory engine and registry; validation, diff, pickling."""

from __future__ import annotations

import contextlib
import hashlib
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dill
import pytest
from mldeploy.backends import wheelhouse_probe
from mldeploy.backends.protocols import BuiltImage, ProbedFacts
from mldeploy.errors import AuthError, BuildError, NotFound, ValidationError
from mldeploy.resources.base_image import BaseImageProvider, compute_context_digest, content_tag
from pulumi.runtime.rpc import UNKNOWN

DEBIAN = 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'
REG = "127.0.0.1:5000"


class FakeEngine:
    def __init__(self, world: "World") -> None:
        self.w = world

    def build(self, context_dir, dockerfile, tag, build_args, log_path, platform=None, nocache=False, label="build"):  # type: ignore[no-untyped-def]
        self.w.calls.append(("build", tag, dict(build_args), nocache))
        if self.w.build_error:
            raise BuildError("building failed", step="Step 2/2 : RUN false", log_tail="boom")
        text = (Path(context_dir) / dockerfile).read_text() + repr(sorted(build_args.items()))
        image_id = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
        self.w.local[tag] = image_id
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        Path(log_path).write_text("Step 1/1 : FROM x\n")
        return BuiltImage(image_id, 1234)

    def tag(self, image, ref):  # type: ignore[no-untyped-def]
        self.w.local[ref] = self.w.local.get(image, image)

    def push(self, ref, auth):  # type: ignore[no-untyped-def]
        if self.w.refuse or self.w.refuse_push:
            raise AuthError("refused")
        image_id = self.w.local[ref]
        digest = "sha256:" + hashlib.sha256(image_id.encode()).hexdigest()
        name, tag = ref.rsplit(":", 1)
        self.w.registry.setdefault(name.split("/", 1)[1], {})[tag] = digest
        self.w.calls.append(("push", ref))
        return digest

    def pull(self, ref, auth):  # type: ignore[no-untyped-def]
        self.w.calls.append(("pull", ref))
        self.w.local[ref] = "sha256:pulled"
        return BuiltImage("sha256:pulled", 99)

    def inspect(self, ref):  # type: ignore[no-untyped-def]
        if ref not in self.w.local:
            raise NotFound(ref)
        return BuiltImage(self.w.local[ref], 1234)

    def probe(self, image):  # type: ignore[no-untyped-def]
        self.w.calls.append(("probe", image))
        return self.w.facts

    def remove(self, ref):  # type: ignore[no-untyped-def]
        self.w.calls.append(("remove", ref))
        self.w.local.pop(ref, None)


class FakeRegistry:
    def __init__(self, world: "World") -> None:
        self.w = world
        self.address = REG

    def manifest_digest(self, repository, reference):  # type: ignore[no-untyped-def]
        if self.w.refuse:
            raise AuthError("refused")
        tags = self.w.registry.get(repository, {})
        if reference.startswith("sha256:"):
            if reference in tags.values():
                return reference
            raise NotFound(reference)
        if reference not in tags:
            raise NotFound(reference)
        return tags[reference]

    def delete_manifest(self, repository, digest):  # type: ignore[no-untyped-def]
        tags = self.w.registry.get(repository, {})
        if digest not in tags.values():
            raise NotFound(digest)
        self.w.calls.append(("delete", repository, digest))
        self.w.registry[repository] = {t: d for t, d in tags.items() if d != digest}


class World:
    def __init__(self) -> None:
        self.local: dict[str, str] = {}
        self.registry: dict[str, dict[str, str]] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.facts = ProbedFacts(DEBIAN, "3.11.2", None)
        self.build_error = False
        self.refuse = False
        self.refuse_push = False  # an AcrPull identity: may read, not push

    def ops(self, kind: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == kind]


class FakeProvider(BaseImageProvider):
    world: World

    def _engine(self, label):  # type: ignore[no-untyped-def]
        return FakeEngine(self.world)

    def _registry_client(self, reg, auth):  # type: ignore[no-untyped-def]
        return FakeRegistry(self.world)

    def _credentials(self, reg, role="AcrPush"):  # type: ignore[no-untyped-def]
        self.world.calls.append(("credentials", role))
        return contextlib.nullcontext({"username": "u", "password": "p"})


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def provider(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProvider]:
    monkeypatch.setenv("MLDEPLOY_HOME", str(tmp_path / "home"))
    # The wheelhouse is asked over HTTP before a build (backends/wheelhouse_probe.py, tested on its own): here a fake that records it.
    monkeypatch.setattr(wheelhouse_probe, "check", lambda url, what: world.calls.append(("wheelhouse", url)))
    p = FakeProvider()
    p.world = world
    yield p


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    root.mkdir()
    (root / "Dockerfile").write_text("FROM mldeploy/debian:bookworm\nARG WHEELHOUSE_URL\nRUN true\n")
    return root


def inputs(ctx: Path, **over: Any) -> dict[str, Any]:
    base = {
        "context": str(ctx),
        "dockerfile": "Dockerfile",
        "repository": "demo/base",
        "tag": "v1",
        "build_args": {},
        "registry": "local",
        "username": "u",
        "password": "p",
        "context_digest": "sha256:" + "0" * 64,
        "retain_on_delete": False,
    }
    base.update(over)
    return base


def checked(p: FakeProvider, news: dict[str, Any]) -> dict[str, Any]:
    res = p.check({}, news)
    assert res.failures == [], res.failures
    return dict(res.inputs)


# -- check -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("over", "field", "says"),
    [
        ({"repository": "127.0.0.1:5000/demo/base"}, "repository", "pass registry='127.0.0.1:5000' and repository='demo/base'"),
        ({"repository": "demo/base:v1"}, "repository", "give the tag as tag="),
        ({"repository": "Demo"}, "repository", "is not valid"),
        ({"tag": "-v1"}, "tag", "not a valid tag"),
        ({"tag": "ctx-abc"}, "tag", "reserved"),
        ({"platform": "amd64"}, "platform", "linux/amd64"),
        ({"requirements": {"python": "three"}}, "requirements", "not a version range"),
        ({"password": None}, "password", "password missing"),
        ({"context": "/no/such/dir"}, "context", "is not a directory"),
        ({"dockerfile": "Nope.Dockerfile"}, "dockerfile", "does not exist"),
        ({"build_args": {"A": ["x"]}}, "build_args", "must map names to strings"),
        ({"context_digest": "abc"}, "context_digest", "computed by the BaseImage constructor"),
    ],
)
def test_check_names_the_field(provider: FakeProvider, ctx: Path, over: dict[str, Any], field: str, says: str) -> None:
    res = provider.check({}, inputs(ctx, **over))
    assert [f.reason.split(": ", 1)[0] for f in res.failures] == [field]
    assert says in res.failures[0].reason


def test_check_normalises_and_injects_the_wheelhouse(provider: FakeProvider, ctx: Path) -> None:
    news = checked(provider, inputs(ctx))
    assert news["build_args"] == {"WHEELHOUSE_URL": f"http://{REG}/wheels/"}
    assert news["registry_address"] == REG
    assert news["requirements"]["python"] == ">=3.9,<3.14"


def test_check_accepts_unknowns(provider: FakeProvider, ctx: Path) -> None:
    res = provider.check({}, inputs(ctx, username=UNKNOWN, password=UNKNOWN, context_digest=UNKNOWN, build_args=UNKNOWN))
    assert res.failures == []


# -- diff ----------------------------------------------------------------------------
def test_diff(provider: FakeProvider, ctx: Path) -> None:
    news = checked(provider, inputs(ctx))
    olds = provider.create(dict(news)).outs
    assert provider.diff("id", olds, news).changes is False
    d = provider.diff("id", olds, {**news, "context_digest": "sha256:" + "1" * 64})
    assert d.changes and d.replaces == []
    d = provider.diff("id", olds, {**news, "repository": "demo/other"})
    assert d.changes and d.replaces == ["repository"]
    assert provider.diff("id", olds, {**news, "context_digest": UNKNOWN}).changes
    # A tag found missing by refresh makes the next up push it again.
    assert provider.diff("id", {**olds, "tags": [olds["content_tag"]]}, news).changes


# -- create / update -------------------------------------------------------------------
def test_create_builds_checks_pushes_and_pins(provider: FakeProvider, world: World, ctx: Path) -> None:
    news = checked(provider, inputs(ctx))
    res = provider.create(dict(news))
    outs = res.outs
    assert res.id == f"{REG}/demo/base:v1"
    assert outs["image_ref"] == f"{REG}/demo/base@{outs['digest']}"
    assert outs["python_version"] == "3.11.2" and outs["os"]["id"] == "debian" and outs["conda_version"] is None
    assert outs["adopted"] is False and Path(outs["build_log"]).exists()
    assert world.registry["demo/base"] == {"v1": outs["digest"], content_tag(news): outs["digest"]}
    assert world.ops("build")[0][2] == {"WHEELHOUSE_URL": f"http://{REG}/wheels/"}


def test_same_content_elsewhere_is_adopted_without_a_build(provider: FakeProvider, world: World, ctx: Path) -> None:
    first = provider.create(checked(provider, inputs(ctx))).outs
    world.calls.clear()
    world.local.clear()  # another machine
    second = provider.create(checked(provider, inputs(ctx, tag="v2"))).outs
    assert world.ops("build") == []
    assert world.ops("pull") and second["adopted"] is True and second["build_log"] is None
    assert world.registry["demo/base"]["v2"] == second["digest"]
    assert first["content_tag"] == second["content_tag"]


def test_unmet_requirement_is_not_pushed(provider: FakeProvider, world: World, ctx: Path) -> None:
    world.facts = ProbedFacts(DEBIAN, None, None)
    with pytest.raises(ValidationError) as exc:
        provider.create(checked(provider, inputs(ctx)))
    assert exc.value.field == "requirements"
    assert "python >=3.9,<3.14: no python3 or python on the image's PATH" in exc.value.message
    assert world.ops("push") == [] and world.registry == {}
    assert world.local == {}  # the attempt's local tags are dropped too


def test_conda_requirement_says_conda_cannot_be_downloaded_here(provider: FakeProvider, world: World, ctx: Path) -> None:
    with pytest.raises(ValidationError) as exc:
        provider.create(checked(provider, inputs(ctx, requirements={"conda": True})))
    assert "conda: no conda on the image's PATH" in exc.value.message
    assert "Conda cannot be downloaded on this machine" in exc.value.message


def test_refused_push_says_a_push_identity_is_needed(provider: FakeProvider, world: World, ctx: Path) -> None:
    world.refuse_push = True
    with pytest.raises(AuthError) as exc:
        provider.create(checked(provider, inputs(ctx, requirements=None)))
    assert "pushing needs an AcrPush identity" in str(exc.value)


def test_failed_build_pushes_nothing(provider: FakeProvider, world: World, ctx: Path) -> None:
    world.build_error = True
    with pytest.raises(BuildError) as exc:
        provider.create(checked(provider, inputs(ctx)))
    assert exc.value.step == "Step 2/2 : RUN false"
    assert world.ops("push") == []


def test_update_requirements_only_rechecks_recorded_facts(provider: FakeProvider, world: World, ctx: Path) -> None:
    news = checked(provider, inputs(ctx))
    olds = provider.create(dict(news)).outs
    world.calls.clear()
    ok = provider.update("id", olds, checked(provider, inputs(ctx, requirements={"python": ">=3.11"}))).outs
    assert [c for c in world.calls if c[0] != "credentials"] == [] and ok["digest"] == olds["digest"]
    with pytest.raises(ValidationError) as exc:
        provider.update("id", olds, checked(provider, inputs(ctx, requirements={"python": ">=3.12"})))
    assert "python >=3.12: found python 3.11.2" in exc.value.message


def test_update_with_new_content_rebuilds_and_drops_the_superseded_manifest(provider: FakeProvider, world: World, ctx: Path) -> None:
    olds = provider.create(checked(provider, inputs(ctx))).outs
    (ctx / "Dockerfile").write_text("FROM mldeploy/debian:bookworm\nRUN echo changed\n")
    world.calls.clear()
    new = provider.update("id", olds, checked(provider, inputs(ctx, context_digest="sha256:" + "2" * 64))).outs
    assert world.ops("build") and new["digest"] != olds["digest"]
    assert world.ops("delete") == [("delete", "demo/base", olds["digest"])]
    assert world.registry["demo/base"]["v1"] == new["digest"]


def test_triggers_change_rebuilds_without_cache(provider: FakeProvider, world: World, ctx: Path) -> None:
    olds = provider.create(checked(provider, inputs(ctx))).outs
    world.calls.clear()
    provider.update("id", olds, checked(provider, inputs(ctx, triggers="2026-11")))
    assert [c[3] for c in world.ops("build")] == [True]


# -- read / delete ---------------------------------------------------------------------
def test_read(provider: FakeProvider, world: World, ctx: Path) -> None:
    outs = provider.create(checked(provider, inputs(ctx))).outs
    assert provider.read("id", outs).outs["tags"] == ["v1", outs["content_tag"]]
    world.registry["demo/base"]["v1"] = "sha256:" + "9" * 64  # the tag moved
    assert provider.read("id", outs).outs["tags"] == [outs["content_tag"]]
    assert ("credentials", "AcrPull") in world.calls  # reading needs no push rights
    world.refuse = True
    with pytest.raises(AuthError):
        provider.read("id", outs)
    world.refuse = False
    world.registry["demo/base"] = {}
    gone = provider.read("id", outs)
    assert gone.id is None


def test_delete(provider: FakeProvider, world: World, ctx: Path) -> None:
    outs = provider.create(checked(provider, inputs(ctx))).outs
    provider.delete("id", {**outs, "retain_on_delete": True})
    assert world.registry["demo/base"] and world.ops("delete") == []
    provider.delete("id", outs)
    assert world.registry["demo/base"] == {}
    assert {c[1] for c in world.ops("remove")} == {f"{REG}/demo/base:v1", f"{REG}/demo/base:{outs['content_tag']}"}
    provider.delete("id", outs)  # already gone: not an error


# -- the program side and pickling --------------------------------------------------------
def test_program_digest_tracks_the_parent_image(ctx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mldeploy.resources.base_image as bi

    monkeypatch.setattr(bi, "resolve_parent", lambda ref: "sha256:" + "a" * 64)
    d1 = compute_context_digest(str(ctx), "Dockerfile", None)
    monkeypatch.setattr(bi, "resolve_parent", lambda ref: "sha256:" + "b" * 64)
    assert compute_context_digest(str(ctx), "Dockerfile", None) != d1
    assert compute_context_digest(str(ctx), "Dockerfile", {"WHEELHOUSE_URL": "http://other/"}) != compute_context_digest(
        str(ctx), "Dockerfile", None
    )


def test_provider_pickles_by_reference() -> None:
    blob = dill.dumps(BaseImageProvider(), recurse=True)
    assert b"mldeploy.resources.base_image" in blob
    again = pickle.loads(blob)
    assert type(again) is BaseImageProvider and vars(again) == {}


# -- remote builds (the document's `az acr build`) -----------------------------------
AZ = "azure:/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/myacr"


class FakeRemoteBuilder:
    def __init__(self, world: World, build_on: str) -> None:
        self.w, self.build_on = world, build_on

    def remote_build(self, context_dir, dockerfile, repository, tags, build_args, platform=None, nocache=False, log=print, timeout=3600):  # type: ignore[no-untyped-def]
        from mldeploy.backends.azure.acr import RemoteBuild

        self.w.calls.append(("remote_build", self.build_on, repository, tuple(tags), dict(build_args)))
        log("run cb1 scheduled")
        log("Step 1/2 : FROM mldeploy/debian:bookworm")
        digest = "sha256:" + "r" * 64
        for t in tags:
            self.w.registry.setdefault(repository, {})[t] = digest
        return RemoteBuild("cb1", "Succeeded", 42.0, digest, tuple(f"{repository}:{t}" for t in tags), "")


class RemoteProvider(FakeProvider):
    def _remote_builder(self, build_on):  # type: ignore[no-untyped-def]
        return FakeRemoteBuilder(self.world, build_on)


@pytest.fixture
def remote(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RemoteProvider:
    monkeypatch.setenv("MLDEPLOY_HOME", str(tmp_path / "home"))
    p = RemoteProvider()
    p.world = world
    return p


def test_remote_build_runs_on_the_registry_then_checks_and_tags(remote: RemoteProvider, world: World, ctx: Path) -> None:
    outs = remote.create(checked(remote, inputs(ctx, build_on=AZ))).outs
    assert world.ops("build") == []  # nothing built locally
    (call,) = world.ops("remote_build")
    assert call[1] == AZ and call[2] == "demo/base" and call[3][0].startswith("ctx-")
    assert call[4] == {"WHEELHOUSE_URL": f"http://{REG}/wheels/"}
    assert ("pull", f"{REG}/demo/base@sha256:{'r' * 64}") in world.calls  # checked here, from what the registry built
    assert world.ops("probe")
    assert outs["remote_build"] == {"run_id": "cb1", "duration_seconds": 42.0}
    assert outs["python_version"] == "3.11.2"
    assert world.registry["demo/base"]["v1"]  # the named tag pushed too
    assert Path(outs["build_log"]).read_text().startswith("run cb1 scheduled")


def test_remote_build_that_misses_requirements_is_taken_back(remote: RemoteProvider, world: World, ctx: Path) -> None:
    world.facts = ProbedFacts(DEBIAN, None, None)  # no Python
    with pytest.raises(ValidationError) as exc:
        remote.create(checked(remote, inputs(ctx, build_on=AZ)))
    assert "python" in exc.value.message.lower()
    assert world.ops("delete") == [("delete", "demo/base", "sha256:" + "r" * 64)]
    assert "v1" not in world.registry.get("demo/base", {})


@pytest.mark.parametrize("bad", ["myacr.azurecr.io", "azure:/subscriptions/x"])
def test_build_on_must_be_an_azure_target(remote: RemoteProvider, ctx: Path, bad: str) -> None:
    res = remote.check({}, inputs(ctx, build_on=bad))
    assert [f.reason.split(": ", 1)[0] for f in res.failures] == ["build_on"]
