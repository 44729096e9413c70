"""The interfaces resources depend on. One real implementation per system in this package."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Identity:
    """A registry identity as the identity store knows it. The secret is never stored, only returned at creation/rotation."""

    client_id: str
    role: str
    display_name: str
    registry_address: str
    created_at: str
    expires_at: str | None


class IdentityStore(Protocol):
    """Registry identities with a role (``AcrPull`` or ``AcrPush``): local htpasswd+nginx, or Entra ID on Azure."""

    registry_address: str

    def create(self, display_name: str, role: str, expires_in_days: int | None) -> tuple[Identity, str]:
        """Create an identity; returns it with its new secret."""
        ...

    def get(self, client_id: str) -> Identity:
        """The identity, or ``NotFound`` if it does not exist (or has expired)."""
        ...

    def rotate(self, client_id: str, expires_in_days: int | None) -> tuple[Identity, str]:
        """A new secret for the identity; the old one is refused from now on."""
        ...

    def update(self, client_id: str, display_name: str) -> Identity:
        """Change metadata only."""
        ...

    def delete(self, client_id: str) -> None:
        """Revoke the identity. A missing identity is not an error."""
        ...
