"""Subject identifiers checked against RFC 9493 and SSF 1.0 section 3."""

from __future__ import annotations

import pytest

from sessionwarden.ssf.subjects import session_subject, subject_problem


@pytest.mark.parametrize(
    "subject",
    [
        {"format": "opaque", "id": "u-1"},
        {"format": "email", "email": "ann@example.com"},
        {"format": "iss_sub", "iss": "https://idp.example", "sub": "145234573"},
        {"format": "account", "uri": "acct:ann@example.com"},
        {"format": "phone_number", "phone_number": "+12065550100"},
        {"format": "jwt_id", "iss": "https://idp.example", "jti": "B70BA622"},
        {"format": "aliases", "identifiers": [{"format": "opaque", "id": "u-1"}]},
        {
            "format": "complex",
            "user": {"format": "iss_sub", "iss": "https://idp.example", "sub": "1"},
            "session": {"format": "opaque", "id": "s-1"},
        },
    ],
)
def test_valid_subjects_pass(subject: object) -> None:
    """Every format of the RFC and of SSF a receiver may send must be accepted as it is."""
    assert None is subject_problem(subject)


@pytest.mark.parametrize(
    ("subject", "why"),
    [
        ("u-1", "JSON object"),
        ({"id": "u-1"}, '"format"'),
        ({"format": "opaque"}, "exactly the members id"),
        ({"format": "opaque", "id": "u", "extra": 1}, "exactly the members id"),
        ({"format": "opaque", "id": ""}, "1 to 1024"),
        ({"format": "opaque", "id": 7}, "1 to 1024"),
        ({"format": "email", "email": "not-an-address"}, "email address"),
        ({"format": "nickname", "name": "x"}, "unknown subject format"),
        ({"format": "complex"}, "at least one member"),
        ({"format": "complex", "pet": {"format": "opaque", "id": "x"}}, "unknown complex"),
        ({"format": "complex", "user": {"format": "complex"}}, "cannot be nested"),
        ({"format": "complex", "user": {"format": "opaque"}}, "user: "),
        ({"format": "aliases", "identifiers": []}, "1 to 16"),
    ],
)
def test_invalid_subjects_are_refused_with_the_reason(subject: object, why: str) -> None:
    """A hostile subject gets a clear reason, never an exception."""
    problem = subject_problem(subject)
    assert problem is not None
    assert why in problem


def test_the_session_subject_is_complex_and_valid() -> None:
    """What Sessionwarden sends about a session passes its own check, with all three members."""
    subject = session_subject("u-1", "acme", "h-1")
    assert {
        "format": "complex",
        "user": {"format": "opaque", "id": "u-1"},
        "session": {"format": "opaque", "id": "h-1"},
        "tenant": {"format": "opaque", "id": "acme"},
    } == subject
    assert None is subject_problem(subject)
    assert "session" not in session_subject("u-1", "acme", None)
