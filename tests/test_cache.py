"""The prediction cache: bounds, CLOCK eviction, counters."""

from __future__ import annotations

import pytest

from clipper_core.cache import ENTRY_OVERHEAD, MISS, PredictionCache


def key(i: int) -> tuple[str, str, bytes]:
    return ("m", "1", i.to_bytes(8, "little"))


def test_hit_and_miss_counted() -> None:
    c = PredictionCache(1 << 20)
    assert c.get(key(1)) is MISS
    c.put(key(1), {"a": 1}, 10)
    assert c.get(key(1)) == {"a": 1}
    assert (c.hits, c.misses) == (1, 1)


def test_none_is_a_cacheable_value() -> None:
    c = PredictionCache(1 << 20)
    c.put(key(1), None, 4)
    assert c.get(key(1)) is None


def test_bounded_by_bytes() -> None:
    per_entry = 1 + 1 + 8 + 100 + ENTRY_OVERHEAD
    c = PredictionCache(per_entry * 10)
    for i in range(50):
        c.put(key(i), i, 100)
    assert c.used <= c.capacity
    assert len(c) == 10
    assert c.evictions == 40


def test_clock_gives_referenced_entries_a_second_chance() -> None:
    per_entry = 1 + 1 + 8 + 100 + ENTRY_OVERHEAD
    c = PredictionCache(per_entry * 3)
    for i in range(3):
        c.put(key(i), i, 100)
    assert c.get(key(0)) == 0  # referenced: survives the next eviction
    c.put(key(3), 3, 100)
    assert c.get(key(0)) == 0
    assert c.get(key(1)) is MISS


def test_zero_size_disables_and_oversized_entries_are_skipped() -> None:
    assert PredictionCache(0).put(key(1), 1, 10) is None
    c = PredictionCache(0)
    c.put(key(1), 1, 10)
    assert c.get(key(1)) is MISS
    small = PredictionCache(200)
    small.put(key(1), "x", 10_000)
    assert len(small) == 0
    with pytest.raises(ValueError):
        PredictionCache(-1)


def test_a_full_cache_of_scalar_outputs_leaves_nothing_for_the_garbage_collector() -> None:
    # Full collections walk every tracked object; a cache entry per prediction
    # once made them stall a busy frontend for tens of milliseconds.
    import gc

    c = PredictionCache(1 << 20)
    for i in range(2000):
        c.put(key(i), float(i), 8)
    gc.collect()
    tracked = sum(gc.is_tracked(e) for e in c._entries.values())
    assert tracked == 0
