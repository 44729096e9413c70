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
