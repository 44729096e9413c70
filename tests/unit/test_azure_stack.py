"""stacks/azure's program under Pulumi's mocks: the resources it declares on each target.

No engine, no Azure, no Docker: ``pulumi.runtime.set_mocks`` answers every
resource registration and invoke, and records them. The same program file runs
with ``mldeploy:target`` = ``azure`` and = ``local``; only the config differs.
"""

from __future__ import annotations

import asyncio
import runpy
from pathlib import Path
from typing import Any

import pulumi
import pytest

pytest.importorskip("pulumi_azure_native", reason="the azure extra is not installed (pip install -e '.[test]')")

STACK = Path(__file__).resolve().parents[2] / "stacks" / "azure"
SUB = "00000000-0000-0000-0000-0000000000aa"
TENANT = "00000000-0000-0000-0000-0000000000bb"


class Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[tuple[str, str, dict[str, Any]]] = []
        self.invokes: list[str] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append((args.typ, args.name, dict(args.inputs)))
        outs = dict(args.inputs)
        provider = {
            "azure-native:resources:ResourceGroup": ("", ""),
            "azure-native:storage:StorageAccount": ("Microsoft.Storage/storageAccounts", ""),
            "azure-native:keyvault:Vault": ("Microsoft.KeyVault/vaults", ""),
            "azure-native:applicationinsights:Component": ("Microsoft.Insights/components", ""),
            "azure-native:containerregistry:Registry": ("Microsoft.ContainerRegistry/registries", ""),
            "azure-native:machinelearningservices:Workspace": ("Microsoft.MachineLearningServices/workspaces", ""),
        }.get(args.typ)
        if args.typ == "azure-native:resources:ResourceGroup":
            outs["name"] = f"{args.name}0"
            return f"/subscriptions/{SUB}/resourceGroups/{args.name}0", outs
        if provider:
            outs["name"] = f"{args.name}0"
            if args.typ.endswith("Registry"):
                outs["login_server"] = f"{args.name}0.azurecr.io"
            group = outs.get("resource_group_name") or "rg"
            return f"/subscriptions/{SUB}/resourceGroups/{group}/providers/{provider[0]}/{args.name}0", outs
        return f"{args.name}-id", outs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        self.invokes.append(args.token)
        if args.token == "azure-native:authorization:getClientConfig":
            return {"clientId": "c", "objectId": "o", "subscriptionId": SUB, "tenantId": TENANT}, []
        return {}, []


def run(config: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Mocks:
    # The base image's FROM is looked up in Docker at program time; not what this test is about.
    monkeypatch.setattr("mldeploy.resources.base_image.resolve_parent", lambda ref: "sha256:" + "0" * 64)
    asyncio.set_event_loop(asyncio.new_event_loop())  # a fresh loop, whatever ran before in this process
    mocks = Mocks()
    pulumi.runtime.set_mocks(mocks, project="mldeploy-azure", stack="dev", preview=True)
    pulumi.runtime.set_all_config(config)

    @pulumi.runtime.test
    def program() -> Any:
        runpy.run_path(str(STACK / "__main__.py"), run_name="__main__")
        return pulumi.Output.from_input(None)

    program()
    pulumi.runtime.set_all_config({})
    return mocks


def _types(mocks: Mocks) -> list[str]:
    return sorted(t for t, _n, _i in mocks.resources)


MLDEPLOY = [
    "mldeploy:index:ModelService",
    "pulumi-python:dynamic/mldeploy:BaseImage",
    "pulumi-python:dynamic/mldeploy:InferenceDeployment",
    "pulumi-python:dynamic/mldeploy:ModelVersion",
    "pulumi-python:dynamic/mldeploy:ServicePrincipal",
    "pulumi-python:dynamic/mldeploy:ServicePrincipal",
]
AZURE = [
    "azure-native:applicationinsights:Component",
    "azure-native:containerregistry:Registry",
    "azure-native:keyvault:Vault",
    "azure-native:machinelearningservices:Workspace",
    "azure-native:resources:ResourceGroup",
    "azure-native:storage:StorageAccount",
]


def _inputs(mocks: Mocks, typ: str) -> list[dict[str, Any]]:
    return [i for t, _n, i in mocks.resources if t == typ]


def test_azure_target_creates_the_workspace_and_deploys_on_it(monkeypatch: pytest.MonkeyPatch) -> None:
    mocks = run({"mldeploy:target": "azure", "azure-native:location": "westeurope"}, monkeypatch)
    assert _types(mocks) == sorted(AZURE + MLDEPLOY)
    assert "azure-native:authorization:getClientConfig" in mocks.invokes

    (ws,) = _inputs(mocks, "azure-native:machinelearningservices:Workspace")
    assert ws["identity"] == {"type": "SystemAssigned"}
    for key, provider in (
        ("containerRegistry", "Microsoft.ContainerRegistry/registries"),
        ("keyVault", "Microsoft.KeyVault/vaults"),
        ("storageAccount", "Microsoft.Storage/storageAccounts"),
        ("applicationInsights", "Microsoft.Insights/components"),
    ):
        assert f"/providers/{provider}/" in ws[key], key
    (vault,) = _inputs(mocks, "azure-native:keyvault:Vault")
    assert vault["properties"]["tenantId"] == TENANT and vault["properties"]["enableRbacAuthorization"] is True

    target_prefix = f"azure:/subscriptions/{SUB}/resourceGroups/"
    sps = _inputs(mocks, "pulumi-python:dynamic/mldeploy:ServicePrincipal")
    assert sorted(sp["role"] for sp in sps) == ["AcrPull", "AcrPush"]
    assert all(sp["registry"].startswith(target_prefix) and "/workspaces/mldeploy-ws0" in sp["registry"] for sp in sps)
    (mv,) = _inputs(mocks, "pulumi-python:dynamic/mldeploy:ModelVersion")
    assert mv["registry"] == sps[0]["registry"] and mv["model_name"] == "iris"
    (dep,) = _inputs(mocks, "pulumi-python:dynamic/mldeploy:InferenceDeployment")
    # The endpoint name is a DNS label unique per region: a stable per-stack suffix, valid for azure-ai-ml.
    from mldeploy.backends.azure.naming import check_endpoint_name, default_endpoint_name

    assert dep["target"] == sps[0]["registry"] and dep["service_name"] == default_endpoint_name("mldeploy-iris", "", pulumi.get_project(), pulumi.get_stack())
    check_endpoint_name(dep["service_name"])
    (base,) = _inputs(mocks, "pulumi-python:dynamic/mldeploy:BaseImage")
    assert base["repository"] == f"mldeploy/{dep['service_name']}-base"
    assert base["build_on"] == sps[0]["registry"]  # built on the workspace's registry (`az acr build`)
    assert base["requirements"]["conda"] is True  # Azure ML builds the environment with the image's conda


def test_an_existing_workspace_from_config_creates_no_azure_resources(monkeypatch: pytest.MonkeyPatch) -> None:
    ws = f"/subscriptions/{SUB}/resourceGroups/mine/providers/Microsoft.MachineLearningServices/workspaces/prod"
    mocks = run({"mldeploy:target": "azure", "mldeploy:workspace": ws}, monkeypatch)
    assert _types(mocks) == sorted(MLDEPLOY)
    (dep,) = _inputs(mocks, "pulumi-python:dynamic/mldeploy:InferenceDeployment")
    assert dep["target"] == "azure:" + ws


def test_local_target_is_the_same_program_without_azure(monkeypatch: pytest.MonkeyPatch) -> None:
    mocks = run({"mldeploy:target": "local"}, monkeypatch)
    assert _types(mocks) == sorted(MLDEPLOY)
    assert not any(t.startswith("azure-native:") for t, _n, _i in mocks.resources)
    sps = _inputs(mocks, "pulumi-python:dynamic/mldeploy:ServicePrincipal")
    assert {sp["registry"] for sp in sps} == {"local"}
    (dep,) = _inputs(mocks, "pulumi-python:dynamic/mldeploy:InferenceDeployment")
    assert dep["target"] == "local"
    (base,) = _inputs(mocks, "pulumi-python:dynamic/mldeploy:BaseImage")
    assert base.get("build_on") is None  # locally, Docker Engine builds
