"""The goodput sweep and the soak of issue 15: what users get under overload.

``goodput``, per app (ours: the sklearn model with ``batch_size=1`` and with
adaptive batching, each behind an app with the SLO; the bare baseline: its
inline sklearn route), in this order:

1. a warm-up, then closed loop at 16, 64, 256 and 1,024 connections;
2. the app's capacity: the best goodput of those points;
3. for each multiple (1.5x, 3x, 10x of that capacity): a capacity point
   (closed loop at 16 connections), the open-loop point at that rate, and a
   capacity point again, so "before" and "after" alternate in time and see
   the same machine drift; they are compared by their medians.

``soak`` (run first when both are asked for): the frontend's RSS before and
after ``--soak-seconds`` at 10x the capacity of the ``batch_size=1`` app,
and every model's queue length read from ``/metrics`` right after the load
stops.

Every point is driven by bench/ratedrive.c, which counts each prediction:
goodput is a 2xx answer whose ``"default"`` is false and whose latency is
within the SLO (the bare app has no defaults: its answers within the SLO).
Every request carries a distinct input.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import attrs
import httpx
import workloads
from load import run_closed, run_rate
from probes import PeakRSS
from systems import GOODPUT_MODELS, Clipper, System

#: What each goodput app is, for tables and plots.
LABELS = {"goodput-b1": "batch_size=1", "goodput-adaptive": "adaptive batching",
          "goodput-inline": "model inline"}
#: The app the soak drives (the one whose replica saturates first).
SOAK_APP = "goodput-b1"
#: How long the queues may take to empty after the soak's generator exits.
QUEUE_WAIT_S = 2.0

Log = Callable[[str], None]


@attrs.frozen
class Settings:
    """Durations, connection counts and rates of the sweep and the soak."""

    slo_ms: float
    point_s: float
    warmup_s: float
    connections: tuple[int, ...]
    multiples: tuple[float, ...]
    capacity_connections: int
    soak_s: float
    soak_multiple: float

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        return cls(slo_ms=args.slo_ms, point_s=args.goodput_seconds, warmup_s=args.warmup,
                   connections=tuple(args.goodput_connections),
                   multiples=tuple(args.goodput_multiples), capacity_connections=16,
                   soak_s=args.soak_seconds, soak_multiple=10.0)


def open_connections(rate: float) -> int:
    """Connections of an open-loop point: 100 ms of requests, 64 to 4,096 (a
    request due while its connection is still busy is sent late, and its
    latency counted from when it was due)."""
    return int(min(4096, max(64, rate * 0.1)))


def row_of(r: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """One point from ratedrive's counts: rates per second of the run."""
    secs = r["seconds"] or 1.0
    is_open = r["mode"] == "open"
    return {**extra, "mode": r["mode"], "connections": r["connections"],
            "offered_rps": round(r["rate"], 1) if is_open else None,
            "seconds": round(secs, 2), "requests": r["completed"],
            "scheduled": r["scheduled"], "sent": r["sent"],
            "good_rps": round(r["good"] / secs, 1), "real_rps": round(r["real"] / secs, 1),
            "defaults_rps": round(r["defaults"] / secs, 1),
            "answers_rps": round(r["completed"] / secs, 1),
            "errors": r["status_errors"], "socket_errors": r["socket_errors"],
            # closed loop: what is in flight when the run stops is no failure
            "unanswered": r["unfinished"] if is_open else 0,
            "p50_ms": r["p50_ms"], "p90_ms": r["p90_ms"], "p99_ms": r["p99_ms"],
            "max_ms": r["max_ms"], "good_per_second": r["good_per_second"]}


class Sweep:
    """Drives the goodput sweep of one system (already started)."""

    def __init__(self, system: System, settings: Settings, log: Log,
                 expected: Any = None) -> None:
        self.system = system
        self.s = settings
        self.log = log
        #: the model's output for the example input, checked before the sweep
        self.expected = expected

    def closed(self, app: str, connections: int, seconds: float) -> dict[str, Any]:
        ep = self.system.endpoint(app)
        r = run_closed(self.system.host, self.system.port, ep.path, connections, seconds,
                       ep.body, self.s.slo_ms)
        return self._logged(app, row_of(r))

    def open(self, app: str, rate: float, multiple: float) -> dict[str, Any]:
        ep = self.system.endpoint(app)
        r = run_rate(self.system.host, self.system.port, ep.path, rate, self.s.point_s,
                     open_connections(rate), ep.body, self.s.slo_ms)
        return self._logged(app, row_of(r, multiple=multiple))

    def _logged(self, app: str, row: dict[str, Any]) -> dict[str, Any]:
        where = (f"{row['offered_rps']:,.0f}/s" if row["offered_rps"] else
                 f"c={row['connections']}")
        self.log(f"{self.system.name:7s} {app:16s} {row['mode']:6s} {where:>10s} goodput "
                 f"{row['good_rps']:8,.0f}/s defaults {row['defaults_rps']:8,.0f}/s p99 "
                 f"{row['p99_ms']:7.1f} ms errors {row['errors']}+{row['socket_errors']}"
                 f"+{row['unanswered']}")
        return row

    def run_app(self, app: str) -> dict[str, Any]:
        """The whole sweep of one app; see the module's docstring."""
        s = self.s
        if self.expected is not None:
            self.system.check(app, self.expected)
        if s.warmup_s > 0:
            self.closed(app, s.capacity_connections, s.warmup_s)
        points = [self.closed(app, c, s.point_s) for c in s.connections]
        capacity = max([p["good_rps"] for p in points] + [1.0])
        before: list[dict[str, Any]] = []
        after: list[dict[str, Any]] = []
        for m in s.multiples:
            before.append(self.closed(app, s.capacity_connections, s.point_s))
            points.append(self.open(app, m * capacity, m))
            after.append(self.closed(app, s.capacity_connections, s.point_s))
        med_before = statistics.median(p["good_rps"] for p in before) if before else None
        med_after = statistics.median(p["good_rps"] for p in after) if after else None
        best = max(p["good_rps"] for p in points + before + after)
        return {"label": LABELS.get(app, app), "slo_ms": s.slo_ms,
                "capacity_rps": capacity, "best_good_rps": best, "points": points,
                "capacity_connections": s.capacity_connections,
                "capacity_before": before, "capacity_after": after,
                "before_median_rps": med_before, "after_median_rps": med_after,
                "recovery_ratio": round(med_after / med_before, 3)
                if med_before and med_after is not None else None}

    def run(self) -> dict[str, Any]:
        """Every goodput app of the system (ours: registered here first)."""
        if isinstance(self.system, Clipper):
            for app in GOODPUT_MODELS:
                ensure_app(self.system, app, self.s.slo_ms)
        return {app: self.run_app(app) for app in self.system.goodput_apps}


def closed_points(system: str, sweep: dict[str, Any]) -> list[dict[str, Any]]:
    """The sweep's closed-loop points as rows of ``results["points"]`` (the
    scenario is the app), so bench/ab.py can compare them."""
    return [{"system": system, "scenario": app, **{k: v for k, v in p.items()
                                                  if k != "good_per_second"}}
            for app, data in sweep.items() for p in data["points"] if p["mode"] == "closed"]


def ensure_app(system: Clipper, app: str, slo_ms: float) -> None:
    """Register goodput app ``app`` unless the frontend serves it already."""
    x = workloads.example_input(system.endpoint(app).body.width)
    r = httpx.post(system.url(app), json={"input": x}, timeout=10)
    if r.status_code == 404:
        system.add_slo_app(app, GOODPUT_MODELS[app], int(slo_ms * 1000))


def rss_mib(pid: int) -> float:
    import psutil

    rss: int = psutil.Process(pid).memory_info().rss
    return round(rss / 2**20, 1)


def queue_lengths(system: Clipper) -> dict[str, int]:
    """Every model's queue length on the query frontend (``/metrics``)."""
    models = system.metrics().get("models") or {}
    return {name: int(m.get("queue_length", 0)) for name, m in models.items()}


def wait_queues_empty(system: Clipper, limit_s: float) -> tuple[dict[str, int], float | None]:
    """The queues right away, and how long until every one is empty (None:
    not within ``limit_s``)."""
    t0 = time.monotonic()
    first = queues = queue_lengths(system)
    while any(queues.values()):
        if time.monotonic() - t0 > limit_s:
            return first, None
        time.sleep(0.05)
        queues = queue_lengths(system)
    return first, round(time.monotonic() - t0, 2)


def soak(system: Clipper, s: Settings, log: Log) -> dict[str, Any]:
    """``s.soak_s`` at ``s.soak_multiple`` x the capacity of :data:`SOAK_APP`
    (its best goodput at 16 and 64 connections, measured after a warm-up):
    frontend RSS before, at peak and after; queues left behind."""
    sweep = Sweep(system, s, log)
    ensure_app(system, SOAK_APP, s.slo_ms)
    if s.warmup_s > 0:
        sweep.closed(SOAK_APP, s.capacity_connections, s.warmup_s)
    capacity = max(sweep.closed(SOAK_APP, c, s.point_s)["good_rps"]
                   for c in (s.capacity_connections, 64))
    pid = system.frontend_pid()
    before = rss_mib(pid)
    rate = s.soak_multiple * capacity
    log(f"soak: {rate:,.0f} req/s offered to {SOAK_APP} for {s.soak_s:g} s "
        f"(capacity {capacity:,.0f}); frontend RSS {before} MiB")
    ep = system.endpoint(SOAK_APP)
    with PeakRSS({"frontend": pid}) as peak:
        r = run_rate(system.host, system.port, ep.path, rate, s.soak_s, open_connections(rate),
                     ep.body, s.slo_ms)
    first, empty_after = wait_queues_empty(system, QUEUE_WAIT_S)
    time.sleep(1.0)
    after = rss_mib(pid)
    point = row_of(r, multiple=s.soak_multiple)
    out: dict[str, Any] = {"app": SOAK_APP, "multiple": s.soak_multiple, "capacity_rps": capacity,
           "seconds": s.soak_s, "rss_before_mib": before,
           "rss_peak_mib": peak.mib().get("frontend"), "rss_after_mib": after,
           "rss_ratio": round(after / before, 3) if before else None,
           "queues_at_stop": first, "queues_empty_after_s": empty_after,
           "queue_wait_limit_s": QUEUE_WAIT_S, "point": point}
    log(f"soak: RSS {before} -> {after} MiB (peak {out['rss_peak_mib']}), queues at stop "
        f"{first}, empty after {empty_after} s; goodput {point['good_rps']:,.0f}/s")
    return out

