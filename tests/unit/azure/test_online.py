"""Managed online endpoint + deployment (InferenceDeployment on azure) at the HTTP boundary."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from mldeploy.backends.azure.online import OnlineDeployer, OnlineSpec, deployment_sizing
from mldeploy.errors import BackendError, NotFound, ValidationError
from mldeploy.hashing import source_ignore, tree_digest

from .conftest import SUB, TARGET, WS_ID
from .fakes import FakeAzure, arm_error
from .test_ml_registry import BLOB_HOST, CONTAINER, datastore, play_datastore

EP = WS_ID + "/onlineEndpoints/iris"
OPS = f"/subscriptions/{SUB}/providers/Microsoft.MachineLearningServices/locations/westeurope/mfeOperationsStatus"
IMAGE = "mldeployacr.azurecr.io/demo/base@sha256:" + "c" * 64
FAST = {"Retry-After": "0.01"}  # LRO polls; azure-core reads fractional seconds


class World:
    """The workspace's endpoints and deployments as ARM keeps them, answering the REST calls in the shapes
    Azure's recording shows (test_recorded_online replays the recording itself): PUTs answer 201 with
    ``Creating``/``Updating`` and ``scoringUri: null``, ``Azure-AsyncOperation`` + ``Location``; each
    operation polls ``Updating`` once before its final status."""

    def __init__(self, azure: FakeAzure, fail_deployment: bool = False) -> None:
        self.azure = azure
        self.endpoint: dict[str, Any] | None = None
        self.deployments: dict[str, dict[str, Any]] = {}
        self.ops: dict[str, str] = {}
        self.polled: dict[str, bool] = {}
        self.fail = fail_deployment
        a = azure
        a.on("GET", WS_ID + "/datastores", (200, {"value": [datastore()]}, {}))
        play_datastore(a)
        a.on("HEAD", f"/{CONTAINER}/mldeploy/code/.*\\.complete", (404, b"", {"x-ms-error-code": "BlobNotFound"}), host=BLOB_HOST)
        a.on("PUT", f"/{CONTAINER}/mldeploy/code/.*", (201, b"", {"ETag": '"1"'}), host=BLOB_HOST)
        a.on("GET", EP, self.get_endpoint)
        a.on("PUT", EP, self.put_endpoint)
        a.on("DELETE", EP, self.delete_endpoint)
        a.on("POST", EP + "/listKeys", (200, {"primaryKey": "pk-123", "secondaryKey": "sk-456"}, {}))
        a.on("GET", EP + "/deployments", lambda r: (200, {"value": list(self.deployments.values())}, {}))
        a.on("GET", EP + "/deployments/([^/]+)", self.get_deployment)
        a.on("PUT", EP + "/deployments/([^/]+)", self.put_deployment)
        a.on("DELETE", EP + "/deployments/([^/]+)", self.delete_deployment)
        a.on("POST", EP + "/deployments/([^/]+)/getLogs", (200, {"content": "Traceback: ModuleNotFoundError: No module named 'sklearn'\nliveness probe failed"}, {}))
        a.on("GET", OPS + "/([^/]+)", self.get_op)
        a.on("GET", WS_ID + "/models/iris/versions/1", (200, {"id": WS_ID + "/models/iris/versions/1", "name": "1", "properties": {"modelUri": "azureml://x", "flavors": {}}}, {}))
        a.on("GET", WS_ID + "/models/iris", (200, {"id": WS_ID + "/models/iris", "name": "iris", "properties": {"latestVersion": "1"}}, {}))
        a.on("PUT", WS_ID + "/environments/([^/]+)/versions/([^/]+)", self.echo)
        a.on("PUT", WS_ID + "/codes/([^/]+)/versions/([^/]+)", self.echo)
        a.on("GET", WS_ID + "/codes/([^/]+)/versions", (200, {"value": []}, {}))

    def _op(self, final: str, location: str | None = None) -> dict[str, str]:
        op = f"op{len(self.ops) + 1}"
        self.ops[op] = final
        headers = {"Azure-AsyncOperation": f"https://management.azure.com{OPS}/{op}?api-version=2023-10-01", **FAST}
        if location:
            headers["Location"] = f"https://management.azure.com{location}?api-version=2023-10-01"
        return headers

    def get_op(self, req):  # type: ignore[no-untyped-def]
        op = req.path.rsplit("/", 1)[-1]
        final = self.ops[op]
        if not self.polled.get(op):
            self.polled[op] = True
            return 200, {"status": "Updating", "percentComplete": 0.0}, FAST
        body: dict[str, Any] = {"status": final}
        if final == "Failed":
            body["error"] = {"code": "ResourceNotReady", "message": "User container has crashed or terminated: liveness probe failed"}
        return 200, body, FAST

    def echo(self, req):  # type: ignore[no-untyped-def]
        body = req.json
        body.update(id=req.path, name=req.path.rsplit("/", 1)[-1])
        return 200, body, {}

    def get_endpoint(self, req):  # type: ignore[no-untyped-def]
        if self.endpoint is None:
            return arm_error(404, "UserError", "Resource iris is not found")
        return 200, self.endpoint, {}

    def put_endpoint(self, req):  # type: ignore[no-untyped-def]
        body = req.json
        created = self.endpoint is None
        done = json.loads(json.dumps(body))
        done["properties"].update(
            provisioningState="Succeeded",
            scoringUri="https://iris.westeurope.inference.ml.azure.com/score",
            swaggerUri="https://iris.westeurope.inference.ml.azure.com/swagger.json",
        )
        self.endpoint = {"id": EP, "name": "iris", "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints", **done}
        # As recorded: the PUT's own answer is still Creating/Updating, without a scoring URI yet.
        answer = json.loads(json.dumps(self.endpoint))
        answer["properties"].update(provisioningState="Creating" if created else "Updating", scoringUri=None, swaggerUri=None)
        return (201 if created else 200), answer, self._op("Succeeded", EP)

    def delete_endpoint(self, req):  # type: ignore[no-untyped-def]
        if self.endpoint is None:
            return 204, b"", {}
        self.endpoint = None
        self.deployments.clear()
        # DELETE's generated client parses Retry-After as an int; the first poll waits that second
        return 202, b"", {**self._op("Succeeded"), "Location": f"https://management.azure.com{OPS}/done", "Retry-After": "1"}

    def get_deployment(self, req):  # type: ignore[no-untyped-def]
        name = req.path.rsplit("/", 1)[-1]
        if name not in self.deployments:
            return arm_error(404, "UserError", f"Deployment {name} is not found")
        return 200, self.deployments[name], {}

    def put_deployment(self, req):  # type: ignore[no-untyped-def]
        name = req.path.rsplit("/", 1)[-1]
        body = req.json
        state = "Failed" if self.fail else "Succeeded"
        body["properties"]["provisioningState"] = state
        body["properties"].setdefault("scaleSettings", {"scaleType": "Default"})  # ARM fills in the default
        self.deployments[name] = {"id": req.path, "name": name, "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments", **body}
        answer = json.loads(json.dumps(self.deployments[name]))
        answer["properties"]["provisioningState"] = "Updating"  # as recorded: a new deployment starts Updating
        return 201, answer, self._op(state, req.path)

    def delete_deployment(self, req):  # type: ignore[no-untyped-def]
        name = req.path.rsplit("/", 1)[-1]
        if self.deployments.pop(name, None) is None:
            return arm_error(404, "UserError", "not found")
        # DELETE's generated client parses Retry-After as an int; the first poll waits that second
        return 202, b"", {**self._op("Succeeded"), "Location": f"https://management.azure.com{OPS}/done", "Retry-After": "1"}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    (tmp_path / "score.py").write_text("def init():\n    pass\n\ndef run(data):\n    return data\n")
    (tmp_path / "infenv.yml").write_text("name: inf\ndependencies:\n- python=3.11\n- pip:\n  - scikit-learn\n")
    return tmp_path


def spec(source: Path, **kw: Any) -> OnlineSpec:
    return OnlineSpec(
        endpoint="iris",
        base_image=kw.pop("base_image", IMAGE),
        source_dir=str(source),
        source_digest=tree_digest(source, keep_name=False, ignore=source_ignore)[0],
        entry_script="score.py",
        conda_file=str(source / "infenv.yml"),
        models=[{"name": "iris", "version": 1}],
        instance_type="Standard_DS3_v2",
        instance_count=kw.pop("instance_count", 1),
    )


def test_deploy_creates_endpoint_deployment_then_switches_traffic(azure, cred, source) -> None:  # type: ignore[no-untyped-def]
    world = World(azure)
    out = OnlineDeployer(TARGET, cred, azure.transport()).deploy(spec(source, instance_count=2))

    dep = out["deployment_name"]
    assert re.fullmatch(r"mld-[0-9a-f]{12}", dep)
    assert out["scoring_uri"] == "https://iris.westeurope.inference.ml.azure.com/score"
    assert out["primary_key"] == "pk-123" and out["secondary_key"] == "sk-456" and out["state"] == "running"
    ep_put = azure.calls("PUT", EP + "$")
    assert ep_put[0].json["properties"]["authMode"] == "Key" and ep_put[0].api_version
    put = azure.calls("PUT", "/deployments/")[0]
    props = put.json["properties"]
    assert put.json["sku"] == {"name": "Default", "capacity": 2}
    assert props["instanceType"] == "Standard_DS3_v2" and props["endpointComputeType"] == "Managed"
    assert props["model"].endswith("/models/iris/versions/1")
    assert props["codeConfiguration"]["scoringScript"] == "score.py"
    env_put = azure.calls("PUT", "/environments/")[0].json["properties"]
    assert env_put["image"] == IMAGE and "scikit-learn" in env_put["condaFile"]
    # traffic moves only after the deployment LRO succeeded
    order = [(r.method, r.path) for r in azure.requests if r.method == "PUT" and "/onlineEndpoints/" in r.path]
    assert order[-1] == ("PUT", EP) and "/deployments/" in order[-2][1]
    assert ep_put[-1].json["properties"]["traffic"] == {dep: 100}
    assert world.deployments.keys() == {dep}
    code = azure.calls("PUT", f"/{CONTAINER}/mldeploy/code/iris/")
    assert sorted(c.path.rsplit("/", 1)[-1] for c in code) == sorted(["score.py", "infenv.yml", f"{tree_digest(source, keep_name=False, ignore=source_ignore)[0][7:]}.complete"])
    assert len(azure.calls("PUT", "/codes/mldeploy-iris/versions/")) == 1


def test_new_content_gets_a_new_deployment_and_the_old_one_goes(azure, cred, source) -> None:  # type: ignore[no-untyped-def]
    world = World(azure)
    deployer = OnlineDeployer(TARGET, cred, azure.transport())
    first = deployer.deploy(spec(source))["deployment_name"]
    second = deployer.deploy(spec(source, base_image=IMAGE.replace("c" * 64, "d" * 64)))["deployment_name"]
    assert first != second
    assert world.deployments.keys() == {second}
    assert world.endpoint["properties"]["traffic"] == {second: 100}  # type: ignore[index]
    assert len(azure.calls("DELETE", f"/deployments/{first}")) == 1
    assert deployer.state("iris", second) == "running"


def test_failed_provisioning_reports_deployment_logs_and_keeps_traffic(azure, cred, source) -> None:  # type: ignore[no-untyped-def]
    world = World(azure, fail_deployment=True)
    with pytest.raises(BackendError) as err:
        OnlineDeployer(TARGET, cred, azure.transport()).deploy(spec(source))
    text = str(err.value)
    assert "liveness probe failed" in text and "No module named 'sklearn'" in text
    logs = azure.calls("POST", "/getLogs")[0]
    assert logs.json["tail"] == 60 and logs.api_version
    assert world.endpoint["properties"]["traffic"] == {}  # type: ignore[index]


def test_state_and_delete_after_out_of_band_removal(azure, cred, source) -> None:  # type: ignore[no-untyped-def]
    World(azure)
    deployer = OnlineDeployer(TARGET, cred, azure.transport())
    dep = deployer.deploy(spec(source))["deployment_name"]
    deployer.delete("iris")
    assert len(azure.calls("DELETE", EP + "$")) == 1
    with pytest.raises(NotFound):
        deployer.state("iris", dep)
    deployer.delete("iris")  # already gone: not an error


def test_endpoint_conflict_is_a_backend_error(azure, cred, source) -> None:  # type: ignore[no-untyped-def]
    World(azure)
    azure.on("PUT", EP, arm_error(409, "Conflict", "Endpoint name iris is already in use in region westeurope"))
    with pytest.raises(BackendError, match=r"409.*already in use"):
        OnlineDeployer(TARGET, cred, azure.transport()).deploy(spec(source))


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"computeType": "local", "port": 8890}, ("Standard_DS3_v2", 1)),
        ({"containerResourceRequirements": {"cpu": 1, "memoryInGB": 1}, "numReplicas": 3}, ("Standard_DS2_v2", 3)),
        ({"containerResourceRequirements": {"cpu": 6}, "autoScaler": {"minReplicas": 2}}, ("Standard_DS4_v2", 2)),
    ],
)
def test_deployment_sizing(config: dict, expected: tuple) -> None:  # type: ignore[type-arg]
    assert deployment_sizing(config) == expected


def test_sizing_beyond_the_largest_sku_names_the_field() -> None:
    with pytest.raises(ValidationError) as err:
        deployment_sizing({"containerResourceRequirements": {"cpu": 64}})
    assert err.value.field == "deployment_config.containerResourceRequirements"


def test_code_asset_points_at_the_uploaded_blobs(azure, cred, source) -> None:  # type: ignore[no-untyped-def]
    World(azure)
    OnlineDeployer(TARGET, cred, azure.transport()).deploy(spec(source))
    uri = azure.calls("PUT", "/codes/mldeploy-iris/versions/")[0].json["properties"]["codeUri"]
    assert uri == f"https://{BLOB_HOST}/{CONTAINER}/mldeploy/code/iris/{tree_digest(source, keep_name=False, ignore=source_ignore)[0][7:]}/"
