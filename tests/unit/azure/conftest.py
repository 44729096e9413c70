"""Shared Azure fixtures: a workspace and its registry as ARM answers them."""

from __future__ import annotations

import pytest

pytest.importorskip("azure.ai.ml", reason="the azure extra is not installed (pip install -e '.[test]')")

import json
from collections.abc import Iterator

from . import replay, validate
from .fakes import FakeAzure, FakeCredential, FakeGraph
from .replay import pick

SUB = "00000000-0000-0000-0000-0000000000aa"
RG = "mldeploy-rg"
WS = "mldeploy-ws"
ACR = "mldeployacr"
WS_ID = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.MachineLearningServices/workspaces/{WS}"
ACR_ID = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ContainerRegistry/registries/{ACR}"
TARGET = "azure:" + WS_ID
LOGIN = f"{ACR}.azurecr.io"
STORAGE = "mldeploystore"


def pytest_configure(config: pytest.Config) -> None:
    # msgraph-sdk's generated request builders warn about their own deprecated classes on every call.
    config.addinivalue_line("filterwarnings", "ignore:This class is deprecated:DeprecationWarning")
    config.addinivalue_line("filterwarnings", "ignore:GetQueryParameters is deprecated:DeprecationWarning")


def rebase(body: object, *pairs: tuple[str, str]) -> dict:  # type: ignore[type-arg]
    """A recorded body with the recording's identifiers swapped for this test's (the test proxy shortened the
    recorded subscription id to 33 characters, which no real ARM id has)."""
    text = json.dumps(body)
    for old, new in pairs:
        text = text.replace(old, new)
    return json.loads(text)  # type: ignore[no-any-return]


RECORDED_WS = "/subscriptions/00000000-0000-0000-0000-000000000/resourceGroups/00000/providers/Microsoft.MachineLearningServices/workspaces/00000"


def workspace_body() -> dict:  # type: ignore[type-arg]
    """The recorded workspace (azure-ai-ml's online deployment recording), in our subscription, with our registry."""
    recorded = pick("azure-ai-ml/test_online_deployment.pyTestOnlineDeploymenttest_online_deployment_skip_script_validation.excerpt.json", "GET", "/workspaces/00000?").json
    return rebase(
        recorded,
        ("/subscriptions/00000000-0000-0000-0000-000000000/resourceGroups/00000/providers/Microsoft.ContainerRegistry/registries/crno4nluz7tny6e", ACR_ID),
        (RECORDED_WS, WS_ID),
        ("/subscriptions/00000000-0000-0000-0000-000000000/resourceGroups/00000/", f"/subscriptions/{SUB}/resourceGroups/{RG}/"),
    )


def registry_body(example: str = "azure-rest-api-specs/RegistryGet.json") -> dict:  # type: ignore[type-arg]
    """The registry as the azure-rest-api-specs example answers it (roleAssignmentMode LegacyRegistryPermissions), renamed to ours."""
    _, body, _ = replay.example(example)
    return rebase(body, ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/myResourceGroup/providers/Microsoft.ContainerRegistry/registries/myRegistry", ACR_ID), ("myRegistry", ACR))


def _validated(fake: FakeAzure | FakeGraph) -> None:
    """Every JSON body a test made the backends send must match the SDK models (see validate.py)."""
    for req in fake.requests:
        validate.check(req)


@pytest.fixture
def azure() -> Iterator[FakeAzure]:
    fake = FakeAzure()
    fake.on("GET", f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.MachineLearningServices/workspaces/{WS}", (200, workspace_body(), {}))
    fake.on("GET", ACR_ID, (200, registry_body(), {}))
    yield fake
    _validated(fake)


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph()
    yield fake
    _validated(fake)


@pytest.fixture
def cred() -> FakeCredential:
    return FakeCredential()
