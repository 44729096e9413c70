"""Two stacks, one service name: the second fails at preview naming the first, and the first keeps serving (issue 17.4).

Both are throwaway projects with the same stack name (``test``): ownership is the project and stack of the
``mldeploy.urn`` label, so a stack name shared across projects is not mistaken for the same owner.
"""

from __future__ import annotations

from pathlib import Path

import requests

from .conftest import copy_demo, deployment_program
from .harness import Project

SAMPLE = {"data": [[5.1, 3.5, 1.4, 0.2]]}
PORT, OTHER_PORT = 19000, 19001


def test_a_service_name_or_port_owned_by_another_stack_fails_preview_naming_it(
    project: Project, tmp_path: Path, demo_base: str, docker_client, settings  # type: ignore[no-untyped-def]
) -> None:
    demo = copy_demo(tmp_path / "demo")
    svc = f"it-own-{project.name[-6:]}"
    project.write(deployment_program(demo, svc, demo_base, {"computeType": "local", "port": PORT}, {"uri": "dep.scoring_uri", "cid": "dep.container_id"}))
    project.up()
    first = project.outputs()
    assert requests.post(first["uri"], json=SAMPLE, timeout=10).status_code == 200
    owner = f"{project.name}/{project.stack}"

    second = Project(tmp_path / "second")
    try:
        # The same service name on another port: refused at preview, naming the owner.
        second.write(deployment_program(demo, svc, demo_base, {"computeType": "local", "port": OTHER_PORT}, {}))
        res = second.preview(check=False)
        assert res.returncode != 0
        assert "service_name" in res.output and f"already deployed by stack {owner}" in res.output, res.output[-3000:]
        # Another service name on the first stack's port: refused too, naming the owner.
        second.write(deployment_program(demo, f"{svc}-b", demo_base, {"computeType": "local", "port": PORT}, {}))
        res = second.preview(check=False)
        assert res.returncode != 0
        assert f"port {PORT} is in use by container" in res.output and f"stack {owner}" in res.output, res.output[-3000:]
        # Nothing was created by the second stack, and the first keeps serving from the same container.
        second.destroy()
        assert [c.id for c in docker_client.containers.list(filters={"label": f"mldeploy.service={svc}"})] == [first["cid"]]
        assert requests.post(first["uri"], json=SAMPLE, timeout=10).status_code == 200
        assert project.ops() == {}
    finally:
        second.cleanup()
    project.destroy()
    assert docker_client.containers.list(all=True, filters={"label": f"mldeploy.service={svc}"}) == []


ECHO_SCORE = '''import json


def init():
    pass


def run(raw_data):
    return {"echo": json.loads(raw_data)}
'''


def _shared_program(src: Path, svc: str, base: str, dc: dict[str, object], target: str) -> str:
    """A deployment with no model, so that two stacks deploying the same folder ask for the same derived image."""
    return "\n".join([
        "import pulumi",
        "from mldeploy import InferenceDeployment, ServicePrincipal",
        f'push = ServicePrincipal("push", role="AcrPush", display_name="{svc}-push")',
        f'pull = ServicePrincipal("pull", role="AcrPull", display_name="{svc}-pull")',
        f'dep = InferenceDeployment("svc", service_name="{svc}", inference_config={str(src / "inferenceconfig.json")!r},',
        f"    deployment_config={dc!r}, models=[], push_identity=push, pull_identity=pull,",
        f"    base_image={base!r}, health_timeout=60, target={target!r})",
        'pulumi.export("uri", dep.scoring_uri)',
        'pulumi.export("image_ref", dep.image_ref)',
    ]) + "\n"  # fmt: skip


def test_one_service_name_on_two_targets_keeps_each_stacks_image(  # type: ignore[no-untyped-def]
    project: Project, tmp_path: Path, demo_base: str, swarm, cleanup_swarm, settings, push_creds
) -> None:
    """The same service name deployed from the same folder by two stacks on two targets (the local one, then swarm,
    which checks ownership among its own objects only) pushes to the same repository, mldeploy/<service>.
    Each stack's image is its own (it carries the deployment's URN), so destroying one stack deletes only its own
    manifest: the other stack's image stays in the registry and the other service keeps serving."""
    from .test_base_image import manifest_status

    demo = copy_demo(tmp_path / "demo")
    (demo / "src" / "score.py").write_text(ECHO_SCORE)
    svc = f"it-two-{project.name[-6:]}"
    cleanup_swarm.append(svc)
    project.write(_shared_program(demo, svc, demo_base, {"computeType": "local", "port": 19002}, "local"))
    project.up()
    local = project.outputs()

    other = Project(tmp_path / "other")
    try:
        other.write(_shared_program(demo, svc, demo_base, {"computeType": "aks", "port": 19003, "numReplicas": 1}, "swarm"))
        other.up()
        on_swarm = other.outputs()
        repo = f"mldeploy/{svc}"
        assert local["image_ref"].split("@")[0] == on_swarm["image_ref"].split("@")[0] == f"{settings.registry}/{repo}"
        assert local["image_ref"] != on_swarm["image_ref"], "two stacks share one image: one's destroy would delete the other's"
        for out in (local, on_swarm):
            assert requests.post(out["uri"], json=SAMPLE, timeout=15).json() == {"echo": SAMPLE}

        project.destroy()
        assert manifest_status(settings, push_creds, repo, local["image_ref"].split("@")[1])[0] == 404
        assert manifest_status(settings, push_creds, repo, on_swarm["image_ref"].split("@")[1])[0] == 200
        assert requests.post(on_swarm["uri"], json=SAMPLE, timeout=15).json() == {"echo": SAMPLE}
        other.refresh()
        assert other.ops() == {}
        other.destroy()
        assert manifest_status(settings, push_creds, repo, on_swarm["image_ref"].split("@")[1])[0] == 404
    finally:
        other.cleanup()
