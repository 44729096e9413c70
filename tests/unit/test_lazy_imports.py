"""What a Pulumi program pays for ``import mldeploy``: no pydantic until a model is asked for (``mldeploy._lazy``).

Every ``pulumi`` command starts the program, which imports mldeploy to construct resources; the pydantic
models cost about 85 ms to import, and the program needs them only for an inference config that names a
``baseImageRegistry``. These tests run a fresh interpreter, as the language host does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import mldeploy
import pytest
from mldeploy._lazy import LazyModule
from mldeploy.resources import inference_deployment as idp

#: (yaml is not among them: pulumi itself imports it)
HEAVY = ("pydantic", "packaging.specifiers", "mldeploy.config", "mldeploy.refs", "mldeploy.requirements", "mldeploy.environment")


def _loaded_after(code: str) -> set[str]:
    probe = f"import sys, json; before = set(sys.modules); {code}; print(json.dumps(sorted(set(sys.modules) - before)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out))


def test_importing_mldeploy_and_its_resources_loads_no_pydantic() -> None:
    loaded = _loaded_after("import pulumi; import mldeploy; from mldeploy import BaseImage, InferenceDeployment, ModelService, ModelVersion, ServicePrincipal")
    assert "mldeploy.resources.inference_deployment" in loaded  # the probe did import the resources
    assert sorted(loaded & set(HEAVY)) == []


def test_every_exported_name_resolves_and_the_models_load_when_asked_for() -> None:
    for name in mldeploy.__all__:
        assert getattr(mldeploy, name) is not None, name
    assert "pydantic" in _loaded_after("import mldeploy; mldeploy.InferenceConfig")
    assert {"BaseImageRegistry", "ImageRequirements"} <= set(dir(mldeploy))
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        mldeploy.NoSuchThing  # noqa: B018


def test_lazy_module_loads_once_under_concurrent_first_use() -> None:
    lazy = LazyModule("mldeploy.requirements")
    seen: list[object] = []
    threads = [threading.Thread(target=lambda: seen.append(lazy.ImageRequirements)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    from mldeploy.requirements import ImageRequirements

    assert seen == [ImageRequirements] * 8
    with pytest.raises(AttributeError):
        lazy.ImageRequirements = None


@pytest.mark.parametrize(
    ("doc", "names"),
    [
        ({"entryScript": "score.py"}, False),
        ({"entryScript": "score.py", "baseImageRegistry": None}, False),
        ({"entryScript": "score.py", "baseImageRegistry": {"address": "r.example"}}, True),
        ({"entry_script": "score.py", "base_image_registry": "r.example"}, True),
        ([1, 2], True),  # not an object: the full reading reports it
    ],
)
def test_the_program_reads_the_models_only_for_a_base_image_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, doc: object, names: bool) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "inferenceconfig.json"
    path.write_text(json.dumps(doc))
    assert idp._names_base_image_registry(str(path)) is names


def test_an_unreadable_inference_config_is_left_to_the_full_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.json").write_text("{not json")
    assert idp._names_base_image_registry(str(tmp_path / "broken.json")) is True
    assert idp._names_base_image_registry(str(tmp_path / "missing.json")) is True
    # and the full reading still gives nothing for it: check() names the problem
    assert idp._base_image_registry(None, str(tmp_path / "broken.json")) == (None, None)
