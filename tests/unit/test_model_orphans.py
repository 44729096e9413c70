"""A model version registered by a killed run (the embedded MLflow registry, real): adopted by the next create, removed by delete."""

from __future__ import annotations

from pathlib import Path

import pytest
from mldeploy.backends import model_orphans
from mldeploy.backends.mlflow_registry import MlflowModelRegistry
from mldeploy.hashing import tree_digest

URN = "urn:pulumi:dev::shop::pulumi-python:dynamic/mldeploy:ModelVersion::m"


@pytest.fixture
def reg(tmp_path: Path) -> MlflowModelRegistry:
    return MlflowModelRegistry(tmp_path / "mlflow")


def _model(tmp_path: Path, content: str) -> tuple[str, str]:
    d = tmp_path / f"model-{content}"
    d.mkdir()
    (d / "w.txt").write_text(content)
    return str(d), tree_digest(d)[0]


def _killed_create(reg: MlflowModelRegistry, path: str, digest: str) -> int:
    """What a run killed right after registering leaves: a version with the pending tag, unknown to the state."""
    return reg.create("m", path, digest, "", model_orphans.registration_tags(URN), {}).version


def _versions(reg: MlflowModelRegistry) -> list[int]:
    client = reg._client()
    return sorted(int(v.version) for v in client.search_model_versions("name = 'm'"))


def test_the_next_create_adopts_the_same_content_and_removes_other_pending_versions(reg: MlflowModelRegistry, tmp_path: Path) -> None:
    said: list[str] = []
    p1, d1 = _model(tmp_path, "one")
    p2, d2 = _model(tmp_path, "two")
    orphan_other = _killed_create(reg, p2, d2)
    orphan_same = _killed_create(reg, p1, d1)
    adopted = model_orphans.adopt_or_clean(reg, "m", d1, URN, said.append)
    assert adopted is not None and adopted.version == orphan_same and adopted.digest == d1
    assert _versions(reg) == [orphan_same] and orphan_other not in _versions(reg)
    assert model_orphans.PENDING_TAG not in (reg._client().get_model_version("m", str(orphan_same)).tags or {})
    assert any("adopting" in s for s in said) and any("removing" in s for s in said)


def test_another_resources_versions_and_confirmed_ones_are_left_alone(reg: MlflowModelRegistry, tmp_path: Path) -> None:
    _p1, d1 = _model(tmp_path, "one")
    p2, d2 = _model(tmp_path, "two")
    theirs = reg.create("m", p2, d2, "", model_orphans.registration_tags(URN + "-other"), {}).version
    recorded = _killed_create(reg, p2, d2)
    model_orphans.confirm(reg, "m", recorded)  # a create that returned: the old version of a replacement
    assert model_orphans.adopt_or_clean(reg, "m", d1, URN, lambda _: None) is None
    assert _versions(reg) == sorted([theirs, recorded])


def test_delete_takes_the_pending_versions_of_the_resource_with_it(reg: MlflowModelRegistry, tmp_path: Path) -> None:
    p1, d1 = _model(tmp_path, "one")
    p2, d2 = _model(tmp_path, "two")
    recorded = _killed_create(reg, p1, d1)
    model_orphans.confirm(reg, "m", recorded)
    _killed_create(reg, p2, d2)  # then the user runs destroy at once
    reg.delete("m", recorded)
    model_orphans.delete_pending(reg, "m", URN, recorded, lambda _: None)
    assert _versions(reg) == []


def test_a_copy_killed_mid_way_leaves_no_staging_directory_behind(reg: MlflowModelRegistry, tmp_path: Path) -> None:
    """A provider killed while copying leaves ``.staging-<pid>-*``; the next copy sweeps it, a live copy's is kept, delete frees all."""
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs
    store = reg.artifacts / "m"
    store.mkdir(parents=True)
    killed = store / f".staging-{dead.pid}-{'a' * 32}"
    (killed / "part").mkdir(parents=True)
    (killed / "part" / "w.bin").write_bytes(b"x" * 1024)
    live = store / f".staging-1-{'b' * 32}"  # pid 1 runs: a copy in progress elsewhere is left alone
    live.mkdir()
    p1, d1 = _model(tmp_path, "one")
    v = reg.create("m", p1, d1, "", {}, {}).version
    assert not killed.exists() and live.exists()
    live.rmdir()
    reg.delete("m", v)
    assert not store.exists()  # destroy frees the model's whole directory
