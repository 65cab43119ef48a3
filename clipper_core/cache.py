"""The prediction cache: (model, version, input) -> output, bounded in bytes.

Eviction is CLOCK (second chance): a hit only sets a reference bit, so the
hit path costs one dict lookup and one attribute store (no re-ordering, no
allocation); eviction sweeps a hand over insertion order, sparing entries
referenced since the last sweep.  Only the query frontend's event loop
touches it, so it needs no lock.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

#: Bytes charged per entry besides key input and output: dict slot, tuple,
#: entry object; keeps a cache of tiny entries honest about its memory.
ENTRY_OVERHEAD = 160

Key = tuple[str, str, bytes]

#: What :meth:`PredictionCache.get` returns on a miss (a cached value may be None).
MISS: Any = object()


class _Entry:
    __slots__ = ("value", "size", "referenced")

    def __init__(self, value: Any, size: int) -> None:
        self.value = value
        self.size = size
        self.referenced = False


class PredictionCache:
    """A CLOCK cache of at most ``capacity_bytes``; 0 disables caching."""

    def __init__(self, capacity_bytes: int) -> None:
        if capacity_bytes < 0:
            raise ValueError("cache size must be >= 0")
        self.capacity = capacity_bytes
        self.used = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> Any:
        """The cached value, or :data:`MISS`."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return MISS
        entry.referenced = True
        self.hits += 1
        return entry.value

    def put(self, key: Key, value: Any, output_size: int) -> None:
        """Insert ``value`` whose wire output was ``output_size`` bytes."""
        if not self.capacity:
            return
        size = len(key[2]) + len(key[0]) + len(key[1]) + output_size + ENTRY_OVERHEAD
        if size > self.capacity:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.used -= old.size
        entries = self._entries
        while self.used + size > self.capacity and entries:
            k, e = entries.popitem(last=False)
            if e.referenced:  # second chance: move behind the hand
                e.referenced = False
                entries[k] = e
                continue
            self.used -= e.size
            self.evictions += 1
        entries[key] = _Entry(value, size)
        self.used += size

    def clear(self) -> None:
        self._entries.clear()
        self.used = 0

    def stats(self) -> dict[str, Any]:
        total = self.hits + self.misses
        return {"capacity_bytes": self.capacity, "used_bytes": self.used,
                "entries": len(self._entries), "hits": self.hits, "misses": self.misses,
                "hit_ratio": self.hits / total if total else 0.0,
                "evictions": self.evictions}
