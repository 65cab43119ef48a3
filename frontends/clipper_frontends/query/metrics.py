"""Per-application counters of the query frontend (``GET /metrics``)."""

from __future__ import annotations

import time
from array import array
from typing import Any

#: latencies kept per application for the percentiles
RING = 4096


class AppMetrics:
    """Counters of one application; ``record`` is on the hot path, so cheap."""

    __slots__ = ("count", "defaults", "errors", "_lat", "_i", "_win_start", "_win_count",
                 "rate")

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

    def record(self, latency_s: float, n: int, defaults: int) -> None:
        """One answered request of ``n`` inputs, ``defaults`` of them defaults."""
        self.count += n
        self.defaults += defaults
        i = self._i
        self._lat[i % RING] = latency_s
        self._i = i + 1
        self._win_count += n

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
                "bad_requests": self.errors}
