"""One tenant's view of a multi-tenant revocation source (a RevocationListener), for a service
that serves a single tenant. Typed against what the view asks of its source, so it depends on no
listener."""

from __future__ import annotations

from typing import Protocol

from sessionwarden.sdk.revocation_set import RevokedEntry


class TenantRevocations(Protocol):
    """What a tenant view asks of its source (RevocationListener provides it)."""

    @property
    def fail_closed(self) -> bool: ...
    def healthy(self) -> bool: ...
    def is_revoked(self, tenant: str, session_id: str) -> bool: ...
    def revocation(self, tenant: str, session_id: str) -> RevokedEntry | None: ...


class TenantView:
    """``listener.bind(tenant)``: the listener's answers with the tenant filled in."""

    __slots__ = ("listener", "tenant")

    def __init__(self, listener: TenantRevocations, tenant: str) -> None:
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
