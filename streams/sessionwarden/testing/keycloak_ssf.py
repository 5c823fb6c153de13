"""Keycloak's Shared Signals transmitter (its experimental ``ssf`` feature), set up to feed a
receiver: the realm made a transmitter, a receiver client holding the ``ssf.read`` and
``ssf.manage`` scopes (Keycloak does not give them on its own), and a stream created through
the SSF stream management API with that client's service account.

Every :class:`~sessionwarden.testing.keycloak.KeycloakServer` runs with the transmitter's
options (``SSF_OPTIONS``: plain-HTTP loopback push targets allowed, the outbox drained every
second). What Keycloak 26.7.3
sends (checked against a running one): ``session-revoked`` on a user's logout, with a complex
subject of an ``iss_sub`` user and the ``opaque`` session id; on an administrator's "sign out"
of a user the same event with the session ``ALL``; ``credential-change`` on a password reset.
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from sessionwarden.ssf import vocabulary as v
from sessionwarden.testing.keycloak import KeycloakAdmin


@dataclass(frozen=True)
class SsfStream:
    """A stream Keycloak created: where its metadata is, its issuer and the audience it gave."""

    issuer: str
    metadata_url: str
    audience: str
    stream_id: str
    client_id: str
    client_secret: str
    endpoint_url: str
    """Where Keycloak pushes, or (poll) the endpoint it gave to poll."""


def _call(url: str, *, form: dict[str, str] | None = None, doc: Any = None,
          bearer: str | None = None) -> tuple[int, Any]:  # fmt: skip
    headers = {"Accept": "application/json"}
    data = None
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif doc is not None:
        data = json.dumps(doc).encode()
        headers["Content-Type"] = "application/json"
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
            return response.status, json.loads(body) if body else None
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def push_stream(
    admin: KeycloakAdmin,
    base_url: str,
    realm: str,
    push_url: str,
    authorization: str,
    events: tuple[str, ...] = (v.SESSION_REVOKED, v.CREDENTIAL_CHANGE),
) -> SsfStream:
    """Make ``realm`` a transmitter and create a push stream to ``push_url`` (Keycloak sends
    ``authorization`` as the Authorization header) delivering every user's ``events``."""
    delivery = {"method": v.PUSH_DELIVERY, "endpoint_url": push_url,
                "authorization_header": authorization}  # fmt: skip
    return _stream(admin, base_url, realm, delivery, events, push_url.split("/ssf/")[0])


def poll_stream(
    admin: KeycloakAdmin,
    base_url: str,
    realm: str,
    events: tuple[str, ...] = (v.SESSION_REVOKED, v.CREDENTIAL_CHANGE),
) -> SsfStream:
    """Make ``realm`` a transmitter and create a poll stream (RFC 8936) delivering every
    user's ``events``; its receiver client polls with an access token of its own."""
    return _stream(admin, base_url, realm, {"method": v.POLL_DELIVERY}, events, None)


def _stream(
    admin: KeycloakAdmin,
    base_url: str,
    realm: str,
    delivery: dict[str, str],
    events: tuple[str, ...],
    push_origin: str | None,
) -> SsfStream:
    doc = admin.call("GET", f"/{realm}")
    doc["attributes"] = {**(doc.get("attributes") or {}), "ssf.transmitterEnabled": "true"}
    admin.call("PUT", f"/{realm}", doc)
    client_id, secret = f"ssf-receiver-{secrets.token_hex(4)}", secrets.token_urlsafe(24)
    admin.call(
        "POST",
        f"/{realm}/clients",
        {
            "clientId": client_id,
            "secret": secret,
            "publicClient": False,
            "serviceAccountsEnabled": True,
            "standardFlowEnabled": False,
            "attributes": {
                "ssf.enabled": "true",
                "ssf.defaultSubjects": "ALL",
                **({"ssf.validPushUrls": f"{push_origin}/*"} if push_origin else {}),
            },
        },
    )
    uuid = admin.call("GET", f"/{realm}/clients?clientId={client_id}")[0]["id"]
    for scope in admin.call("GET", f"/{realm}/client-scopes"):
        if scope["name"] in ("ssf.read", "ssf.manage"):
            admin.call("PUT", f"/{realm}/clients/{uuid}/optional-client-scopes/{scope['id']}")
    realm_url = f"{base_url}/realms/{realm}"
    status, token = _call(
        f"{realm_url}/protocol/openid-connect/token",
        form={"grant_type": "client_credentials", "client_id": client_id,
              "client_secret": secret, "scope": "ssf.manage ssf.read"},
    )  # fmt: skip
    if status != 200:
        raise AssertionError(f"no SSF management token: {status} {token}")
    metadata_url = f"{realm_url}/.well-known/ssf-configuration"
    status, metadata = _call(metadata_url)
    if status != 200:
        raise AssertionError(f"no SSF metadata: {status} {metadata}")
    status, stream = _call(
        metadata["configuration_endpoint"],
        doc={"delivery": delivery, "events_requested": list(events)},
        bearer=token["access_token"],
    )  # fmt: skip
    if status != 201:
        raise AssertionError(f"Keycloak did not create the stream: {status} {stream}")
    audience = stream["aud"]
    return SsfStream(
        issuer=metadata["issuer"],
        metadata_url=metadata_url,
        audience=audience[0] if isinstance(audience, list) else audience,
        stream_id=stream["stream_id"],
        client_id=client_id,
        client_secret=secret,
        endpoint_url=stream["delivery"]["endpoint_url"],
    )
