"""ModelService accepts every InferenceDeployment option: a new deployment parameter without a component counterpart fails here."""

from __future__ import annotations

import inspect

from mldeploy import InferenceDeployment, ModelService

# Parameters whose component form differs on purpose: the component makes these itself from simpler inputs
# (models from paths, identities and the base image as child resources) and lets a caller pass its own.
SHAPED_BY_THE_COMPONENT = {"models", "push_identity", "pull_identity", "base_image", "deployment_config"}


def _params(cls: type) -> dict[str, inspect.Parameter]:
    return {n: p for n, p in inspect.signature(cls.__init__).parameters.items() if n not in ("self", "resource_name", "name", "opts")}


def test_every_inference_deployment_option_is_a_model_service_option() -> None:
    dep, svc = _params(InferenceDeployment), _params(ModelService)
    missing = sorted(set(dep) - set(svc))
    assert missing == [], f"ModelService lacks InferenceDeployment options {missing}: add them and pass them through"
    for name in set(dep) - SHAPED_BY_THE_COMPONENT:
        assert svc[name].default == dep[name].default, f"{name}: ModelService default {svc[name].default!r} != {dep[name].default!r}"
        if name != "service_name":  # the component names its children after it, so it takes a plain str
            assert svc[name].annotation == dep[name].annotation, f"{name}: {svc[name].annotation} != {dep[name].annotation}"
    assert "opts" in inspect.signature(ModelService.__init__).parameters


def test_model_service_passes_the_options_through() -> None:
    """The component's source hands each shared option to the InferenceDeployment it creates."""
    source = inspect.getsource(ModelService.__init__)
    call = source[source.index("InferenceDeployment(") :]
    for name in set(_params(InferenceDeployment)) - {"models", "push_identity", "pull_identity", "base_image", "base_python_version"}:
        assert f"{name}={name}" in call, f"ModelService does not pass {name} to InferenceDeployment"


def test_an_uppercase_service_name_is_reported_as_service_name() -> None:
    import pulumi
    import pytest
    from mldeploy.components.model_service import _check_own_inputs

    with pytest.raises(pulumi.RunError, match=r"ModelService svc: service_name: 'MyService' must be 1-63 lowercase"):
        _check_own_inputs("svc", "MyService")
    _check_own_inputs("svc", "my-service")
