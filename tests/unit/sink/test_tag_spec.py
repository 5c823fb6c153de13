"""The session tag as docs/DATABASE.md specifies it for services in other languages: the test
vectors printed there are checked against the code, byte for byte, so the two cannot drift."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from sessionwarden.contracts.postgres import TAG_CONNECTION, TAG_TRANSACTION, session_tag

DOC = Path(__file__).resolve().parents[3] / "docs" / "DATABASE.md"
_ROW = re.compile(r"^\| `([^`]*)` \| `([^`]*)` \| `([0-9a-f]+)` \| `([0-9a-f]{32})` \|$")


def doc_vectors() -> list[tuple[str, str, str, str]]:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("### The session tag") :]
    section = section[: section.index("\n## ")]
    rows = [_ROW.match(line) for line in section.splitlines()]
    return [(m[1], m[2], m[3], m[4]) for m in rows if m]


def test_the_documented_vectors_match_the_code() -> None:
    """A Go or Java service that follows the doc builds the name the sink looks for."""
    vectors = doc_vectors()
    assert len(vectors) >= 4
    for tenant, session_id, hashed, tag in vectors:
        preimage = f"{len(tenant)}:{tenant}\x1f{session_id}".encode()
        assert (hashed, tag) == (preimage.hex(), session_tag(tenant, session_id))
        assert tag == hashlib.sha256(bytes.fromhex(hashed)).hexdigest()[:32]


def test_the_vectors_cover_what_other_languages_get_wrong() -> None:
    """Non-ASCII text (UTF-8, not Latin-1) and a tenant beyond the BMP (code points, not
    UTF-16 units) are among the vectors."""
    tenants = [tenant for tenant, *_ in doc_vectors()]
    assert any(not t.isascii() for t in tenants)
    assert any(len(t) != len(t.encode("utf-16-le")) // 2 for t in tenants)


def test_application_names_are_the_prefix_and_the_tag() -> None:
    """swt:/swc: plus 32 hex digits: 36 ASCII bytes, under application_name's 63."""
    assert ("swt:", "swc:") == (TAG_TRANSACTION, TAG_CONNECTION)
    assert 36 == len((TAG_TRANSACTION + session_tag("acme", "s1")).encode("ascii"))
