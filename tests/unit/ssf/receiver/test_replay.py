"""Replay protection: a jti is remembered as long as its SET could pass, and no longer."""

from __future__ import annotations

from pathlib import Path

from sessionwarden.ssf.receiver.replay import Claim, JtiJournal, JtiStore

KEY = ("https://idp", "j-1")


def test_a_committed_jti_is_seen_until_it_expires() -> None:
    store = JtiStore(10)
    assert Claim.NEW == store.claim(KEY, expires=100.0, now=0.0)
    store.commit(KEY)
    assert Claim.SEEN == store.claim(KEY, expires=100.0, now=99.9)
    assert Claim.NEW == store.claim(KEY, expires=300.0, now=100.0)


def test_a_jti_being_published_is_pending_and_a_released_one_is_new_again() -> None:
    """A failed publish frees the jti, so the transmitter's retry is not a replay."""
    store = JtiStore(10)
    store.claim(KEY, 100.0, 0.0)
    assert Claim.PENDING == store.claim(KEY, 100.0, 1.0)
    store.release(KEY)
    assert Claim.NEW == store.claim(KEY, 100.0, 2.0)


def test_the_same_jti_of_another_issuer_is_another_key() -> None:
    store = JtiStore(10)
    store.claim(KEY, 100.0, 0.0)
    store.commit(KEY)
    assert Claim.NEW == store.claim(("https://other", "j-1"), 100.0, 0.0)


def test_a_full_store_takes_nothing_new_until_jtis_expire() -> None:
    """Bounded: never more than capacity, and never a SET accepted unremembered."""
    store = JtiStore(2)
    for jti, expires in (("a", 50.0), ("b", 80.0)):
        store.claim(("i", jti), expires, 0.0)
        store.commit(("i", jti))
    assert Claim.FULL == store.claim(("i", "c"), 100.0, 10.0)
    assert Claim.NEW == store.claim(("i", "c"), 100.0, 50.0)
    assert 1 == len(store)


def test_one_issuer_filling_its_share_leaves_the_others_theirs() -> None:
    """A transmitter flooding valid SETs (or stream events, which publish nothing) makes only
    its own SETs wait: another tenant's transmitter is still taken."""
    store = JtiStore(4, issuers=2)
    for jti in ("a", "b"):
        assert Claim.NEW == store.claim(("flood", jti), 100.0, 0.0)
        store.commit(("flood", jti))
    assert Claim.FULL == store.claim(("flood", "c"), 100.0, 1.0)
    assert Claim.NEW == store.claim(("other", "a"), 100.0, 1.0)
    store.release(("other", "a"))
    assert Claim.NEW == store.claim(("other", "a"), 100.0, 1.0)
    assert Claim.NEW == store.claim(("other", "b"), 100.0, 1.0)
    assert Claim.FULL == store.claim(("other", "c"), 100.0, 1.0)
    assert Claim.NEW == store.claim(("flood", "c"), 100.0, 100.0)  # its own expired: room again


def test_the_journal_keeps_live_jtis_across_a_restart(tmp_path: Path) -> None:
    """Committed jtis come back after a restart; expired ones and a torn last line do not."""
    path = tmp_path / "jti.jsonl"
    store = JtiStore(10, JtiJournal(path, now=0.0))
    for jti, expires in (("a", 50.0), ("b", 500.0)):
        store.claim(("i", jti), expires, 0.0)
        store.commit(("i", jti))
    with path.open("ab") as f:
        f.write(b'["i","c",9')
    reopened = JtiStore(10, JtiJournal(path, now=100.0))
    assert 1 == len(reopened)
    assert Claim.SEEN == reopened.claim(("i", "b"), 500.0, 100.0)
    assert Claim.NEW == reopened.claim(("i", "a"), 500.0, 100.0)
    assert 0o600 == path.stat().st_mode & 0o777


def test_the_journal_is_compacted_while_it_grows(tmp_path: Path) -> None:
    """Expired jtis leave the file too, not only at a restart: it stays bounded."""
    path = tmp_path / "jti.jsonl"
    store = JtiStore(10_000, JtiJournal(path, now=0.0))
    for i in range(3000):
        key = ("i", str(i))
        store.claim(key, expires=i + 10.0, now=float(i))
        store.commit(key)
    assert len(path.read_bytes().splitlines()) <= 1001
    reopened = JtiStore(10_000, JtiJournal(path, now=2995.0))
    assert Claim.SEEN == reopened.claim(("i", "2999"), 3009.0, 2995.0)
