"""A batch's pending state writes, read through while the batch is judged, then written once.

The shell judges a batch of audit records against :class:`PendingTables`: every read sees the
writes of the records before it (so judging a batch equals judging its records one by one),
and nothing reaches the real tables, or their changelogs, until :meth:`PendingTables.flush`,
which the shell calls after the batch's alerts were delivered. A key written several times in
a batch is written once, with its last value; a key the batch created and deleted again (a
session that started and ended within it) is not touched at all: the table never held it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import Any

from sessionwarden.detect.tables import Tables, Write

_ABSENT: Any = object()


class PendingTable(MutableMapping[Any, bytes]):
    """One table seen through its pending writes (None marks a pending delete)."""

    def __init__(self, table: MutableMapping[Any, bytes]) -> None:
        self.table = table
        self.writes: dict[Any, tuple[bytes | None, Any]] = {}
        """key -> (value or None, the event that wrote it last)."""

    def get(self, key: Any, default: Any = None) -> Any:
        found = self.writes.get(key, _ABSENT)
        if found is _ABSENT:
            return self.table.get(key, default)
        value = found[0]
        return default if value is None else value

    def __getitem__(self, key: Any) -> bytes:
        value = self.get(key, _ABSENT)
        if value is _ABSENT:
            raise KeyError(key)
        assert isinstance(value, bytes)
        return value

    def __setitem__(self, key: Any, value: bytes) -> None:
        self.writes[key] = (value, None)

    def __delitem__(self, key: Any) -> None:
        if self.get(key, _ABSENT) is _ABSENT:
            raise KeyError(key)
        self.writes[key] = (None, None)

    def __iter__(self) -> Iterator[Any]:
        for key in self.table:
            if key not in self.writes:
                yield key
        for key, (value, _) in self.writes.items():
            if value is not None:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)


class PendingTables(Mapping[str, PendingTable]):
    """Every table of the detectors, seen through one batch's pending writes."""

    def __init__(self, tables: Tables) -> None:
        self._tables = {name: PendingTable(table) for name, table in tables.items()}

    def __getitem__(self, name: str) -> PendingTable:
        return self._tables[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tables)

    def __len__(self) -> int:
        return len(self._tables)

    def apply(self, writes: Iterable[Write], event: Any = None) -> None:
        """Record an outcome's writes as pending, made by ``event``."""
        for w in writes:
            self._tables[w.table].writes[w.key] = (w.value, event)

    def flush(self, make_current: Callable[[Any], None] = lambda _: None) -> int:
        """Write every pending key once to the real tables; returns how many were written.

        A pending delete of a key the table does not hold is dropped (nothing to delete).
        ``make_current(event)`` runs before the writes of each event that made them (faust
        tables take a write's changelog partition from the current event)."""
        current: Any = _ABSENT
        written = 0
        for pending in self._tables.values():
            table = pending.table
            for key, (value, event) in pending.writes.items():
                if value is None and key not in table:
                    continue
                if event is not current:
                    make_current(event)
                    current = event
                if value is None:
                    table.pop(key, None)
                else:
                    table[key] = value
                written += 1
            pending.writes.clear()
        return written
