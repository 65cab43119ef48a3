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


class Combined:
    """A selecting app's answer and the confidence behind it (the response
    carries ``"confidence"``); ``low`` when below the app's threshold, where
    the default output answers with the explanation "low confidence"."""

    __slots__ = ("output", "confidence", "low")

    def __init__(self, output: Any, confidence: float, low: bool = False) -> None:
        self.output = output
        self.confidence = round(float(confidence), 6)
        self.low = low


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

        def compare(value: Any) -> None:
            answer = primary.value
            if type(answer) is Combined and not answer.low:
                stats.compared += 1
                stats.agreed += agree(answer.output, value)

        def record(value: Any) -> None:
            if not _output(value):
                stats.missed += 1
                return
            stats.latencies.append(time.perf_counter() - t0)
            if primary is None:
                return
            waiting = primary.future
            if waiting is not None and not waiting.done():  # the shadow was faster
                waiting.add_done_callback(lambda _f: compare(value))
            else:
                compare(value)
        return record

    def describe(self) -> dict[str, Any]:
        return {"selections": dict(self.selections), "stragglers": self.missing,
                "low_confidence": self.low_confidence, "feedback": self.feedback,
                "shadows": {m: s.describe() for m, s in self.shadows.items()}}
