"""ServicePrincipal provider logic: validation, diff, pickling; the htpasswd store on a temp dir."""

from __future__ import annotations

import pickle
from pathlib import Path

import bcrypt
import dill
import pytest
from mldeploy.backends.htpasswd import HtpasswdIdentityStore
from mldeploy.errors import NotFound
from mldeploy.resources.service_principal import ServicePrincipalProvider


@pytest.fixture
def store(tmp_path: Path) -> HtpasswdIdentityStore:
    (tmp_path / "htpasswd").touch()
    (tmp_path / "htpasswd-push").touch()
    return HtpasswdIdentityStore(tmp_path, "127.0.0.1:5000")


def _users(path: Path) -> dict[str, str]:
    return dict(line.split(":", 1) for line in path.read_text().splitlines())


@pytest.mark.parametrize(
    ("news", "field", "text"),
    [
        ({"role": "Owner", "display_name": "x"}, "role", "valid roles: AcrPull, AcrPush"),
        ({"role": "AcrPull", "display_name": " "}, "display_name", "non-empty"),
        ({"role": "AcrPull", "display_name": "x", "expires_in_days": 0}, "expires_in_days", ">= 1"),
        ({"role": "AcrPull", "display_name": "x", "registry": "elsewhere.example"}, "registry", "unknown registry"),
    ],
)
def test_check_names_the_field(news: dict, field: str, text: str) -> None:  # type: ignore[type-arg]
    res = ServicePrincipalProvider().check({}, news)
    assert [f.property for f in res.failures] == [field]
    assert text in res.failures[0].reason


def test_check_accepts_unknowns() -> None:
    from pulumi.runtime.rpc import UNKNOWN

    res = ServicePrincipalProvider().check({}, {"role": UNKNOWN, "display_name": UNKNOWN})
    assert res.failures == []


def test_diff_replace_vs_update() -> None:
    p = ServicePrincipalProvider()
    old = {"registry": "local", "role": "AcrPull", "display_name": "a", "rotate_on": "1", "expires_in_days": None}
    assert p.diff("id", old, dict(old)).changes is False
    d = p.diff("id", old, {**old, "role": "AcrPush"})
    assert d.changes and d.replaces == ["role"]
    d = p.diff("id", old, {**old, "rotate_on": "2"})
    assert d.changes and d.replaces == []


def test_provider_pickles_by_reference() -> None:
    blob = dill.dumps(ServicePrincipalProvider(), recurse=True)
    assert b"mldeploy.resources.service_principal" in blob
    assert vars(pickle.loads(blob)) == {}


def test_store_roles_rotation_revocation(store: HtpasswdIdentityStore, tmp_path: Path) -> None:
    pull, pull_secret = store.create("Team Pull!", "AcrPull", None)
    push, _push_secret = store.create("team-push", "AcrPush", 30)
    assert pull.client_id.startswith("team-pull-")
    every, pushers = _users(tmp_path / "htpasswd"), _users(tmp_path / "htpasswd-push")
    assert set(every) == {pull.client_id, push.client_id}
    assert set(pushers) == {push.client_id}
    assert bcrypt.checkpw(pull_secret.encode(), every[pull.client_id].encode())
    assert pull_secret not in (tmp_path / "htpasswd").read_text()
    assert push.expires_at is not None and pull.expires_at is None

    _, new_secret = store.rotate(pull.client_id, None)
    h = _users(tmp_path / "htpasswd")[pull.client_id].encode()
    assert bcrypt.checkpw(new_secret.encode(), h)
    assert not bcrypt.checkpw(pull_secret.encode(), h)

    store.delete(push.client_id)
    assert push.client_id not in _users(tmp_path / "htpasswd")
    assert _users(tmp_path / "htpasswd-push") == {}
    with pytest.raises(NotFound):
        store.get(push.client_id)
    store.delete(push.client_id)  # deleting twice is fine


def test_expired_identity_is_gone(store: HtpasswdIdentityStore, tmp_path: Path) -> None:
    import json

    ident, _ = store.create("exp", "AcrPull", 1)
    meta = json.loads((tmp_path / "identities.json").read_text())
    meta[ident.client_id]["expires_at"] = "2000-01-01T00:00:00+00:00"
    (tmp_path / "identities.json").write_text(json.dumps(meta))
    with pytest.raises(NotFound):
        store.get(ident.client_id)
    assert ident.client_id not in (tmp_path / "htpasswd").read_text()


@pytest.mark.parametrize(
    ("news", "text"),
    [
        ({"role": "AcrPush", "display_name": "x", "repositories": []}, "non-empty list"),
        ({"role": "AcrPush", "display_name": "x", "repositories": ["Demo/Base"]}, "'Demo/Base' is not a repository name"),
        ({"role": "AcrPush", "display_name": "x", "repositories": ["a/../b"]}, "is not a repository name"),
        ({"role": "AcrPush", "display_name": "x", "repositories": ["a/b/c/*"]}, "one or two lowercase path components"),
        ({"role": "AcrPull", "display_name": "x", "repositories": ["demo/base"]}, "AcrPull identity cannot push"),
    ],
)
def test_check_repositories(news: dict, text: str) -> None:  # type: ignore[type-arg]
    res = ServicePrincipalProvider().check({}, news)
    assert [f.property for f in res.failures] == ["repositories"]
    assert text in res.failures[0].reason


def test_scoped_identity_files_and_grant(store: HtpasswdIdentityStore, tmp_path: Path) -> None:
    ident, secret = store.create("ci", "AcrPush", None, ["demo/base", "mldeploy/*"])
    cid = ident.client_id
    assert cid not in _users(tmp_path / "htpasswd-push")  # not unrestricted
    scope = tmp_path / "scopes" / f"u-{cid}"
    assert sorted(p.relative_to(scope).as_posix() for p in scope.rglob("*") if p.is_file()) == ["htpasswd", "r/demo/base@", "r/mldeploy/@"]
    assert _users(scope / "htpasswd")[cid] == _users(tmp_path / "htpasswd")[cid]
    assert bcrypt.checkpw(secret.encode(), _users(scope / "htpasswd")[cid].encode())
    assert oct(scope.stat().st_mode & 0o777) == "0o700" and oct((scope / "htpasswd").stat().st_mode & 0o777) == "0o600"
    assert store.grant(cid) == "AcrPush:demo/base,mldeploy/*"
    # Demoted out of band: the marker files go; set_scope restores them with the same hash.
    (scope / "r" / "demo" / "base@").unlink()
    (scope / "r" / "mldeploy" / "@").unlink()
    assert store.grant(cid) == "AcrPull"
    store.set_scope(cid, ["demo/base", "mldeploy/*"])
    assert store.grant(cid) == "AcrPush:demo/base,mldeploy/*"
    assert bcrypt.checkpw(secret.encode(), _users(scope / "htpasswd")[cid].encode())
    # Rotation keeps the scope; unscoping moves it to htpasswd-push; delete removes everything.
    _, new = store.rotate(cid, None)
    assert store.grant(cid) == "AcrPush:demo/base,mldeploy/*" and bcrypt.checkpw(new.encode(), _users(scope / "htpasswd")[cid].encode())
    store.set_scope(cid, None)
    assert store.grant(cid) == "AcrPush" and not scope.exists()
    store.delete(cid)
    with pytest.raises(NotFound):
        store.grant(cid)


def test_diff_sees_a_drifted_grant_as_an_update() -> None:
    p = ServicePrincipalProvider()
    old = {"registry": "local", "role": "AcrPush", "display_name": "a", "rotate_on": None, "expires_in_days": None,
           "repositories": None, "grant": "AcrPush"}
    assert p.diff("id", old, {k: v for k, v in old.items() if k != "grant"}).changes is False
    d = p.diff("id", {**old, "grant": "AcrPull"}, {k: v for k, v in old.items() if k != "grant"})
    assert d.changes and d.replaces == []
    assert p.diff("id", {k: v for k, v in old.items() if k != "grant"}, dict(old)).changes is False  # states from before: no churn
