"""The public API: exported names are sorted, importable, and the resources have readable types."""

from __future__ import annotations

import mldeploy


def test_all_is_sorted_and_importable() -> None:
    assert mldeploy.__all__ == sorted(mldeploy.__all__)
    for name in mldeploy.__all__:
        assert getattr(mldeploy, name) is not None


def test_resource_types_are_readable() -> None:
    for cls in (mldeploy.ModelVersion, mldeploy.ServicePrincipal, mldeploy.BaseImage, mldeploy.InferenceDeployment):
        assert cls._resource_type_name == f"dynamic/mldeploy:{cls.__name__}"  # type: ignore[attr-defined]
