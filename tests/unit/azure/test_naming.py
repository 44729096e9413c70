"""Azure ML endpoint/deployment names: mldeploy's preview check against azure-ai-ml's own validator."""

from __future__ import annotations

import pytest
from mldeploy.backends.azure._common import translate
from mldeploy.backends.azure.naming import check_deployment_name, check_endpoint_name, default_endpoint_name
from mldeploy.errors import ValidationError

NAMES = [
    ("iris", True),
    ("mldeploy-iris", True),  # the old default: valid, but the same for every stack in a region
    ("abc", True),
    ("ab", False),  # too short
    ("a" * 32, True),
    ("a" * 33, False),  # too long
    ("A1-b2-C3", True),
    ("9iris", False),  # starts with a digit: allowed by mldeploy's old [a-z0-9][a-z0-9-]{0,62}
    ("-iris", False),
    ("iris-", False),  # ends with '-'
    ("iris_ep", False),
    ("iris.ep", False),
    ("iris ep", False),
    ("irís", False),
    ("mldeploy-iris-production-westeurope-01", False),  # 38 characters
]


def sdk_accepts(name: str, is_deployment: bool = False) -> bool:
    """azure-ai-ml's own rule (entities/_endpoint/_endpoint_helpers.validate_endpoint_or_deployment_name)."""
    from azure.ai.ml.entities._endpoint._endpoint_helpers import validate_endpoint_or_deployment_name
    from azure.ai.ml.exceptions import ValidationException

    try:
        validate_endpoint_or_deployment_name(name, is_deployment=is_deployment)
        return True
    except ValidationException:
        return False


@pytest.mark.parametrize(("name", "valid"), NAMES)
def test_endpoint_names_as_azure_ml_validates_them(name: str, valid: bool) -> None:
    assert sdk_accepts(name) is valid, "the table matches azure-ai-ml"
    if valid:
        check_endpoint_name(name)
        check_deployment_name(name)
    else:
        with pytest.raises(ValidationError) as err:
            check_endpoint_name(name, "service_name")
        assert err.value.field == "service_name" and "3-32 letters, digits or '-'" in err.value.message
        assert not sdk_accepts(name, is_deployment=True)
        with pytest.raises(ValidationError):
            check_deployment_name(name)


@pytest.mark.parametrize("service", ["iris", "mldeploy-iris", "9-Iris_Service.v2", "x" * 80, "---"])
def test_default_endpoint_names_are_valid_stable_and_unique_per_stack(service: str) -> None:
    a = default_endpoint_name(service, "sub", "ws", "proj", "dev")
    assert sdk_accepts(a) and len(a) <= 32
    assert a == default_endpoint_name(service, "sub", "ws", "proj", "dev"), "no drift between runs"
    assert a != default_endpoint_name(service, "sub", "ws", "proj", "prod"), "another stack, another name"


def test_deployment_names_mldeploy_makes_are_valid() -> None:
    assert sdk_accepts("mld-0123456789ab", is_deployment=True)
    check_deployment_name("mld-0123456789ab")


def test_an_sdk_message_that_starts_with_a_newline_keeps_its_text() -> None:
    """azure-ai-ml raises ValidationException("The name for an endpoint must start ...\\n and only consist ...");
    other MlExceptions start with a newline: the translation must not shrink them to an empty message."""
    from azure.ai.ml.exceptions import ErrorTarget, MlException, ValidationException

    try:
        validate = __import__("azure.ai.ml.entities._endpoint._endpoint_helpers", fromlist=["x"]).validate_endpoint_or_deployment_name
        validate("9iris")
    except ValidationException as exc:
        err = translate(exc, "creating endpoint 9iris")
    assert "must start with an upper- or lowercase letter and only consist of '-'s and alphanumeric characters" in str(err)
    blank_first = MlException(message="\nThe name for an endpoint must be at least 3 and at most 32 characters long.", no_personal_data_message="x", target=ErrorTarget.ENDPOINT)
    text = str(translate(blank_first, "creating endpoint ab"))
    assert text.endswith("The name for an endpoint must be at least 3 and at most 32 characters long."), text
