"""``IdentityStore`` on Entra ID: an application, its service principal, a password, a role on the registry.

- create: ``POST /applications`` (tagged ``mldeploy``), ``POST /servicePrincipals``,
  ``POST /applications/{id}/addPassword`` (the secret, returned once), then an
  ``AcrPull``/``AcrPush`` role assignment scoped to the registry
  (``PUT {registry}/providers/Microsoft.Authorization/roleAssignments/{uuid}``).
  A brand-new principal takes a few seconds to replicate to ARM, so a
  ``PrincipalNotFound`` answer is retried. A failure after the application
  exists deletes it again: nothing half-made is left behind.
- get: the application by ``appId`` and its role assignment on the registry;
  a deleted application, a removed assignment or only expired passwords are ``NotFound``.
- rotate: ``addPassword`` (new), then ``removePassword`` for every older key.
- update: ``PATCH`` the application's display name.
- delete: the role assignments on the registry, then the application (which
  takes its service principal with it). Missing is not an error.

Graph is msgraph-sdk (async, kiota over httpx); each call runs on its own event loop in a worker thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ...errors import NotFound, ValidationError
from ..protocols import Identity
from ._common import AzureTarget, azure_errors, call, parse_target, translate
from .credentials import GRAPH_SCOPE
from .workspace import RegistryBound

T = TypeVar("T")
ROLE_IDS = {
    "AcrPull": "7f951dda-4ed3-4680-a7ca-43fe172d538d",
    "AcrPush": "8311e382-0749-4cb8-b61a-304f252e45ec",
}
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
        replication_retries: int = 12,
        replication_delay: float = 5.0,
    ) -> None:
        self.target = parse_target(target) if isinstance(target, str) else target
        self._credential = credential
        self._transport = transport
        self._graph_http = graph_http  # tests: a factory of httpx.AsyncClient with a mock transport
        self._retries = replication_retries
        self._delay = replication_delay

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

    def _role_definition(self, role: str) -> str:
        return f"/subscriptions/{self.info.target.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{ROLE_IDS[role]}"

    def _assignments(self, principal_id: str) -> list[Any]:
        client = self._auth_client()
        what = f"listing role assignments on {self.info.target.name}"
        found = call(what, lambda: list(client.role_assignments.list_for_scope(self.scope, filter=f"principalId eq '{principal_id}'")))
        # list_for_scope also answers assignments inherited from above; only ours count.
        return [a for a in found if (a.scope or "").lower() == self.scope.lower()]

    @staticmethod
    def _role_of(assignments: list[Any]) -> str | None:
        by_id = {v: k for k, v in ROLE_IDS.items()}
        roles = {by_id.get(str(a.role_definition_id).rsplit("/", 1)[-1]) for a in assignments} - {None}
        return "AcrPush" if "AcrPush" in roles else ("AcrPull" if roles else None)

    def _assign(self, principal_id: str, role: str) -> None:
        from azure.mgmt.authorization.models import RoleAssignmentCreateParameters

        client = self._auth_client()
        params = RoleAssignmentCreateParameters(
            role_definition_id=self._role_definition(role), principal_id=principal_id, principal_type="ServicePrincipal"
        )
        name = str(uuid.uuid4())
        for attempt in range(self._retries + 1):
            try:
                client.role_assignments.create(self.scope, name, params)
                return
            except Exception as exc:
                code = getattr(getattr(exc, "error", None), "code", None)
                if code == "PrincipalNotFound" and attempt < self._retries:
                    time.sleep(self._delay)  # the new principal has not reached ARM yet
                    continue
                if code == "RoleAssignmentExists":
                    return
                raise translate(exc, f"assigning {role} on {self.info.target.name}") from exc

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

        _ = self.info  # resolve the registry before anything is created

        async def make(graph: Any) -> tuple[Any, Any, str]:
            app = await graph.applications.post(Application(display_name=display_name, tags=[APP_TAG, f"mldeploy-role:{role}"]))
            try:
                sp = await graph.service_principals.post(ServicePrincipal(app_id=app.app_id))
                pw = await graph.applications.by_application_id(app.id).add_password.post(self._password_body(display_name, expires_in_days))
                app.password_credentials = [pw]
                return app, sp, pw.secret_text
            except BaseException:
                await graph.applications.by_application_id(app.id).delete()
                raise

        app, sp, secret = self._run(f"creating Entra application {display_name!r}", make)
        try:
            self._assign(sp.id, role)
        except BaseException:
            self._run(f"removing Entra application {app.app_id} after a failed create", lambda g: g.applications.by_application_id(app.id).delete())
            raise
        return self._identity(app, role), secret

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
        from msgraph.generated.applications.item.remove_password.remove_password_post_request_body import RemovePasswordPostRequestBody

        async def rotate(graph: Any) -> tuple[Any, str]:
            app = await self._app(graph, client_id)
            item = graph.applications.by_application_id(app.id)
            pw = await item.add_password.post(self._password_body(app.display_name or client_id, expires_in_days))
            for old in app.password_credentials or []:
                if old.key_id != pw.key_id:
                    await item.remove_password.post(RemovePasswordPostRequestBody(key_id=old.key_id))
            app.password_credentials = [pw]
            return app, pw.secret_text

        app, secret = self._run(f"rotating the password of {client_id}", rotate)
        sp = self._run(f"reading service principal {client_id}", lambda g: g.service_principals_with_app_id(client_id).get())
        return self._identity(app, self._role_of(self._assignments(sp.id)) or "AcrPull"), secret

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
