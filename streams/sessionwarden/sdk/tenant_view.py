"""One tenant's view of a revocation listener, for a service that serves a single tenant."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sessionwarden.sdk.listener import RevocationListener
    from sessionwarden.sdk.revocation_set import RevokedEntry


class TenantView:
    """``listener.bind(tenant)``: the listener's answers with the tenant filled in."""

    __slots__ = ("listener", "tenant")

    def __init__(self, listener: RevocationListener, tenant: str) -> None:
        if not tenant:
            raise ValueError("a tenant view needs a non-empty tenant")
        self.listener = listener
        self.tenant = tenant

    @property
    def fail_closed(self) -> bool:
        return self.listener.fail_closed

    def healthy(self) -> bool:
        return self.listener.healthy()

    def is_revoked(self, session_id: str) -> bool:
        """True if the session of this tenant is revoked (or, fail-closed, while unhealthy)."""
        return self.listener.is_revoked(self.tenant, session_id)

    def revocation(self, session_id: str) -> RevokedEntry | None:
        return self.listener.revocation(self.tenant, session_id)
