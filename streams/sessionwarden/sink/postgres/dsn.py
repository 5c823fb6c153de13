"""Connection strings in messages: what a log line or an error may show of a DSN
(``user@host:port/dbname``), and how to keep its password out of any text, libpq's errors
included (a parse error quotes the token it stopped at, which may be the password or a piece
of it: an unencoded ``%`` in a URI's password printed it whole).

Both forms are read generously, the way a person may have meant them rather than the way libpq
split them: in a URI the password runs from the first ``:`` of the user part to the last ``@``
(``postgresql://app:se@cret@db`` means ``se@cret``; libpq reads ``se`` and a host
``cret@db``), in ``?password=`` to the next ``&``; in ``key=value`` form a value runs to the
closing quote, or to the next ``key=``. Every reading, its percent-decoded form and its pieces
of three characters or more (split where a parser splits) are hidden."""

from __future__ import annotations

import re
from urllib.parse import unquote

import psycopg
from psycopg.conninfo import conninfo_to_dict

HIDDEN = "***"
_URI = re.compile(r"^\s*postgres(?:ql)?://", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"[?&]password=([^&#]*)", re.IGNORECASE)
_KV_PASSWORD = re.compile(r"(?:^|\s)password\s*=\s*", re.IGNORECASE)
_NEXT_KEY = re.compile(r"\s+\w+\s*=")
_SPLIT = re.compile(r"[@:/?&=#%\s'\"\\]+")
_QUOTED = re.compile(r'"[^"]*"')
_MIN_PIECE = 3
_ENCODE_HINT = (
    "if the password holds reserved characters, percent-encode them in a URI (% as %25,"
    " @ as %40, : as %3A, / as %2F) or quote the value in key=value form"
)


def _kv_value(rest: str) -> list[str]:
    """The readings of a key=value password that starts ``rest``."""
    if rest.startswith("'"):
        value, i = [], 1
        while i < len(rest) and rest[i] != "'":
            if rest[i] == "\\" and i + 1 < len(rest):
                i += 1
            value.append(rest[i])
            i += 1
        return ["".join(value), rest[1:i]]
    words = rest.split(None, 1)
    to_next_key = _NEXT_KEY.split(rest, maxsplit=1)[0]
    return [words[0] if words else "", to_next_key.strip()]


def secrets_in(dsn: str) -> list[str]:
    """Every text of ``dsn`` that may be (part of) its password, longest first."""
    found: set[str] = set()
    try:
        parsed = conninfo_to_dict(dsn).get("password")
    except psycopg.Error:
        parsed = None
    if parsed:
        found.add(str(parsed))
    uri = _URI.match(dsn)
    if uri:
        rest = dsn[uri.end() :]
        userinfo = rest[: rest.rfind("@")] if "@" in rest else ""
        if ":" in userinfo:
            found.add(userinfo.split(":", 1)[1])
        found.update(m.group(1) for m in _QUERY_PASSWORD.finditer(rest))
    else:
        for m in _KV_PASSWORD.finditer(dsn):
            found.update(_kv_value(dsn[m.end() :]))
    found |= {unquote(s) for s in found}
    found |= {piece for s in found for piece in _SPLIT.split(s) if len(piece) >= _MIN_PIECE}
    return sorted((s for s in found if s), key=len, reverse=True)


def redact(text: str, dsn: str) -> str:
    """``text`` with every possible piece of ``dsn``'s password replaced by ***."""
    for secret in secrets_in(dsn):
        text = text.replace(secret, HIDDEN)
    return text


def parses(dsn: str) -> bool:
    try:
        conninfo_to_dict(dsn)
    except psycopg.Error:
        return False
    return True


def ambiguous(dsn: str) -> bool:
    """True when libpq reads the password differently from the generous reading (a reserved
    character left unencoded), or cannot read the DSN at all."""
    try:
        parsed = str(conninfo_to_dict(dsn).get("password") or "")
    except psycopg.Error:
        return True
    uri = _URI.match(dsn)
    if not uri:
        return False
    rest = dsn[uri.end() :]
    userinfo = rest[: rest.rfind("@")] if "@" in rest else ""
    meant = unquote(userinfo.split(":", 1)[1]) if ":" in userinfo else ""
    return bool(meant) and meant != parsed


def describe_dsn(dsn: str) -> str:
    """user@host:port/dbname of a DSN, never its password."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "an unparsable DSN"
    host = parts.get("host") or parts.get("hostaddr") or "(default host)"
    described = f"{parts.get('user', '(default user)')}@{host}:{parts.get('port', 5432)}/" + str(
        parts.get("dbname", "(default database)")
    )
    return redact(described, dsn)


def connect_error(dsn: str, exc: BaseException) -> str:
    """The first line of a connection error, safe to print: the password's pieces hidden, and
    for a DSN libpq cannot parse every quoted token hidden too (it is a piece of the DSN)."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    if not parses(dsn):
        first = _QUOTED.sub(f'"{HIDDEN}"', first)
    first = redact(first, dsn)
    if ambiguous(dsn):
        first += f" ({_ENCODE_HINT})"
    return first
