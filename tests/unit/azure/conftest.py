"""Shared Azure fixtures: a workspace and its registry as ARM answers them."""

from __future__ import annotations

import pytest

pytest.importorskip("azure.ai.ml", reason="the azure extra is not installed (pip install -e '.[test]')")

from .fakes import FakeAzure, FakeCredential, FakeGraph

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


def workspace_body() -> dict:  # type: ignore[type-arg]
    return {
        "id": WS_ID,
        "name": WS,
        "type": "Microsoft.MachineLearningServices/workspaces",
        "location": "westeurope",
        "kind": "Default",
        "properties": {
            "containerRegistry": ACR_ID,
            "storageAccount": f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Storage/storageAccounts/{STORAGE}",
            "provisioningState": "Succeeded",
            "discoveryUrl": "https://westeurope.api.azureml.ms/discovery",
            "mlFlowTrackingUri": "azureml://westeurope.api.azureml.ms/mlflow/v1.0" + WS_ID,
        },
    }


def registry_body() -> dict:  # type: ignore[type-arg]
    return {
        "id": ACR_ID,
        "name": ACR,
        "type": "Microsoft.ContainerRegistry/registries",
        "location": "westeurope",
        "sku": {"name": "Basic", "tier": "Basic"},
        "properties": {"loginServer": LOGIN, "provisioningState": "Succeeded", "adminUserEnabled": False},
    }


@pytest.fixture
def azure() -> FakeAzure:
    fake = FakeAzure()
    fake.on("GET", f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.MachineLearningServices/workspaces/{WS}", (200, workspace_body(), {}))
    fake.on("GET", ACR_ID, (200, registry_body(), {}))
    return fake


@pytest.fixture
def graph() -> FakeGraph:
    return FakeGraph()


@pytest.fixture
def cred() -> FakeCredential:
    return FakeCredential()
