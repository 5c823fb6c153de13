"""Streams, records and a transmitter's parts for the transmitter's unit tests."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sessionwarden.contracts.codec import encode_dict
from sessionwarden.enforcer.engine import records
from sessionwarden.enforcer.engine.sessions import Session
from sessionwarden.ops.logs import SessionHasher
from sessionwarden.ssf.tokens import signer_for
from sessionwarden.ssf.transmitter.sets import SetMaker
from sessionwarden.ssf.transmitter.store import Store
from sessionwarden.ssf.transmitter.streams import Stream
from sessionwarden.ssf.vocabulary import PUSH_DELIVERY, SESSION_REVOKED, TOKEN_CLAIMS_CHANGE

T0 = 1_800_000_000.0
ISS = "https://sw.example"
_PEM = ec.generate_private_key(ec.SECP256R1()).private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)
MAKER = SetMaker(ISS, signer_for(_PEM), "k1", SessionHasher("unit-salt"))


def stream(stream_id: str = "s1", **kw: Any) -> Stream:
    base = Stream(
        stream_id=stream_id,
        owner="rp",
        aud="rp",
        method=PUSH_DELIVERY,
        endpoint_url="https://rp.example/events",
        authorization_header=None,
        events_requested=(SESSION_REVOKED, TOKEN_CLAIMS_CHANGE),
        description=None,
        status="enabled",
        reason=None,
        created_at=T0,
    )
    return replace(base, **kw)


def stored(store: Store, *streams: Stream) -> None:
    """The streams created in the store, as the API creates them."""
    for one in streams:
        assert one.stream_id == store.create_stream(one, 10_000, 10_000)


def session(session_id: str = "s-1", user: str = "alice") -> Session:
    times = (T0, T0, T0, 300.0, T0 + 3600)
    return Session(("acme", session_id), user, "customer", "medium", *times, ("viewer",), ())


def revocation(session_id: str = "s-1", user: str = "alice", at: float = T0 + 300) -> bytes:
    rec = records.revocation(session(session_id, user), "logout", at, at + 0.5, "v1", uuid.uuid4())
    return encode_dict(rec)


def revalidation(session_id: str = "s-1") -> bytes:
    rec = records.revalidation(
        session(session_id), ["admin"], T0 + 10, T0 + 10.5, "v1", uuid.uuid4()
    )
    return encode_dict(rec)
