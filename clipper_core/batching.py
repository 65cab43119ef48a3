"""Built-in batching policies, registered like any plugin's.

- ``aimd`` (``batch_size=-1``): additive-increase / multiplicative-decrease of
  the maximum batch, as in the Clipper paper: grow by a step while batches
  finish inside the latency objective, cut by a factor when one does not.
- ``fixed`` (``batch_size=N``): a fixed maximum of N.
- ``delayed``: like ``aimd``, but waits up to ``max_delay_s`` for a fuller
  batch when fewer than the maximum are queued.

A replica always takes whatever is queued up to the maximum; only
``delayed`` ever waits.
"""

from __future__ import annotations

from typing import Any

from .hookspecs import Register, hookimpl
from .models import ModelVersion


class FixedPolicy:
    """A fixed maximum batch size; never waits."""

    name = "fixed"

    def __init__(self, model: ModelVersion | None = None, *, max_batch: int | None = None) -> None:
        size = max_batch if max_batch is not None else (model.batch_size if model else 1)
        self._max = max(1, size)

    def max_batch_size(self) -> int:
        return self._max

    def batch_delay(self, queued: int) -> float:
        return 0.0

    def on_batch_done(self, size: int, latency_s: float, slo_s: float) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return {"policy": self.name, "max_batch_size": self._max}


class AIMDPolicy:
    """Additive increase, multiplicative decrease of the maximum batch size.

    The target is a fraction (``headroom``) of the SLO, so that queueing and
    the HTTP path keep the rest.  A batch that used the whole maximum and
    finished inside the target lets the maximum grow by ``step``; a batch
    over the target cuts the maximum to ``backoff`` times the size that was
    too slow.  Batches smaller than the maximum say nothing about whether a
    larger one would fit, so they do not grow it.
    """

    name = "aimd"

    def __init__(self, model: ModelVersion | None = None, *, start: int = 4, step: int = 2,
                 backoff: float = 0.9, headroom: float = 0.5, ceiling: int = 4096) -> None:
        self._max = float(start)
        self._step = step
        self._backoff = backoff
        self._headroom = headroom
        self._ceiling = ceiling

    def max_batch_size(self) -> int:
        return int(self._max)

    def batch_delay(self, queued: int) -> float:
        return 0.0

    def on_batch_done(self, size: int, latency_s: float, slo_s: float) -> None:
        if latency_s > slo_s * self._headroom:
            self._max = max(1.0, min(self._max, size) * self._backoff)
        elif size >= int(self._max):
            self._max = min(self._ceiling, self._max + self._step)

    def describe(self) -> dict[str, Any]:
        return {"policy": self.name, "max_batch_size": int(self._max)}


class DelayedPolicy(AIMDPolicy):
    """AIMD, plus waiting up to ``max_delay_s`` for a fuller batch."""

    name = "delayed"

    def __init__(self, model: ModelVersion | None = None, *, max_delay_s: float = 0.002,
                 **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self._delay = max_delay_s

    def batch_delay(self, queued: int) -> float:
        return self._delay if queued < int(self._max) else 0.0

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "max_delay_s": self._delay}


@hookimpl
def register_batching_policies(register: Register) -> None:
    register("aimd", AIMDPolicy)
    register("fixed", FixedPolicy)
    register("delayed", DelayedPolicy)
