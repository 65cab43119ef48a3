"""Counters of the model-selection layer for ``/metrics`` (selections per
model, stragglers, low-confidence answers, feedback, each shadow model's
agreement with the primary and its latency), and the low-confidence answer."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from clipper_core.selection import agree

from .deadlines import TIMEOUT
from .queues import ModelError

#: latencies kept per shadow model for its percentiles
WINDOW = 2048


#: the default explanation of an answer below the app's confidence threshold
LOW_CONFIDENCE = "low confidence"


class LowConfidence:
    """An ensemble's answer below the app's confidence threshold."""

    __slots__ = ("output", "confidence")

    def __init__(self, output: Any, confidence: float) -> None:
        self.output = output
        self.confidence = confidence


def _output(value: Any) -> bool:
    return value is not None and value is not TIMEOUT and type(value) is not ModelError


class ShadowStats:
    __slots__ = ("compared", "agreed", "missed", "latencies")

    def __init__(self) -> None:
        self.compared = 0
        self.agreed = 0
        self.missed = 0
        self.latencies: deque[float] = deque(maxlen=WINDOW)

    def describe(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3, 3) if lat else None

        return {"compared": self.compared, "agreement": (round(self.agreed / self.compared, 4)
                                                         if self.compared else None),
                "missed": self.missed, "p50_ms": pct(0.5), "p99_ms": pct(0.99)}


class SelectionMetrics:
    """One application's selection counters."""

    def __init__(self) -> None:
        self.selections: dict[str, int] = {}
        #: chosen models that had no replica or missed the SLO (stragglers)
        self.missing = 0
        self.low_confidence = 0
        self.feedback = 0
        self.shadows: dict[str, ShadowStats] = {}

    def selected(self, model: str) -> None:
        self.selections[model] = self.selections.get(model, 0) + 1

    def shadow_done(self, model: str, t0: float, primary: Any) -> Callable[[Any], None]:
        """``record(value)`` for a shadow's answer: its latency and whether it
        agrees with the primary's answer (``primary``: a Combine, or None)."""
        stats = self.shadows.setdefault(model, ShadowStats())

        def record(value: Any) -> None:
            if not _output(value):
                stats.missed += 1
                return
            stats.latencies.append(time.perf_counter() - t0)
            answer = primary.value if primary is not None else None
            if _output(answer) and type(answer) is not LowConfidence:
                stats.compared += 1
                stats.agreed += agree(answer, value)
        return record

    def describe(self) -> dict[str, Any]:
        return {"selections": dict(self.selections), "stragglers": self.missing,
                "low_confidence": self.low_confidence, "feedback": self.feedback,
                "shadows": {m: s.describe() for m, s in self.shadows.items()}}
