"""The prediction cache: (model, version, input) -> output, bounded in bytes.

Eviction is CLOCK (second chance): a hit only sets a reference bit, so the
hit path costs one dict lookup and one set insertion (no re-ordering);
eviction sweeps a hand over insertion order, sparing entries referenced
since the last sweep.  Only the query frontend's event loop touches it, so
it needs no lock.

Entries are plain ``(value, size)`` tuples, not objects: the garbage
collector stops tracking a tuple of atoms, so a full cache of scalar outputs
adds nothing to the collector's full passes (measured: an entry object per
prediction made each full collection of a busy frontend take tens of ms).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

#: Bytes charged per entry besides key input and output: dict slot, key and
#: entry tuples; keeps a cache of tiny entries honest about its memory.
ENTRY_OVERHEAD = 160

Key = tuple[str, str, bytes]

#: What :meth:`PredictionCache.get` returns on a miss (a cached value may be None).
MISS: Any = object()


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
        self._entries: OrderedDict[Key, tuple[Any, int]] = OrderedDict()
        #: keys hit since the hand last passed them (the CLOCK reference bits)
        self._referenced: set[Key] = set()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> Any:
        """The cached value, or :data:`MISS`."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return MISS
        self._referenced.add(key)
        self.hits += 1
        return entry[0]

    def put(self, key: Key, value: Any, output_size: int) -> None:
        """Insert ``value`` whose wire output was ``output_size`` bytes."""
        if not self.capacity:
            return
        size = len(key[2]) + len(key[0]) + len(key[1]) + output_size + ENTRY_OVERHEAD
        if size > self.capacity:
            return
        entries = self._entries
        referenced = self._referenced
        old = entries.pop(key, None)
        if old is not None:
            self.used -= old[1]
            referenced.discard(key)
        while self.used + size > self.capacity and entries:
            k, e = entries.popitem(last=False)
            if k in referenced:  # second chance: move behind the hand
                referenced.discard(k)
                entries[k] = e
                continue
            self.used -= e[1]
            self.evictions += 1
        entries[key] = (value, size)
        self.used += size

    def clear(self) -> None:
        self._entries.clear()
        self._referenced.clear()
        self.used = 0

    def stats(self) -> dict[str, Any]:
        total = self.hits + self.misses
        return {"capacity_bytes": self.capacity, "used_bytes": self.used,
                "entries": len(self._entries), "hits": self.hits, "misses": self.misses,
                "hit_ratio": self.hits / total if total else 0.0,
                "evictions": self.evictions}
