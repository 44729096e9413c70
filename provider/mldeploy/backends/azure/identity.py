"""``IdentityStore`` on Entra ID: an application, its service principal, a password, a role on the registry.

- create: ``POST /applications`` (tagged ``mldeploy``), ``POST /servicePrincipals``,
  ``POST /applications/{id}/addPassword`` (the secret, returned once), then an
  ``AcrPull``/``AcrPush`` role assignment scoped to the registry
  (``PUT {registry}/providers/Microsoft.Authorization/roleAssignments/{uuid}``).
  Entra ID and Azure RBAC replicate a new object for seconds to minutes:
  ``NoBackingApplicationObject``/404 from Graph right after the create and
  ``PrincipalNotFound`` from ARM are waited out with bounded back-off (about
  3.5 minutes, ``progress`` says what is awaited; the sleep is injectable),
  never answered by deleting. A definite failure after the application exists
  deletes it again: nothing half-made is left behind. ``create`` returns only
  once the registry accepts the new password and grants the role
  (``_until_usable``): a push seconds after creation would otherwise get 401.
  On a registry in ABAC mode
  the roles are "Container Registry Repository Reader/Writer" (AcrPull/AcrPush
  are not honoured there).
- get: the application by ``appId`` and its role assignment on the registry;
  a deleted application, a removed assignment or only expired passwords are ``NotFound``.
- rotate: ``addPassword`` (new), wait until the registry accepts it, then
  ``removePassword`` for every older key.
- update: ``PATCH`` the application's display name.
- delete: the role assignments on the registry, then the application (which
  takes its service principal with it). Missing is not an error.

Graph is msgraph-sdk (async, kiota over httpx); each call runs on its own event loop in a worker thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ...errors import BackendError, NotFound, ValidationError
from ..protocols import Identity
from ._common import AzureTarget, Backoff, _message, _root, azure_errors, call, error_code, parse_target, status_of, throttled, translate, with_retry
from .credentials import GRAPH_SCOPE
from .workspace import RegistryBound

T = TypeVar("T")
_log = logging.getLogger("mldeploy.azure")
ROLE_IDS = {
    "AcrPull": "7f951dda-4ed3-4680-a7ca-43fe172d538d",
    "AcrPush": "8311e382-0749-4cb8-b61a-304f252e45ec",
}
# A registry in ABAC mode (roleAssignmentMode: AbacRepositoryPermissions) ignores AcrPull/AcrPush; its
# equivalents are "Container Registry Repository Reader" / "... Writer" (Azure built-in roles, Containers).
ABAC_ROLE_IDS = {
    "AcrPull": "b93aa761-3e63-49ed-ac28-beffa264f7ac",
    "AcrPush": "2a1e307c-b015-4ebd-883e-5b7698a07328",
}
ABAC_ROLE_NAMES = {"AcrPull": "Container Registry Repository Reader", "AcrPush": "Container Registry Repository Writer"}


PROBE_REPOSITORY = "mldeploy-probe"  # a repository name in the token probe's scope; nothing is read or written


class _NotYet(Exception):
    """The registry does not accept the new identity yet."""


def _token_actions(token: str) -> set[str] | None:
    """The actions an ACR access token grants (its JWT ``access`` claim), without verifying it; None when
    the token does not say (not a JWT, or no ``access`` claim): then the 200 itself is taken as the answer."""
    import base64
    import json

    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    if not isinstance(claims, dict) or "access" not in claims:
        return None
    return {a for entry in claims.get("access") or [] for a in entry.get("actions") or []}


def graph_pending(exc: BaseException) -> str | None:
    """What Graph is still replicating, for an answer that only means "not yet" right after a create."""
    codes, msg = error_code(exc), str(exc) + " " + _message(_root(exc))
    if "NoBackingApplicationObject" in codes or "does not reference a valid application object" in msg:
        return "Entra ID has not replicated the new application yet (NoBackingApplicationObject)"
    if status_of(exc) == 404:
        return "Entra ID does not show the new application yet (HTTP 404)"
    return throttled(exc)


def rbac_pending(exc: BaseException) -> str | None:
    """``PrincipalNotFound``: Azure RBAC does not see the new service principal yet."""
    if "PrincipalNotFound" in error_code(exc):
        return "Azure RBAC does not see the new service principal yet (PrincipalNotFound)"
    return throttled(exc)
APP_TAG = "mldeploy"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return str(value.astimezone(dt.timezone.utc).replace(microsecond=0).isoformat())
    return str(value)


class EntraIdentityStore(RegistryBound):
    """Identities with a role on one Azure container registry (see the module docstring)."""

    def __init__(
        self,
        target: AzureTarget | str,
        credential: Any = None,
        transport: Any = None,
        graph_http: Callable[[], Any] | None = None,
        replication_retries: int = 10,
        replication_delay: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        progress: Callable[[str], None] | None = None,
        wait_usable: bool = True,
    ) -> None:
        self.target = parse_target(target) if isinstance(target, str) else target
        self._credential = credential
        self._transport = transport
        self._graph_http = graph_http  # tests: a factory of httpx.AsyncClient with a mock transport
        # 2, 4, 8, 16, 30, 30 ... s: about 3.5 minutes in all, the documented worst case of Entra/RBAC replication.
        self._backoff = Backoff(attempts=replication_retries + 1, first=replication_delay, cap=30.0, sleep=sleep)
        self._progress = progress or (lambda m: _log.info("%s", m))
        self._wait_usable = wait_usable

    # -- plumbing --------------------------------------------------------------
    @property
    def registry_address(self) -> str:
        return str(self.info.login_server)

    def _auth_client(self) -> Any:
        from azure.mgmt.authorization import AuthorizationManagementClient

        kwargs = {"transport": self._transport} if self._transport is not None else {}
        return AuthorizationManagementClient(self.credential, self.info.target.subscription_id, **kwargs)

    def _graph(self) -> Any:
        from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
        from msgraph import GraphRequestAdapter, GraphServiceClient
        from msgraph.graph_request_adapter import options
        from msgraph_core import GraphClientFactory

        auth = AzureIdentityAuthenticationProvider(self.credential, scopes=[GRAPH_SCOPE])
        http = GraphClientFactory.create_with_default_middleware(client=self._graph_http() if self._graph_http else None, options=options)
        return GraphServiceClient(request_adapter=GraphRequestAdapter(auth, client=http))

    def _run(self, what: str, fn: Callable[[Any], Awaitable[T]]) -> T:
        async def main() -> T:
            return await fn(self._graph())

        # On a worker thread: never inside a caller's running loop, never resetting the caller's loop.
        with azure_errors(what), concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, main()).result()

    @property
    def scope(self) -> str:
        return self.info.target.arm_id

    def _role_ids(self) -> dict[str, str]:
        return ABAC_ROLE_IDS if self.info.abac else ROLE_IDS

    def _role_definition(self, role: str) -> str:
        return f"/subscriptions/{self.info.target.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{self._role_ids()[role]}"

    def _assignments(self, principal_id: str) -> list[Any]:
        client = self._auth_client()
        what = f"listing role assignments on {self.info.target.name}"
        found = call(what, lambda: list(client.role_assignments.list_for_scope(self.scope, filter=f"principalId eq '{principal_id}'")))
        # list_for_scope also answers assignments inherited from above; only ours count.
        return [a for a in found if (a.scope or "").lower() == self.scope.lower()]

    @staticmethod
    def _role_of(assignments: list[Any]) -> str | None:
        by_id = {v: k for k, v in ROLE_IDS.items()} | {v: k for k, v in ABAC_ROLE_IDS.items()}
        roles = {by_id.get(str(a.role_definition_id).rsplit("/", 1)[-1]) for a in assignments} - {None}
        return "AcrPush" if "AcrPush" in roles else ("AcrPull" if roles else None)

    def _assign(self, principal_id: str, role: str) -> None:
        """Assign ``role`` (its ABAC equivalent on an ABAC registry), waiting out ``PrincipalNotFound`` while the new
        principal replicates to Azure RBAC; an existing identical assignment (409 ``RoleAssignmentExists``) is fine."""
        from azure.mgmt.authorization.models import RoleAssignmentCreateParameters

        client = self._auth_client()
        params = RoleAssignmentCreateParameters(
            role_definition_id=self._role_definition(role), principal_id=principal_id, principal_type="ServicePrincipal"
        )
        name = str(uuid.uuid4())  # the same name on every attempt: a retry never makes a second assignment
        shown = ABAC_ROLE_NAMES[role] if self.info.abac else role
        what = f"assigning {shown} on {self.info.target.name}"
        try:
            with_retry(what, lambda: client.role_assignments.create(self.scope, name, params), rbac_pending, self._backoff, self._progress)
        except Exception as exc:
            if "RoleAssignmentExists" in error_code(exc):
                return
            raise translate(exc, what) from exc

    def _until_usable(self, client_id: str, secret: str, role: str) -> None:
        """Return once the registry accepts the new password and grants ``role``'s actions with it.

        A new secret and role assignment take seconds to minutes to reach the registry; a push right after
        ``create`` answers 401 until then. The probe is the registry's token endpoint with HTTP Basic, as
        ``docker login``/``docker push`` use it: 401 while the password is unknown, and a token whose
        ``access`` claim lacks ``push`` (or ``pull``) while the role has not arrived."""
        import base64

        from azure.core import PipelineClient
        from azure.core.pipeline.policies import RetryPolicy
        from azure.core.rest import HttpRequest

        login = self.registry_address
        wanted = {"pull", "push"} if role == "AcrPush" else {"pull"}
        scope = f"repository:{PROBE_REPOSITORY}:{','.join(sorted(wanted))}"
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        kwargs = {"transport": self._transport} if self._transport is not None else {}
        client = PipelineClient(f"https://{login}", policies=[RetryPolicy()], **kwargs)

        def probe() -> None:
            resp = client.send_request(
                HttpRequest("GET", f"https://{login}/oauth2/token", params={"service": login, "scope": scope}, headers={"Authorization": f"Basic {basic}"})
            )
            if resp.status_code in (401, 403):
                raise _NotYet(f"{login} does not accept the new password yet (HTTP {resp.status_code})")
            if resp.status_code >= 400:
                raise BackendError(f"{login} token endpoint answered HTTP {resp.status_code}")
            granted = _token_actions(resp.json().get("access_token") or "")
            if granted is not None and not wanted <= granted:
                raise _NotYet(f"{login} does not grant {role} ({', '.join(sorted(wanted - granted))}) to it yet")

        with_retry(
            f"waiting until {login} accepts identity {client_id}",
            probe,
            lambda exc: str(exc) if isinstance(exc, _NotYet) else throttled(exc),
            self._backoff,
            self._progress,
        )

    def _identity(self, app: Any, role: str) -> Identity:
        ends = [p.end_date_time for p in (app.password_credentials or []) if p.end_date_time]
        return Identity(
            client_id=app.app_id,
            role=role,
            display_name=app.display_name or "",
            registry_address=self.registry_address,
            created_at=_iso(app.created_date_time) or "",
            expires_at=_iso(max(ends)) if ends else None,
        )

    @staticmethod
    def _password_body(display_name: str, expires_in_days: int | None) -> Any:
        from msgraph.generated.applications.item.add_password.add_password_post_request_body import AddPasswordPostRequestBody
        from msgraph.generated.models.password_credential import PasswordCredential

        cred = PasswordCredential(display_name=f"mldeploy {display_name}")
        if expires_in_days:
            cred.end_date_time = _now() + dt.timedelta(days=expires_in_days)
        return AddPasswordPostRequestBody(password_credential=cred)

    async def _app(self, graph: Any, client_id: str) -> Any:
        return await graph.applications_with_app_id(client_id).get()

    # -- IdentityStore ---------------------------------------------------------
    def create(self, display_name: str, role: str, expires_in_days: int | None) -> tuple[Identity, str]:
        if role not in ROLE_IDS:
            raise ValidationError("role", f"unknown role {role!r}; valid roles: {', '.join(ROLE_IDS)}")
        from msgraph.generated.models.application import Application
        from msgraph.generated.models.service_principal import ServicePrincipal

        _ = self.info  # resolve the registry (and its role mode) before anything is created
        app = self._run(
            f"creating Entra application {display_name!r}",
            lambda g: g.applications.post(Application(display_name=display_name, tags=[APP_TAG, f"mldeploy-role:{role}"])),
        )
        try:
            # Right after the create Graph answers 400 NoBackingApplicationObject / 404 for some seconds: that is
            # replication, not failure, so it is waited out (never answered by deleting the application).
            sp = with_retry(
                f"creating the service principal of {app.app_id}",
                lambda: self._run(f"creating the service principal of {app.app_id}", lambda g: g.service_principals.post(ServicePrincipal(app_id=app.app_id))),
                graph_pending,
                self._backoff,
                self._progress,
            )
            pw = with_retry(
                f"adding a password to {app.app_id}",
                lambda: self._run(
                    f"adding a password to {app.app_id}",
                    lambda g: g.applications.by_application_id(app.id).add_password.post(self._password_body(display_name, expires_in_days)),
                ),
                graph_pending,
                self._backoff,
                self._progress,
            )
            app.password_credentials = [pw]
            self._assign(sp.id, role)
            if self._wait_usable:
                self._until_usable(app.app_id, pw.secret_text, role)
        except BaseException:
            # A definite failure (or replication that never finished): remove the application so nothing is
            # orphaned; if even that is refused, say which application to remove.
            try:
                with_retry(
                    f"removing Entra application {app.app_id} after a failed create",
                    lambda: self._run(f"removing Entra application {app.app_id}", lambda g: g.applications.by_application_id(app.id).delete()),
                    graph_pending,
                    self._backoff,
                    self._progress,
                )
            except Exception as cleanup:
                self._progress(f"could not remove Entra application {app.app_id} (object id {app.id}): {cleanup}; delete it by hand")
            raise
        return self._identity(app, role), pw.secret_text

    def get(self, client_id: str) -> Identity:
        async def read(graph: Any) -> tuple[Any, Any]:
            return await self._app(graph, client_id), await graph.service_principals_with_app_id(client_id).get()

        app, sp = self._run(f"reading Entra application {client_id}", read)
        role = self._role_of(self._assignments(sp.id))
        if role is None:
            raise NotFound(f"identity {client_id} has no AcrPull/AcrPush role on {self.info.target.name} any more")
        ident = self._identity(app, role)
        if ident.expires_at and ident.expires_at <= _now().isoformat():
            raise NotFound(f"identity {client_id}: every password has expired")
        return ident

    def rotate(self, client_id: str, expires_in_days: int | None) -> tuple[Identity, str]:
        """Add a new password, wait until the registry accepts it, then remove the older ones: a consumer
        that switches to the new secret never meets a window where neither works."""
        from msgraph.generated.applications.item.remove_password.remove_password_post_request_body import RemovePasswordPostRequestBody

        async def add(graph: Any) -> tuple[Any, Any]:
            app = await self._app(graph, client_id)
            pw = await graph.applications.by_application_id(app.id).add_password.post(self._password_body(app.display_name or client_id, expires_in_days))
            return app, pw

        app, pw = self._run(f"adding a new password to {client_id}", add)
        sp = self._run(f"reading service principal {client_id}", lambda g: g.service_principals_with_app_id(client_id).get())
        role = self._role_of(self._assignments(sp.id)) or "AcrPull"
        if self._wait_usable:
            self._until_usable(client_id, pw.secret_text, role)

        async def remove_old(graph: Any) -> None:
            item = graph.applications.by_application_id(app.id)
            for old in app.password_credentials or []:
                if old.key_id != pw.key_id:
                    await item.remove_password.post(RemovePasswordPostRequestBody(key_id=old.key_id))

        self._run(f"removing the old passwords of {client_id}", remove_old)
        app.password_credentials = [pw]
        return self._identity(app, role), pw.secret_text

    def update(self, client_id: str, display_name: str) -> Identity:
        from msgraph.generated.models.application import Application

        async def patch(graph: Any) -> Any:
            await graph.applications_with_app_id(client_id).patch(Application(display_name=display_name))
            return await self._app(graph, client_id)

        app = self._run(f"renaming Entra application {client_id}", patch)
        sp = self._run(f"reading service principal {client_id}", lambda g: g.service_principals_with_app_id(client_id).get())
        return self._identity(app, self._role_of(self._assignments(sp.id)) or "AcrPull")

    def delete(self, client_id: str) -> None:
        try:
            sp = self._run(f"reading service principal {client_id}", lambda g: g.service_principals_with_app_id(client_id).get())
        except NotFound:
            sp = None
        if sp is not None:
            client = self._auth_client()
            for a in self._assignments(sp.id):
                try:
                    call(f"removing role assignment {a.name}", client.role_assignments.delete, self.scope, a.name)
                except NotFound:
                    pass
        try:
            self._run(f"deleting Entra application {client_id}", lambda g: g.applications_with_app_id(client_id).delete())
        except NotFound:
            pass
