"""A stream's SETs: one event each, the same jti for the same cause, the subject matched."""

from __future__ import annotations

import time

import orjson

from sessionwarden.ssf.causes import Cause, cause_of
from sessionwarden.ssf.subjects import opaque, session_subject
from sessionwarden.ssf.tokens import read_unverified
from sessionwarden.ssf.transmitter.sets import AddedSubjects, subject_matches
from sessionwarden.ssf.vocabulary import SESSION_REVOKED, VERIFICATION
from tests.unit.ssf.transmitter.factories import ISS, MAKER, T0, revocation, stream


def _cause(value: bytes) -> Cause:
    cause = cause_of(orjson.loads(value), frozenset({"revocation", "revalidation"}))
    assert cause is not None
    return cause


def test_the_same_cause_gives_the_same_token_and_each_stream_its_own_jti() -> None:
    """Retries and restarts resend the same jti; two streams never share one."""
    cause = _cause(revocation())
    first = MAKER.for_cause(cause, stream("s1"))
    assert first[0] == MAKER.for_cause(cause, stream("s1"))[0]
    assert first[0] != MAKER.for_cause(cause, stream("s2"))[0]
    header, claims = read_unverified(first[1])
    assert ("ES256", "k1", "secevent+jwt") == (header["alg"], header["kid"], header["typ"])
    assert (ISS, "rp", first[0]) == (claims["iss"], claims["aud"], claims["jti"])
    event = claims["events"][SESSION_REVOKED]
    assert (int(T0 + 300), "user") == (event["event_timestamp"], event["initiating_entity"])
    assert "User logged out" == event["reason_admin"]["en"]  # event_timestamp: effective_at
    assert "s-1" not in str(claims)  # the session is named by its keyed hash


def test_a_verification_set_names_the_stream_and_echoes_the_state() -> None:
    jti, token = MAKER.verification(stream("s1"), "abc", "v1", T0)
    claims = read_unverified(token)[1]
    assert ("v1", {"format": "opaque", "id": "s1"}) == (jti, claims["sub_id"])
    assert {VERIFICATION: {"state": "abc"}} == claims["events"]


def test_added_subjects_match_a_member_or_a_whole_complex_subject() -> None:
    """A receiver that added a user hears about that user's sessions, and no one else's."""
    cause = _cause(revocation(user="alice"))
    subject = MAKER.subject(cause)
    alice, bob = {"format": "opaque", "id": "alice"}, {"format": "opaque", "id": "bob"}
    acme = {"format": "opaque", "id": "acme"}
    assert subject_matches([alice], subject)
    assert not subject_matches([bob], subject)
    assert subject_matches([{"format": "complex", "user": alice, "tenant": acme}], subject)
    assert not subject_matches([{"format": "complex", "user": alice, "tenant": bob}], subject)
    assert not subject_matches([], subject)


def test_matching_an_event_against_ten_thousand_added_subjects_costs_microseconds() -> None:
    """A receiver may add 10,000 subjects to each of its streams, and every revocation is
    matched against each stream's: a scan of them all made a revocation storm crawl for every
    receiver. Both the store's index and a plain list are looked up, not scanned."""
    added = [{"format": "opaque", "id": f"user-{n}"} for n in range(10_000)]
    added.append(
        {"format": "complex", "user": {"format": "opaque", "id": "x"}, "tenant": opaque("acme")}
    )
    index = AddedSubjects(added)
    subject = session_subject("user-9999", "acme", "s-1")
    miss = session_subject("nobody", "acme", "s-2")
    started = time.perf_counter()
    for _ in range(1000):
        assert index.matches(subject)
        assert not index.matches(miss)
    assert time.perf_counter() - started < 0.5  # a scan: about 8 s
    assert subject_matches(added, subject)
    assert not subject_matches(added, miss)
    assert subject_matches(index, session_subject("x", "acme", None))
