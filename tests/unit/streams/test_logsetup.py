"""Session ids in log lines are salted hashes, never the raw identifier."""

from __future__ import annotations

from streams.logsetup import SessionHasher


def test_same_salt_gives_correlatable_hashes_and_hides_the_id() -> None:
    """Operators correlate lines across processes sharing a salt; the token never appears."""
    a, b = SessionHasher("salt-1"), SessionHasher("salt-1")
    assert a("sess-secret") == b("sess-secret")
    assert "sess-secret" not in a("sess-secret")
    assert 24 == len(a("sess-secret"))


def test_another_salt_gives_another_hash() -> None:
    """Without the salt, a hash cannot be matched against guessed session ids."""
    assert SessionHasher("salt-1")("s") != SessionHasher("salt-2")("s")
    assert SessionHasher("")("s") != SessionHasher("")("s")  # random salt per process
