"""The restore-fire benchmark reads from the enforcers' logs which partitions moved and when A
restored them; a probe on a partition that was itself restoring would measure the restore."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bench.restore_fire import owned, restore_of

T0 = 1_800_000_000.0


def msg(text: str, t: float, **fields: Any) -> dict[str, Any]:
    return {"msg": text, "ts": datetime.fromtimestamp(T0 + t, UTC).isoformat(), **fields}


def assigned(
    t: float, parts: list[int], pending: list[int] | None = None, records: int = 0
) -> dict[str, Any]:
    return msg(
        "partitions assigned and restored",
        t,
        partitions=parts,
        restoring=pending or [],
        restored_records=records,
    )


def restoring(t: float, parts: list[int]) -> dict[str, Any]:
    return msg("restoring newly assigned partitions", t, partitions=parts)


def test_owned_follows_incremental_rounds_and_revocations() -> None:
    """Cooperative rebalancing: B takes partition 0 first, then 1 and 2 in a later round."""
    log = [
        restoring(1, [0]),
        assigned(2, [0]),
        restoring(5, [1, 2]),
        assigned(6, [1], pending=[2]),
    ]
    assert ({0, 1}, True, T0 + 6) == owned(log)
    log.append(assigned(7, [2]))
    assert ({0, 1, 2}, False, T0 + 7) == owned(log)
    log.append(msg("partitions revoked", 9, partitions=[1]))
    assert ({0, 2}, False, T0 + 9) == owned(log)


def test_the_restore_ends_when_every_moved_partition_is_restored() -> None:
    log = [
        assigned(0, [3]),  # before the kill: not this restore
        restoring(10, [0, 1, 2]),
        assigned(12, [0], pending=[1, 2], records=100),
        assigned(14, [1, 2], records=250),
    ]
    assert restore_of(log[:3], 5, {0, 1, 2}) is None
    assert {"t0": T0 + 10, "t1": T0 + 14, "records": 350} == restore_of(log, 5, {0, 1, 2})


def test_a_restore_of_other_partitions_than_b_owned_is_refused() -> None:
    log = [restoring(10, [0, 1]), assigned(12, [0, 1])]
    with pytest.raises(SystemExit, match="B had owned"):
        restore_of(log, 5, {0})
