"""Image references and registry kinds: table-driven."""

from __future__ import annotations

import pickle

import pytest
from mldeploy.errors import ValidationError
from mldeploy.refs import (
    PrivateRegistry,
    PublicRegistry,
    WorkspaceRegistry,
    parse_image_ref,
    registry_from_inputs,
)

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("ref", "address", "repository", "tag", "digest"),
    [
        ("myregistry.example/myimage:v1", "myregistry.example", "myimage", "v1", None),
        ("myregistry.example/myimage", "myregistry.example", "myimage", None, None),
        ("127.0.0.1:5000/demo/base:v1", "127.0.0.1:5000", "demo/base", "v1", None),
        ("localhost/x", "localhost", "x", None, None),
        ("localhost:5000/a/b/c:1.0-rc_1", "localhost:5000", "a/b/c", "1.0-rc_1", None),
        (f"127.0.0.1:5000/demo/base@{D}", "127.0.0.1:5000", "demo/base", None, D),
        (f"127.0.0.1:5000/demo/base:v1@{D}", "127.0.0.1:5000", "demo/base", "v1", D),
        ("ubuntu:16.04", "docker.io", "library/ubuntu", "16.04", None),
        ("ubuntu", "docker.io", "library/ubuntu", None, None),
        ("mcr/azureml-base:latest", "docker.io", "mcr/azureml-base", "latest", None),
        ("mcr.microsoft.com/azureml/base:intelmpi2018.3-ubuntu16.04", "mcr.microsoft.com", "azureml/base", "intelmpi2018.3-ubuntu16.04", None),
        ("my-registry.example/a__b/c.d-e:TAG", "my-registry.example", "a__b/c.d-e", "TAG", None),
    ],
)
def test_parse_valid(ref: str, address: str, repository: str, tag: str | None, digest: str | None) -> None:
    got = parse_image_ref(ref)
    assert (got.address, got.repository, got.tag, got.digest) == (address, repository, tag, digest)


@pytest.mark.parametrize(
    ("ref", "says"),
    [
        ("", "empty image reference"),
        ("myregistry.example/MyImage:v1", "component 'MyImage' is not valid"),
        ("myregistry.example/myimage:", "is not a valid tag"),
        ("myregistry.example/myimage:-v1", "is not a valid tag"),
        ("myregistry.example/myimage:" + "x" * 129, "is not a valid tag"),
        ("myregistry.example//myimage", "empty path component"),
        ("myregistry.example/myimage/", "empty path component"),
        ("myregistry.example/myimage@sha256:abc", "is not 'sha256:' followed by 64"),
        ("myregistry.example/my image", "whitespace"),
        ("https://myregistry.example/myimage", "no scheme"),
        ("myregistry.example:99999/x", "out of range"),
        ("my_registry.example/x", "is not a registry address"),
        ("a--/b", "component 'a--' is not valid"),
        (":v1", "no repository"),
    ],
)
def test_parse_invalid(ref: str, says: str) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_image_ref(ref, "base_image")
    assert exc.value.field == "base_image"
    assert says in exc.value.message


def test_str_and_pinned_round_trip() -> None:
    ref = parse_image_ref("127.0.0.1:5000/demo/base:v1")
    assert str(ref) == "127.0.0.1:5000/demo/base:v1"
    assert ref.pinned(D) == f"127.0.0.1:5000/demo/base@{D}"
    assert parse_image_ref(ref.pinned(D)).digest == D


WS = "127.0.0.1:5000"


@pytest.mark.parametrize(
    ("registry", "user", "pw", "kind", "want"),
    [
        ("local", None, None, None, WorkspaceRegistry(address=WS)),
        (None, None, None, None, WorkspaceRegistry(address=WS)),
        (WS, None, None, None, WorkspaceRegistry(address=WS)),
        ("myregistry.example", None, None, None, PublicRegistry(address="myregistry.example")),
        ("myregistry.example", "sp", "pw", None, PrivateRegistry(address="myregistry.example", username="sp", password="pw")),
        ("local", "sp", "pw", None, PrivateRegistry(address=WS, username="sp", password="pw")),
        (WS, None, None, "public", PublicRegistry(address=WS)),
    ],
)
def test_registry_kinds(registry, user, pw, kind, want) -> None:  # type: ignore[no-untyped-def]
    got = registry_from_inputs(registry, WS, user, pw, kind)
    assert type(got) is type(want) and got.address == want.address
    if isinstance(got, PrivateRegistry):
        assert got.username == want.username and got.password.get_secret_value() == "pw"


@pytest.mark.parametrize(
    ("registry", "user", "pw", "kind", "field", "says"),
    [
        ("myregistry.example", "sp", None, None, "password", "password missing"),
        ("myregistry.example", None, None, "private", "username", "username and password missing"),
        ("myregistry.example", "sp", "pw", "public", "username", "takes no username/password"),
        ("myregistry.example", None, None, "workspace", "registry", "the workspace's registry is"),
        ("myregistry.example", None, None, "acr", "registry_kind", "unknown registry kind"),
        ("not a host", None, None, None, "registry", "is not a registry address"),
    ],
)
def test_registry_kind_errors(registry, user, pw, kind, field, says) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError) as exc:
        registry_from_inputs(registry, WS, user, pw, kind)
    assert exc.value.field == field
    assert says in exc.value.message


def test_private_registry_password_never_shows() -> None:
    reg = PrivateRegistry(address="r.example", username="sp", password="hunter2-secret")
    assert "hunter2-secret" not in repr(reg) and "hunter2-secret" not in str(reg)
    assert "hunter2-secret" not in reg.model_dump_json()
    assert pickle.loads(pickle.dumps(reg)).password.get_secret_value() == "hunter2-secret"
