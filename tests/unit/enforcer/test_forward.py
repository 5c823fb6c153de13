"""The forwarding decision: murmur2 of the key, cached, once-per-producer reporting."""

from __future__ import annotations

import random
import zlib

from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from sessionwarden.enforcer.engine.forward import (
    REPORTED_CAPACITY,
    Router,
    murmur2,
    murmur2_partition,
    producer_identity,
)

PARTITIONS = 6


def java_partition(signed_murmur2: int, partitions: int) -> int:
    return (signed_murmur2 & 0x7FFFFFFF) % partitions


def test_murmur2_matches_the_java_client() -> None:
    # Values from Kafka's own UtilsTest (Utils.murmur2, signed 32-bit).
    cases = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536}
    for key, signed in cases.items():
        for n in (1, 3, 6, 7, 100):
            assert java_partition(signed, n) == murmur2_partition(key, n), (key, n)


def test_murmur2_matches_aiokafka_on_every_length_and_byte() -> None:
    rng = random.Random(7)
    keys = [b"", b"\x00", b"\xff" * 5, b"u1", b"u12", b"u123", b"u1234"]
    keys += [rng.randbytes(rng.randrange(0, 70)) for _ in range(5000)]
    for key in keys:
        assert murmur2(key) == aiokafka_murmur2(key) & 0xFFFFFFFF, key


def test_records_on_their_murmur2_partition_stay() -> None:
    router = Router(PARTITIONS)
    for n in range(200):
        key = f"user-{n}".encode()
        assert router.target(key, murmur2_partition(key, PARTITIONS)) is None


def test_a_crc32_placed_record_is_sent_to_its_murmur2_partition() -> None:
    router = Router(PARTITIONS)
    moved = 0
    for n in range(200):
        key = f"user-{n}".encode()
        crc = zlib.crc32(key) % PARTITIONS  # librdkafka's default (consistent_random)
        right = murmur2_partition(key, PARTITIONS)
        expected = None if crc == right else right
        assert expected == router.target(key, crc)
        moved += expected is not None
    assert moved > 100  # most keys disagree between the two hashes


def test_null_keys_are_not_moved() -> None:
    assert Router(PARTITIONS).target(None, 3) is None


def test_each_producer_is_reported_once_in_bounded_memory() -> None:
    router = Router(PARTITIONS)
    assert router.first_from("client a")
    assert not router.first_from("client a")
    assert router.first_from("client b")
    for n in range(REPORTED_CAPACITY):
        router.first_from(f"client {n}")
    assert not router.first_from("client never-seen")


def test_producer_identity_prefers_a_client_header_and_never_shows_the_key() -> None:
    assert "client billing-7" == producer_identity(b"alice", [("client_id", b"billing-7")])
    anonymous = producer_identity(b"alice-secret-ish", None)
    assert anonymous.startswith("key prefix ")
    assert "alice" not in anonymous
    assert anonymous == producer_identity(b"alice-other", [("other", b"x")])
    assert anonymous != producer_identity(b"bob", None)
