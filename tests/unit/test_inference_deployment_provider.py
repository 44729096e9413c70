"""InferenceDeploymentProvider against fake runtimes: the resource's own logic, for each target's shape.

Three shapes of ``Runtime`` (``backends/protocols.py``): local-like (mldeploy builds the image, one
container), swarm-like (builds the image, replicas, keys with ``authEnabled``) and azure-like (no image
build: the platform builds from the conda file). The fakes keep what runs in a dict, so create, read,
update and delete act on a small world the tests can inspect and break. The real runtimes run in
tests/integration (local, swarm) and tests/unit/azure (recorded Azure answers).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mldeploy.backends import select
from mldeploy.backends.local_runtime import LocalRuntime
from mldeploy.backends.ownership import describe, owner, same_owner
from mldeploy.backends.protocols import DeploySpec, LiveState, Runtime
from mldeploy.backends.swarm_runtime import SwarmRuntime
from mldeploy.errors import BackendError, NotFound, ValidationError
from mldeploy.resources import inference_deployment as idp
from mldeploy.resources.inference_deployment import InferenceDeploymentProvider

DEMO = Path(__file__).resolve().parents[2] / "stacks" / "demo"
URN = "urn:pulumi:dev::shop::pulumi-python:dynamic/mldeploy:InferenceDeployment::svc"


class FakeRuntime:
    """A runtime whose deployments live in ``self.world`` (service -> what runs)."""

    def __init__(self, target: str, builds_image: bool, replicas: bool = False) -> None:
        self.target, self.builds_image, self.replicas = target, builds_image, replicas
        self.world: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, Any]] = []
        self.fail_deploy: Exception | None = None
        self.fail_read: Exception | None = None
        self.refuse: dict[str, str] = {}  # deployment field -> message (validate)
        self.taken: set[str] = set()  # service names another stack owns (preflight)

    def validate(self, deployment: dict[str, Any], source: str, warn: Callable[[str], None]) -> None:
        self.calls.append(("validate", deployment))
        for key, message in self.refuse.items():
            if key in deployment:
                raise ValidationError(f"deployment_config.{key}", f"{message} (in {source})")

    def preflight(self, spec: DeploySpec, progress: Callable[[str], None]) -> None:
        self.calls.append(("preflight", spec))
        if spec.service in self.taken:
            raise ValidationError("service_name", f"service {spec.service!r} is already deployed by stack other/prod")

    def deploy(self, spec: DeploySpec, progress: Callable[[str], None]) -> dict[str, Any]:
        self.calls.append(("deploy", spec))
        if self.fail_deploy:
            raise self.fail_deploy
        n = int(spec.deployment.get("numReplicas") or 1)
        self.world[spec.service] = {"image": spec.image_ref, "replicas": n, "keys": spec.keys, "labels": spec.labels}
        out: dict[str, Any] = {"state": "running", "scoring_uri": f"http://127.0.0.1:{spec.port}/score", "swagger_uri": "s"}
        if self.replicas:
            out |= {"replicas": n, "running_image": spec.image_ref}
        if not self.builds_image:
            out |= {"image_ref": spec.props["base_image"], "deployment_name": "mld-1", "primary_key": "platform-pk"}
        return out

    def read(self, service: str, outputs: dict[str, Any]) -> LiveState:
        self.calls.append(("read", service))
        if self.fail_read:
            raise self.fail_read
        if service not in self.world:
            raise NotFound(f"{service} does not exist")
        w = self.world[service]
        return LiveState(state="running", replicas=w["replicas"] if self.replicas else None, image=w["image"] if self.replicas else None)

    def remove(self, service: str, outputs: dict[str, Any], labels: dict[str, str], progress: Callable[[str], None]) -> None:
        self.calls.append(("remove", labels))
        self.world.pop(service, None)  # missing is not an error


class Images:
    """The derived images mldeploy built and pushed (``_build_and_push``) and deleted (``_delete_image``)."""

    def __init__(self) -> None:
        self.built: list[str] = []
        self.deleted: list[str] = []
        self.gone: set[str] = set()  # manifests deleted from the registry out of band

    def build(self, props: dict[str, Any]) -> tuple[str, str, str]:
        digest = f"sha256:{len(self.built) + 1:064d}"
        ref = f"127.0.0.1:5000/mldeploy/{props['service_name']}@{digest}"
        self.built.append(ref)
        return ref, f"sha256:{props['source_digest'][-8:]:0>64}", "/logs/deploy.log"

    def delete(self, image_ref: str | None, props: dict[str, Any], derived: str | None = None) -> None:
        if image_ref and "@" in image_ref:
            self.deleted.append(image_ref)


SHAPES = {
    "local": lambda: FakeRuntime("local", builds_image=True),
    "swarm": lambda: FakeRuntime("swarm", builds_image=True, replicas=True),
    "kubernetes": lambda: FakeRuntime("kubernetes", builds_image=True, replicas=True),
    "azure": lambda: FakeRuntime("azure:/subscriptions/x", builds_image=False),
}


@pytest.fixture(params=sorted(SHAPES))
def shape(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> dict[str, FakeRuntime]:
    """One fake runtime per target name, and fake image build/delete (no Docker)."""
    runtimes = {name: make() for name, make in SHAPES.items()}
    images = Images()

    def runtime(target: str, field: str = "target") -> Runtime:
        key = "azure" if target.startswith("azure:") else target
        if key not in runtimes:
            raise ValidationError(field, f"unknown target {target!r}")
        return runtimes[key]

    def environment(news: dict[str, Any]) -> None:
        news["environment"] = {"digest": "sha256:" + "e" * 64, "packages": {"scikit-learn": "1.7.0"}}

    monkeypatch.setattr(select, "runtime", runtime)
    monkeypatch.setattr(idp, "_resolve_environment", environment)
    monkeypatch.setattr(idp, "_check_base_image_source", lambda news: None)  # no registry here (tests/unit/test_fidelity.py has its rules)
    monkeypatch.setattr(idp, "_build_and_push", images.build)
    monkeypatch.setattr(idp, "_delete_image", images.delete)
    monkeypatch.setattr(idp.convergence, "manifest_missing", lambda ref, auth: ref in images.gone)
    runtimes["images"] = images  # type: ignore[assignment]
    return runtimes


def inputs(target: str | None, **deployment: Any) -> dict[str, Any]:
    dc = {"computeType": "local", "port": 18999, **deployment}
    return {
        "service_name": "iris",
        "target": target,
        "inference_config": str(DEMO / "inferenceconfig.json"),
        "deployment_config": dc,
        "base_image": "127.0.0.1:5000/demo/base@sha256:" + "b" * 64,
        "models": [{"name": "iris", "version": 1, "download": "file:///m", "digest": "sha256:" + "d" * 64}],
        "push_username": "push", "push_password": "p1", "pull_username": "pull", "pull_password": "p2",
        "health_timeout": 30,
        "stack": "dev",
        "resource_urn": URN,
        "regenerate_key": None,
    }  # fmt: skip


def target_of(shape: str) -> str:
    return "azure:/subscriptions/x" if shape == "azure" else shape


def checked(news: dict[str, Any], olds: dict[str, Any] | None = None) -> dict[str, Any]:
    res = InferenceDeploymentProvider().check(olds or {}, news)
    assert res.failures == [], [f.reason for f in res.failures]
    return dict(res.inputs)


def failures(news: dict[str, Any]) -> list[tuple[str, str]]:
    """(input, message): each failure is one sentence starting with the input it names."""
    return [tuple(f.reason.split(": ", 1)) for f in InferenceDeploymentProvider().check({}, news).failures]  # type: ignore[misc]


# -- check --------------------------------------------------------------------------------------------
def test_check_resolves_configs_then_validates_and_preflights_on_the_target(world: dict[str, FakeRuntime], shape: str) -> None:
    rt = world[shape]
    props = checked(inputs(target_of(shape)))
    assert props["target"] == target_of(shape)
    assert props["inference"]["entry_script"] == "score.py" and props["source_digest"].startswith("sha256:")
    assert props["deployment"] == {"computeType": "local", "port": 18999} and props["port"] == 18999
    assert [c for c, _ in rt.calls] == ["validate", "preflight"]
    spec = rt.calls[1][1]
    assert (spec.service, spec.port, spec.image_ref, spec.previous) == ("iris", 18999, None, None)
    assert spec.labels == {"mldeploy.service": "iris", "mldeploy.stack": "dev", "mldeploy.urn": URN}


def test_target_rules_fail_at_preview_naming_the_field(world: dict[str, FakeRuntime], shape: str) -> None:
    world[shape].refuse = {"numReplicas": "this target runs one replica"}
    assert failures(inputs(target_of(shape), numReplicas=3)) == [("deployment_config.numReplicas", "this target runs one replica (in deployment_config)")]
    assert [c for c, _ in world[shape].calls] == ["validate"]  # no live check once the input is known to be bad


def test_a_service_name_another_stack_owns_fails_at_preview(world: dict[str, FakeRuntime], shape: str) -> None:
    world[shape].taken = {"iris"}
    assert failures(inputs(target_of(shape))) == [("service_name", "service 'iris' is already deployed by stack other/prod")]


@pytest.mark.parametrize(
    ("given", "compute", "want"),
    [(None, "aks", "kubernetes"), (None, "local", "local"), (None, "aci", "local"), ("local", "aks", "local"), ("swarm", "local", "swarm")],
)
def test_target_resolution(world: dict[str, FakeRuntime], given: str | None, compute: str, want: str) -> None:
    news = inputs(given, computeType=compute)
    idp._resolve_target(news)
    assert news["target"] == want


def test_unknown_targets_fail_naming_target() -> None:
    news = inputs("nomad")
    with pytest.raises(ValidationError, match="unknown target 'nomad'") as exc:
        idp._resolve_target(news)
    assert exc.value.field == "target"
    assert select.runtime("kubernetes").target == "kubernetes"
    assert select.resolve_target(None, "aks") == select.DEFAULT_TARGET_BY_COMPUTE_TYPE["aks"]


def test_regenerate_key_needs_auth_and_a_known_key(world: dict[str, FakeRuntime]) -> None:
    assert failures({**inputs("local"), "regenerate_key": "primary:1"}) == [
        ("regenerate_key", "'primary:1': keys exist only with authEnabled: true in the deployment config")
    ]
    for dc in ({"authEnabled": True}, {}):
        bad = failures({**inputs("swarm", computeType="aks", **dc), "regenerate_key": "both"})
        assert [f for f, _ in bad] == ["regenerate_key"] and "'both': use 'primary:<anything>'" in bad[0][1]
    checked({**inputs("swarm", computeType="aks", authEnabled=True), "regenerate_key": "secondary:2026-01"})


# -- diff ---------------------------------------------------------------------------------------------
def test_diff(world: dict[str, FakeRuntime], shape: str) -> None:
    p = InferenceDeploymentProvider()
    news = checked(inputs(target_of(shape)))
    olds = p.create(news).outs
    assert p.diff("iris", olds, news).changes is False
    d = p.diff("iris", olds, {**news, "source_digest": "sha256:" + "e" * 64})
    assert d.changes is None and d.replaces == []  # inputs changed: the engine lists which (_common.changes)
    d = p.diff("iris", olds, {**news, "service_name": "iris2"})
    assert d.replaces == ["service_name"] and d.delete_before_replace is True
    assert p.diff("iris", {**olds, "state": "exited"}, news).changes is True  # stopped out of band: the next up repairs it
    assert p.diff("iris", olds, {**news, "regenerate_key": "primary:1"}).changes is True


def test_drift_found_by_refresh_needs_an_update() -> None:
    olds = {"target": "swarm", "replicas": 3, "image_ref": "r@sha256:a", "running_image": "r@sha256:a", "deployment": {"numReplicas": 3}}
    news = {"target": "swarm", "deployment": {"numReplicas": 3}}
    assert idp._drift(olds, news) == []
    assert idp._drift({**olds, "replicas": 1}, news) == ["replicas"]
    assert idp._drift({**olds, "running_image": "r@sha256:b"}, news) == ["running_image"]
    assert idp._drift(olds, {**news, "regenerate_key": "primary:1"}) == ["regenerate_key"]
    assert idp._drift({"target": "local", "replicas": None}, {"target": "local", "deployment": {}}) == []


def test_a_changed_swarm_publish_mode_moves_the_front(monkeypatch: pytest.MonkeyPatch) -> None:
    """A swarm deployment made in another publish mode (e.g. ``host`` by an mldeploy before the loopback front) is updated."""
    olds = {"target": "swarm", "replicas": 1, "image_ref": "r@sha256:a", "running_image": "r@sha256:a", "publish_mode": "host"}
    news = {"target": "swarm", "deployment": {}}
    monkeypatch.delenv("MLDEPLOY_SWARM_PUBLISH_MODE", raising=False)
    assert idp._drift(olds, news) == ["publish_mode"]
    assert idp._drift({**olds, "publish_mode": "loopback"}, news) == []
    monkeypatch.setenv("MLDEPLOY_SWARM_PUBLISH_MODE", "host")
    assert idp._drift(olds, news) == []


# -- create / read / update / delete --------------------------------------------------------------------
def test_create_builds_where_the_target_needs_it_and_deploys_the_spec(world: dict[str, FakeRuntime], shape: str) -> None:
    rt, images = world[shape], world["images"]
    res = InferenceDeploymentProvider().create(checked(inputs(target_of(shape))))
    spec = rt.calls[-1][1]
    assert res.id == "iris" and res.outs["state"] == "running" and res.outs["scoring_uri"] == "http://127.0.0.1:18999/score"
    assert spec.entry_script == "score.py" and spec.pull_auth == {"username": "pull", "password": "p2"} and spec.keys is None
    if shape == "azure":
        assert images.built == [] and spec.image_ref is None  # Azure ML builds the image itself
        assert res.outs["image_ref"] == inputs(None)["base_image"] and res.outs["derived_digest"] is None
    else:
        assert spec.image_ref == images.built[0] == res.outs["image_ref"] and res.outs["derived_digest"].startswith("sha256:")
    assert res.outs["secondary_key"] is None and res.outs["primary_key"] == ("platform-pk" if shape == "azure" else None)


def test_keys_with_auth_enabled_generated_kept_and_rotated_one_at_a_time(world: dict[str, FakeRuntime]) -> None:
    p, rt = InferenceDeploymentProvider(), world["swarm"]
    news = checked(inputs("swarm", computeType="aks", authEnabled=True))
    first = p.create(news).outs
    assert first["primary_key"] and first["secondary_key"] and first["primary_key"] != first["secondary_key"]
    assert rt.world["iris"]["keys"] == (first["primary_key"], first["secondary_key"])
    kept = p.update("iris", first, news).outs
    assert (kept["primary_key"], kept["secondary_key"]) == (first["primary_key"], first["secondary_key"])
    rotated = p.update("iris", kept, {**news, "regenerate_key": "primary:1"}).outs
    assert rotated["secondary_key"] == first["secondary_key"] and rotated["primary_key"] != first["primary_key"]
    assert rt.world["iris"]["keys"] == (rotated["primary_key"], rotated["secondary_key"])
    same = p.update("iris", rotated, {**news, "regenerate_key": "primary:1"}).outs  # same value: no new rotation
    assert same["primary_key"] == rotated["primary_key"]


def test_keys_are_generic_not_a_swarm_feature(world: dict[str, FakeRuntime]) -> None:
    """Any runtime whose deployment config has authEnabled gets keys; a platform's own keys win (azure)."""
    out = InferenceDeploymentProvider().create(checked(inputs("azure:/subscriptions/x", authEnabled=True))).outs
    assert out["primary_key"] == "platform-pk" and out["secondary_key"]
    assert world["azure"].calls[-1][1].keys is not None


def test_read_reports_what_runs_and_only_not_found_is_gone(world: dict[str, FakeRuntime], shape: str) -> None:
    p, rt = InferenceDeploymentProvider(), world[shape]
    outs = p.create(checked(inputs(target_of(shape), numReplicas=2))).outs
    read = p.read("iris", outs)
    assert read.id == "iris" and read.outs["state"] == "running"
    if shape == "swarm":
        rt.world["iris"]["replicas"] = 1  # scaled out of band
        assert p.read("iris", outs).outs["replicas"] == 1
    rt.fail_read = BackendError("the registry refused the credentials")
    with pytest.raises(BackendError):  # an error is not "gone": the engine keeps the state
        p.read("iris", outs)
    rt.fail_read = None
    del rt.world["iris"]
    gone = p.read("iris", outs)
    assert gone.id is None and gone.outs == {}


def test_update_failure_keeps_the_previous_deployment_and_deletes_only_the_new_image(world: dict[str, FakeRuntime], shape: str) -> None:
    p, rt, images = InferenceDeploymentProvider(), world[shape], world["images"]
    news = checked(inputs(target_of(shape)))
    olds = p.create(news).outs
    before = dict(olds)
    running = dict(rt.world["iris"])
    rt.fail_deploy = BackendError("deployment iris exited; the previous deployment keeps serving")
    with pytest.raises(BackendError, match="keeps serving"):
        p.update("iris", olds, {**news, "source_digest": "sha256:" + "e" * 64})
    assert olds == before and rt.world["iris"] == running  # the engine keeps the previous outputs
    if shape != "azure":
        assert images.deleted == [images.built[1]] and olds["image_ref"] not in images.deleted
    rt.fail_deploy = None
    new = p.update("iris", olds, {**news, "source_digest": "sha256:" + "e" * 64}).outs
    if shape != "azure":
        assert new["image_ref"] == images.built[2] and olds["image_ref"] in images.deleted  # the replaced image goes
    spec = rt.calls[-1][1]
    assert spec.previous == olds


def test_delete_removes_this_stacks_deployment_and_a_missing_one_succeeds(world: dict[str, FakeRuntime], shape: str) -> None:
    p, rt, images = InferenceDeploymentProvider(), world[shape], world["images"]
    outs = p.create(checked(inputs(target_of(shape)))).outs
    p.delete("iris", outs)
    assert rt.world == {} and rt.calls[-1] == ("remove", {"mldeploy.service": "iris", "mldeploy.stack": "dev", "mldeploy.urn": URN})
    assert images.deleted == ([] if shape == "azure" else [outs["image_ref"]])  # azure: the base image is not ours to delete
    p.delete("iris", outs)  # already gone


def test_provider_pickles_by_reference() -> None:
    p = pickle.loads(pickle.dumps(InferenceDeploymentProvider()))
    assert type(p).__module__ == "mldeploy.resources.inference_deployment" and vars(p) == {}


# -- the real runtimes' check-time rules (no I/O) --------------------------------------------------------
def test_local_and_swarm_field_rules() -> None:
    warned: list[str] = []
    with pytest.raises(ValidationError, match="not run by the local target; use 'local'"):
        LocalRuntime().validate({"computeType": "aks"}, "dc.json", warned.append)
    with pytest.raises(ValidationError) as exc:
        LocalRuntime().validate({"computeType": "local", "authEnabled": True}, "dc.json", warned.append)
    assert exc.value.field == "deployment_config.authEnabled"
    SwarmRuntime().validate({"computeType": "aks", "location": "westeurope"}, "dc.json", warned.append)
    assert warned == ["warning: deployment_config.location is ignored by the swarm target: an Azure region; a swarm runs where its nodes are"]
    with pytest.raises(ValidationError, match="at most 48"):
        SwarmRuntime().preflight(DeploySpec("x" * 49, None, "s.py", {}, 1, {}, "r", {}, {}, None, 1, None, {}), warned.append)


def test_select_picks_one_runtime_per_target() -> None:
    assert isinstance(select.runtime("local"), LocalRuntime) and isinstance(select.runtime("swarm"), SwarmRuntime)
    with pytest.raises(ValidationError) as exc:
        select.runtime("azure:/subscriptions/nope")
    assert exc.value.field == "target"


@pytest.mark.parametrize(
    ("theirs", "same"),
    [
        ({"mldeploy.stack": "dev", "mldeploy.urn": URN}, True),
        ({"mldeploy.stack": "dev", "mldeploy.urn": URN.replace("::svc", "::renamed")}, True),  # same stack, other resource
        ({"mldeploy.stack": "dev", "mldeploy.urn": URN.replace("::shop::", "::other::")}, False),  # same stack name, other project
        ({"mldeploy.stack": "prod", "mldeploy.urn": URN.replace("dev::", "prod::")}, False),
        ({"mldeploy.stack": "dev"}, True),  # from before the URN label: by stack name
        ({"mldeploy.stack": "prod"}, False),
        ({}, True),
    ],
)
def test_ownership(theirs: dict[str, str], same: bool) -> None:
    ours = {"mldeploy.stack": "dev", "mldeploy.urn": URN}
    assert same_owner(theirs, ours) is same
    assert owner(ours) == "shop/dev" and describe(ours) == f"stack shop/dev (resource {URN})"


def test_local_runtime_never_removes_another_stacks_container(monkeypatch: pytest.MonkeyPatch) -> None:
    """Containers of the same service name that another stack owns are neither stopped by a swap nor removed by delete."""
    from mldeploy.backends import docker_runtime as rt
    from mldeploy.backends import local_runtime

    ours = {"mldeploy.service": "iris", "mldeploy.stack": "dev", "mldeploy.urn": URN}
    theirs = {**ours, "mldeploy.urn": URN.replace("::shop::", "::other::")}
    containers = {
        "mine": rt.Container("mine", "mldeploy-iris-1", "running", "img", ours),
        "theirs": rt.Container("theirs", "mldeploy-iris-2", "running", "img", theirs),
    }
    removed: list[str] = []
    monkeypatch.setattr(rt, "find", lambda service: list(containers.values()))
    monkeypatch.setattr(rt, "remove", lambda cid, grace=10, progress=None: removed.append(cid))
    said: list[str] = []
    local_runtime.LocalRuntime().remove("iris", {}, ours, said.append)
    assert removed == ["mine"] and said == [f"left container mldeploy-iris-2 alone: it belongs to stack other/dev (resource {theirs['mldeploy.urn']})"]

    spec = DeploySpec("iris", None, "score.py", {}, 19002, ours, "r", {}, {}, None, 1, None, {})
    monkeypatch.setattr(rt, "port_in_use", lambda port: False)
    with pytest.raises(ValidationError, match="already deployed by stack other/dev") as exc:
        local_runtime.LocalRuntime().preflight(spec, said.append)
    assert exc.value.field == "service_name"


def test_a_changed_identity_is_synced_into_the_outputs_without_a_redeploy(world: dict[str, FakeRuntime], shape: str) -> None:
    p, rt = InferenceDeploymentProvider(), world[shape]
    news = checked(inputs(target_of(shape)))
    olds = p.create(news).outs
    rotated = {**news, "push_username": "push2", "push_password": "new-secret"}
    # None: inputs changed, and the engine lists the changed ones (the rotated identity) in preview --diff.
    assert p.diff("iris", olds, rotated).changes is not False
    deploys = len([c for c in rt.calls if c[0] == "deploy"])
    out = p.update("iris", olds, rotated).outs
    assert out["push_username"] == "push2" and out["push_password"] == "new-secret"
    assert out["image_ref"] == olds["image_ref"] and len([c for c in rt.calls if c[0] == "deploy"]) == deploys
    assert p.diff("iris", out, rotated).changes is False  # and then a no-op


def test_a_deleted_derived_manifest_is_drift_that_up_rebuilds(world: dict[str, FakeRuntime], shape: str) -> None:
    p, images = InferenceDeploymentProvider(), world["images"]
    news = checked(inputs(target_of(shape)))
    olds = p.create(news).outs
    assert "image_missing" not in p.read("iris", olds).outs
    if shape == "azure":
        return  # the platform's image: nothing of ours to check
    images.gone.add(olds["image_ref"])
    read = p.read("iris", olds).outs
    assert read["image_missing"] is True and p.diff("iris", read, news).changes
    out = p.update("iris", read, news).outs
    assert out["image_ref"] == images.built[-1] != olds["image_ref"] and "image_missing" not in out
    images.gone.clear()
    assert "image_missing" not in p.read("iris", {**out, "image_missing": True}).outs


def test_destroy_after_the_push_identity_was_revoked(
    world: dict[str, FakeRuntime], shape: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The recorded push identity is refused: a short-lived workspace identity deletes the image; if that fails too, destroy goes on."""
    import contextlib

    from mldeploy.errors import AuthError

    p, rt = InferenceDeploymentProvider(), world[shape]
    outs = p.create(checked(inputs(target_of(shape)))).outs
    deleted: list[str] = []
    workspace_works = True

    def delete(image_ref: str | None, props: dict[str, Any], derived: str | None = None) -> None:
        if props.get("push_username") != "workspace" or not workspace_works:
            raise AuthError("deleting: registry 127.0.0.1:5000 refused identity 'push' (HTTP 401)")
        deleted.append(str(image_ref))

    @contextlib.contextmanager
    def workspace(_ref: Any) -> Any:
        yield {"push_username": "workspace", "push_password": "short-lived"}

    monkeypatch.setattr(idp, "_delete_image", delete)
    monkeypatch.setattr(idp.convergence, "workspace_push_auth", workspace)
    p.delete("iris", outs)
    assert "iris" not in rt.world
    if shape != "azure":
        assert deleted == [outs["image_ref"]] and "short-lived workspace identity" in capsys.readouterr().err
        workspace_works = False
        outs = p.create(checked(inputs(target_of(shape)))).outs
        p.delete("iris", outs)
        assert "iris" not in rt.world and "left the image" in capsys.readouterr().err
