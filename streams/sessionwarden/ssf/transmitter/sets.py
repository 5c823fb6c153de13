"""The SETs of one stream, pure: which causes a stream receives, and their signed tokens.

One event per SET. A session's subject is the complex subject of opaque user, session (its
keyed hash, as in the log lines: a receiver never learns a live session id) and tenant. The jti
is derived from the issuer, the cause and the stream (:func:`sessionwarden.ssf.causes.jti`), so
the same revocation gives the same jti to the same stream on every retry, after every restart,
and a different one to each stream. ``iat`` is the record's emission time, so a record read
twice gives the same token byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson

from sessionwarden.ssf.causes import Cause, numeric_date, set_claims
from sessionwarden.ssf.subjects import COMPLEX, canonical, opaque, session_subject
from sessionwarden.ssf.tokens import SetSigner, encode_set, read_unverified
from sessionwarden.ssf.transmitter.streams import Stream
from sessionwarden.ssf.vocabulary import VERIFICATION


class SetMaker:
    """Signs the tokens of every stream with one key."""

    def __init__(
        self,
        issuer: str,
        signer: SetSigner,
        key_id: str | None,
        session_hash: Callable[[str], str],
    ) -> None:
        self.issuer = issuer
        self.signer = signer
        self._key_id = key_id
        self._hash = session_hash

    def subject(self, cause: Cause) -> dict[str, Any]:
        """The ``sub_id`` of the cause's SETs."""
        sid = cause.session_id
        return session_subject(
            cause.user_id, cause.tenant, None if sid is None else self._hash(sid)
        )

    def for_cause(self, cause: Cause, stream: Stream) -> tuple[str, bytes]:
        """(jti, token) of the cause for the stream."""
        sid = cause.session_id
        claims = set_claims(
            cause,
            issuer=self.issuer,
            audience=stream.aud,
            jti_scope=f"ssf-stream:{stream.stream_id}",
            issued_at=numeric_date(cause.issued_at),
            session=None if sid is None else self._hash(sid),
        )
        return str(claims["jti"]), encode_set(claims, self.signer, self._key_id)

    def verification(
        self, stream: Stream, state: str | None, jti: str, now: float
    ) -> tuple[str, bytes]:
        """(jti, token) of a verification event (SSF 1.0 section 8.1.4): about the stream."""
        event: dict[str, Any] = {} if state is None else {"state": state}
        claims = {
            "iss": self.issuer,
            "jti": jti,
            "iat": numeric_date(now),
            "aud": stream.aud,
            "sub_id": opaque(stream.stream_id),
            "events": {VERIFICATION: event},
        }
        return jti, encode_set(claims, self.signer, self._key_id)


def event_type_of(token: bytes) -> str:
    """The one event type of a token this transmitter made."""
    _, claims = read_unverified(token)
    return str(next(iter(claims["events"])))


class AddedSubjects:
    """The subjects added to one stream, indexed: the simple ones by their canonical JSON (an
    event's subject is looked up member by member, whatever their number), the complex ones
    in a list (compared member by member; a receiver adds few of them)."""

    __slots__ = ("_complex", "_simple")

    def __init__(self, subjects: Iterable[dict[str, Any]] = ()) -> None:
        self._simple: set[bytes] = set()
        self._complex: list[dict[str, Any]] = []
        for subject in subjects:
            self.add_canonical(canonical(subject))

    def add_canonical(self, subject: bytes) -> None:
        """Add a subject given as :func:`~sessionwarden.ssf.subjects.canonical` bytes."""
        parsed = orjson.loads(subject)
        if isinstance(parsed, dict) and parsed.get("format") == COMPLEX:
            own = {k: v for k, v in parsed.items() if k != "format"}
            if own:
                self._complex.append(own)
        else:
            self._simple.add(subject)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for subject in self._simple:
            yield orjson.loads(subject)
        for own in self._complex:
            yield {"format": COMPLEX, **own}

    def __len__(self) -> int:
        return len(self._simple) + len(self._complex)

    def matches(self, subject: dict[str, Any]) -> bool:
        """See :func:`subject_matches`."""
        members = {k: v for k, v in subject.items() if k != "format"}
        if self._simple and any(canonical(v) in self._simple for v in members.values()):
            return True
        return any(all(members.get(k) == v for k, v in own.items()) for own in self._complex)


def subject_matches(added: Iterable[dict[str, Any]], subject: dict[str, Any]) -> bool:
    """Whether an event about ``subject`` (a complex subject) concerns one of the ``added``
    subjects: a simple one equal to any of its members, or a complex one whose every member
    equals the same member of the event's."""
    index = added if isinstance(added, AddedSubjects) else AddedSubjects(added)
    return index.matches(subject)
