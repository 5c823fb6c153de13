"""Subject identifiers of RFC 9493, with the ``complex`` format and the SSF additions.

RFC 9493 section 3.2 defines the simple formats (each with exactly its own members, all
strings); SSF 1.0 section 3.2 adds ``jwt_id`` and ``saml_assertion_id``, and section 3.3 the
``complex`` subject: an object whose members (``user``, ``session``, ``tenant``...) are each a
simple subject. :func:`subject_problem` checks a hostile subject against these rules;
:func:`session_subject` builds the one Sessionwarden sends about a session.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

ACCOUNT: Final = "account"
EMAIL: Final = "email"
ISS_SUB: Final = "iss_sub"
OPAQUE: Final = "opaque"
PHONE_NUMBER: Final = "phone_number"
DID: Final = "did"
URI: Final = "uri"
ALIASES: Final = "aliases"
JWT_ID: Final = "jwt_id"
SAML_ASSERTION_ID: Final = "saml_assertion_id"
COMPLEX: Final = "complex"

SIMPLE_FORMATS: Final[dict[str, frozenset[str]]] = {
    ACCOUNT: frozenset({"uri"}),
    EMAIL: frozenset({"email"}),
    ISS_SUB: frozenset({"iss", "sub"}),
    OPAQUE: frozenset({"id"}),
    PHONE_NUMBER: frozenset({"phone_number"}),
    DID: frozenset({"url"}),
    URI: frozenset({"uri"}),
    JWT_ID: frozenset({"iss", "jti"}),
    SAML_ASSERTION_ID: frozenset({"issuer", "assertion_id"}),
}
"""Each simple format and the string members it has (all required, no others)."""

COMPLEX_MEMBERS: Final = frozenset(
    {"user", "device", "session", "application", "tenant", "org_unit", "group"}
)
"""The members a complex subject may have (SSF 1.0 section 3.1)."""

MAX_VALUE = 1024
"""The longest member value accepted (an email address is at most 254; URIs a little more)."""
MAX_ALIASES = 16


def canonical(subject: dict[str, Any]) -> bytes:
    """A subject's JSON with sorted keys: equal subjects, equal bytes."""
    return orjson.dumps(subject, option=orjson.OPT_SORT_KEYS)


def opaque(value: str) -> dict[str, str]:
    return {"format": OPAQUE, "id": value}


def session_subject(user_id: str, tenant: str, session_id: str | None) -> dict[str, Any]:
    """Sessionwarden's subject of a session event: a complex subject of opaque user, session
    and tenant (user and tenant only when there is no session, as for a risk change)."""
    subject: dict[str, Any] = {"format": COMPLEX, "user": opaque(user_id)}
    if session_id is not None:
        subject["session"] = opaque(session_id)
    subject["tenant"] = opaque(tenant)
    return subject


def subject_problem(subject: object) -> str | None:
    """Why ``subject`` is not a valid subject identifier, or None when it is."""
    return _problem(subject, nested=False)


def _problem(subject: object, *, nested: bool) -> str | None:
    if not isinstance(subject, dict):
        return "a subject identifier is a JSON object"
    fmt = subject.get("format")
    if not isinstance(fmt, str):
        return 'a subject identifier needs a string "format"'
    if fmt in SIMPLE_FORMATS:
        return _simple_problem(fmt, subject)
    if fmt == COMPLEX and not nested:
        members = set(subject) - {"format"}
        if not members:
            return "a complex subject needs at least one member"
        unknown = sorted(members - COMPLEX_MEMBERS)
        if unknown:
            return f"unknown complex subject members: {', '.join(unknown)[:200]}"
        for name in sorted(members):
            problem = _problem(subject[name], nested=True)
            if problem is not None:
                return f"{name}: {problem}"
        return None
    if fmt == ALIASES and not nested:
        ids = subject.get("identifiers")
        if set(subject) != {"format", "identifiers"} or not isinstance(ids, list):
            return 'an aliases subject has exactly "format" and "identifiers" (a list)'
        if not 0 < len(ids) <= MAX_ALIASES:
            return f"an aliases subject has 1 to {MAX_ALIASES} identifiers"
        for item in ids:
            problem = _problem(item, nested=True)
            if problem is not None:
                return f"identifiers: {problem}"
        return None
    if fmt in (COMPLEX, ALIASES):
        return f"a {fmt} subject cannot be nested"
    return f"unknown subject format: {fmt[:64]!r}"


def _simple_problem(fmt: str, subject: dict[str, Any]) -> str | None:
    wanted = SIMPLE_FORMATS[fmt]
    members = set(subject) - {"format"}
    if members != wanted:
        return f"the {fmt} format has exactly the members {', '.join(sorted(wanted))}"
    for name in sorted(wanted):
        value = subject[name]
        if not isinstance(value, str) or not value or len(value) > MAX_VALUE:
            return f"{fmt}.{name} must be a string of 1 to {MAX_VALUE} characters"
    if fmt == EMAIL and "@" not in subject["email"]:
        return "email.email must be an email address"
    return None
