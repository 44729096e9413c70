"""Target selection: an ``azure:`` value picks the Azure backends, with no I/O; providers' checks accept it."""

from __future__ import annotations

import pytest
from mldeploy.backends import select
from mldeploy.backends.azure.identity import EntraIdentityStore
from mldeploy.backends.azure.ml_registry import AzureMlModelRegistry
from mldeploy.errors import ValidationError
from mldeploy.resources.model_version import ModelVersionProvider
from mldeploy.resources.service_principal import ServicePrincipalProvider

from .conftest import ACR_ID, TARGET


def test_azure_values_select_azure_backends() -> None:
    assert isinstance(select.identity_store(TARGET), EntraIdentityStore)
    assert isinstance(select.identity_store("azure:" + ACR_ID), EntraIdentityStore)
    reg = select.model_registry(TARGET)
    assert isinstance(reg, AzureMlModelRegistry) and reg.location == TARGET
    with pytest.raises(ValidationError, match="container registry"):
        select.model_registry("azure:" + ACR_ID)
    with pytest.raises(ValidationError) as err:
        select.identity_store("azure:/subscriptions/nope", field="registry")
    assert err.value.field == "registry"


def test_provider_checks_accept_the_azure_target_without_io(tmp_path) -> None:  # type: ignore[no-untyped-def]
    res = ServicePrincipalProvider().check({}, {"role": "AcrPull", "display_name": "x", "registry": TARGET})
    assert res.failures == []
    (tmp_path / "m.pkl").write_bytes(b"x")
    res = ModelVersionProvider().check({}, {"model_name": "iris", "path": str(tmp_path / "m.pkl"), "registry": TARGET})
    assert res.failures == []


def test_inference_deployment_check_on_azure_skips_local_only_checks() -> None:
    from pathlib import Path

    from mldeploy.resources.inference_deployment import InferenceDeploymentProvider

    demo = Path(__file__).resolve().parents[3] / "stacks" / "demo"
    news = {
        "service_name": "iris",
        "target": TARGET,
        "inference_config": str(demo / "inferenceconfig.json"),
        "deployment_config": {"computeType": "aci", "containerResourceRequirements": {"cpu": 1, "memoryInGB": 2}},
        "base_image": "mldeployacr.azurecr.io/demo/base@sha256:" + "c" * 64,
        "models": [{"name": "iris", "version": 1, "download": "azureml://x", "digest": "sha256:" + "d" * 64}],
        "stack": "dev",
        "resource_urn": "urn:pulumi:dev::p::mldeploy:InferenceDeployment::svc",
    }
    res = InferenceDeploymentProvider().check({}, news)
    assert res.failures == [], [(f.property, f.reason) for f in res.failures]
    # Target-only rules fail at preview: one model per managed online deployment, sizes Azure offers.
    two = InferenceDeploymentProvider().check({}, {**news, "models": news["models"] * 2})
    assert [(f.reason.split(": ", 1)[0], "exactly one registered model" in f.reason) for f in two.failures] == [("models", True)]
    big = {"computeType": "aci", "containerResourceRequirements": {"cpu": 64, "memoryInGB": 2}}
    huge = InferenceDeploymentProvider().check({}, {**news, "deployment_config": big})
    assert [f.reason.split(": ", 1)[0] for f in huge.failures] == ["deployment_config.containerResourceRequirements"]
    bad = InferenceDeploymentProvider().check({}, {**news, "target": "azure:/subscriptions/x"})
    assert [f.reason.split(": ", 1)[0] for f in bad.failures] == ["target"]


def test_inference_deployment_check_rejects_an_endpoint_name_azure_ai_ml_rejects() -> None:
    from pathlib import Path

    from mldeploy.resources.inference_deployment import InferenceDeploymentProvider

    demo = Path(__file__).resolve().parents[3] / "stacks" / "demo"
    news = {
        "service_name": "1-starts-with-a-digit",
        "target": TARGET,
        "inference_config": str(demo / "inferenceconfig.json"),
        "deployment_config": {"computeType": "aci"},
        "base_image": "mldeployacr.azurecr.io/demo/base@sha256:" + "c" * 64,
        "models": [{"name": "iris", "version": 1, "download": "azureml://x", "digest": "sha256:" + "d" * 64}],
        "stack": "dev",
        "resource_urn": "urn:pulumi:dev::p::mldeploy:InferenceDeployment::svc",
    }
    res = InferenceDeploymentProvider().check({}, news)
    assert [f.reason.split(": ", 1)[0] for f in res.failures] == ["service_name"], [f.reason for f in res.failures]
