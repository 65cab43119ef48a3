"""Per-application counters of the query frontend (``GET /metrics``).

The counters are plain attributes bumped on the hot path; nothing else is
done per request but one bisect into a small tuple and an array increment
(:class:`Buckets`), which gives Prometheus its cumulative histograms at
scrape time (:mod:`.prometheus`).
"""

from __future__ import annotations

import time
from array import array
from bisect import bisect_left
from typing import Any

#: latencies kept per application for the percentiles
RING = 4096
#: upper bounds (seconds) of the request and batch latency histograms
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                     2.5, 5.0, 10.0)
#: upper bounds of the batch size histogram
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Buckets:
    """Counts of observations per bucket (not cumulative; the last is +Inf)
    and their sum: a Prometheus histogram kept at the cost of one bisect."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = array("Q", bytes(8 * (len(bounds) + 1)))
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count of observations <= le)`` pairs, ending with ``+Inf``."""
        out, total = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), total))
        return out

    @property
    def count(self) -> int:
        return sum(self.counts)


class BatchMetrics:
    """Batch size and latency histograms of one model version (per batch)."""

    __slots__ = ("sizes", "latencies")

    def __init__(self) -> None:
        self.sizes = Buckets(BATCH_SIZE_BUCKETS)
        self.latencies = Buckets(LATENCY_BUCKETS_S)

    def observe(self, size: int, latency_s: float) -> None:
        self.sizes.observe(size)
        self.latencies.observe(latency_s)


class AppMetrics:
    """Counters of one application; ``record`` is on the hot path, so cheap."""

    __slots__ = ("count", "defaults", "errors", "_lat", "_i", "_win_start", "_win_count",
                 "rate", "latency", "slo_defaults", "error_defaults", "no_model_defaults",
                 "shed")

    def __init__(self) -> None:
        self.count = 0
        self.defaults = 0
        #: requests refused with a 4xx (bad JSON, wrong input type, ...)
        self.errors = 0
        self._lat = array("d", bytes(8 * RING))
        self._i = 0
        self._win_start = time.monotonic()
        self._win_count = 0
        self.rate = 0.0
        #: request latency histogram (one observation per request)
        self.latency = Buckets(LATENCY_BUCKETS_S)
        #: default outputs by reason: no answer within the SLO, a model
        #: error, no model (or no connected replica)
        self.slo_defaults = 0
        self.error_defaults = 0
        self.no_model_defaults = 0
        #: inputs not queued because the queue was full (answered with the
        #: SLO default at their deadline, so also in ``slo_defaults``)
        self.shed = 0

    def record(self, latency_s: float, n: int, defaults: int) -> None:
        """One answered request of ``n`` inputs, ``defaults`` of them defaults."""
        self.count += n
        self.defaults += defaults
        i = self._i
        self._lat[i % RING] = latency_s
        self._i = i + 1
        self._win_count += n
        hist = self.latency  # Buckets.observe, inlined
        hist.counts[bisect_left(hist.bounds, latency_s)] += 1
        hist.sum += latency_s

    def describe(self) -> dict[str, Any]:
        now = time.monotonic()
        elapsed = now - self._win_start
        if elapsed >= 1.0:
            self.rate = self._win_count / elapsed
            self._win_start, self._win_count = now, 0
        n = min(self._i, RING)
        lats = sorted(self._lat[:n])

        def pct(p: float) -> float:
            return lats[min(n - 1, int(n * p))] * 1000 if n else 0.0

        return {"requests": self.count, "throughput_qps": round(self.rate, 2),
                "latency_ms": {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99),
                               "max": lats[-1] * 1000 if n else 0.0, "samples": n},
                "default_outputs": self.defaults,
                "default_ratio": self.defaults / self.count if self.count else 0.0,
                "defaults_by_reason": self.defaults_by_reason(),
                "shed_overload": self.shed,
                "bad_requests": self.errors}

    def defaults_by_reason(self) -> dict[str, int]:
        """Default outputs by reason (the ``reason`` label in Prometheus)."""
        return {"slo": self.slo_defaults, "model_error": self.error_defaults,
                "no_model": self.no_model_defaults}
