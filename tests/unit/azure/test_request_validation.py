"""The request-body validator (validate.py, run on every body in every Azure test's teardown) accepts what
the Azure tools really sent (recorded requests) and rejects what Azure would not accept."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from . import validate
from .fakes import Recorded
from .replay import load

ML = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws"
ACR = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/r"


def request(method: str, url: str, body: Any) -> Recorded:
    if not url.startswith("http"):
        url = "https://management.azure.com" + url
    parts = urlsplit(url)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Recorded(method, url, parts.path, parse_qs(parts.query), {"Content-Type": "application/json"}, raw)


RECORDED = [
    # The endpoint PUT only: the recorded deployment PUT (api-version 2022-02-01-preview) still sends
    # privateNetworkConnection, a field the installed SDK's model (and API version) no longer has.
    ("azure-ai-ml/test_online_deployment.pyTestOnlineDeploymenttest_online_deployment_skip_script_validation.excerpt.json", "PUT", "online-endp4e07306aec3d482?"),
    ("azure-ai-ml/test_model.pyTestModeltest_crud_file.json", "PUT", "/versions/3"),
    ("azure-cli/test_create_for_rbac_with_password_with_assignment.excerpt.yaml", "PUT", "/roleAssignments/"),
    ("azure-cli/test_create_for_rbac_with_password_with_assignment.excerpt.yaml", "POST", "/v1.0/applications"),
    ("azure-cli/test_create_for_rbac_with_password_with_assignment.excerpt.yaml", "POST", "/addPassword"),
    ("azure-cli/test_create_for_rbac_with_password_with_assignment.excerpt.yaml", "POST", "/servicePrincipals"),
    ("azure-cli/test_acr_abac_build.excerpt.yaml", "POST", "/scheduleRun"),
]


@pytest.mark.parametrize(("rel", "method", "part"), RECORDED)
def test_recorded_requests_pass(rel: str, method: str, part: str) -> None:
    """What azure-ai-ml and azure-cli really sent is accepted (the validator is not stricter than Azure's tools)."""
    for i in load(rel):
        if i.method == method and part in i.url and i.request_body is not None:
            body = i.request_body if isinstance(i.request_body, (dict, list)) else json.loads(i.request_body)
            url = i.url
            if "roleAssignments" in url:
                url = url.replace("api-version=2020-04-01-preview", "api-version=2022-04-01")  # the installed SDK's version
            validate.check(request(method, url, body))


BAD = [
    ("PUT", ML + "/onlineEndpoints/ep", {"location": "x", "properties": {"authMode": "Keys"}}, "not one of"),
    ("PUT", ML + "/onlineEndpoints/ep", {"location": "x", "properties": {"authMode": "Key", "scoringURI": "u"}}, "scoringURI: not a field"),
    ("PUT", ML + "/onlineEndpoints/ep/deployments/d", {"location": "x", "properties": {"endpointComputeType": "Managed", "instanceTyp": "S"}}, "instanceTyp: not a field of ManagedOnlineDeployment"),
    ("PUT", ML + "/models/m/versions/1", {"properties": {"modelType": "custom_model", "modelURL": "x"}}, "modelURL: not a field"),
    ("PUT", "/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/1?api-version=2022-04-01",
     {"properties": {"roleDefinitionId": "/x"}}, "principal_id"),
    ("PUT", "/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/1?api-version=2022-04-01",
     {"properties": {"roleDefinitionId": "/x", "principalId": "p", "principalType": "App"}}, "principalType"),
    ("POST", ACR + "/scheduleRun?api-version=2019-06-01-preview",
     {"type": "DockerBuildRequest", "dockerFilePath": "Dockerfile", "platform": {"os": "Linux"}, "imageName": ["x"]}, "imageName: dropped"),
    ("POST", ACR + "/scheduleRun?api-version=2019-06-01-preview", {"type": "DockerBuildRequest", "platform": {"os": "Linux"}}, "docker_file_path"),
    ("POST", ACR + "/scheduleRun?api-version=2019-06-01-preview", {"type": "DockerBuildRequest", "dockerFilePath": "D", "platform": {"os": "linux-amd64"}}, "platform.os"),
    ("POST", ACR + "/scheduleRun?api-version=2025-03-01-preview",
     {"type": "DockerBuildRequest", "dockerFilePath": "D", "platform": {"os": "Linux"}, "credentials": {"sourceRegistry": {"identity": "caller"}}}, "credentials"),
    ("POST", "https://graph.microsoft.com/v1.0/applications", {"displayName": "x", "tagz": ["a"]}, "tagz"),
    ("POST", ML + "/somethingNew", {"a": 1}, "no validation rule covers"),
]


@pytest.mark.parametrize(("method", "url", "body", "problem"), BAD)
def test_bodies_azure_would_not_accept_are_rejected(method: str, url: str, body: Any, problem: str) -> None:
    with pytest.raises(AssertionError) as err:
        validate.check(request(method, url, body))
    assert problem in str(err.value)
