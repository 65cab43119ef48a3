"""The goodput sweep and the soak in the results: the targets of issue 15,
their markdown section and the goodput-against-offered-load plot.

``results["goodput"]`` is system -> app -> the sweep of goodput.Sweep.run_app;
``results["soak"]`` the dict of goodput.soak.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

OURS = "clipper"
#: Goodput at these points >= 0.9x the app's best; at the overload ones >= 0.7x.
NEAR_CONNECTIONS, NEAR_MULTIPLES, NEAR_GOAL = (64, 256), (1.5, 3.0), 0.9
FAR_CONNECTIONS, FAR_MULTIPLES, FAR_GOAL = (1024,), (10.0,), 0.7
#: p99 of every answer within SLO + this; capacity after >= this x before.
P99_MARGIN_MS, RECOVERY_GOAL, RSS_GOAL = 10.0, 0.95, 1.10

Add = Callable[[str, float | None, str, bool | None, str], None]


def _all_points(data: dict[str, Any]) -> list[dict[str, Any]]:
    pts: list[dict[str, Any]] = data["points"] + data["capacity_before"]
    return [*pts, *data["capacity_after"]]


def _worst(data: dict[str, Any], connections: Iterable[int],
           multiples: Iterable[float]) -> float | None:
    """The lowest goodput / best goodput among the chosen points (None: none run)."""
    cs, ms = set(connections), set(multiples)
    best = data["best_good_rps"] or 1.0
    ratios = [p["good_rps"] / best for p in data["points"]
              if (p["mode"] == "closed" and p["connections"] in cs)
              or (p["mode"] == "open" and p.get("multiple") in ms)]
    return min(ratios) if ratios else None


def targets(results: dict[str, Any], add: Add) -> None:
    """Adds the targets of issue 15 (ours) through ``add(name, value, goal,
    met, unit)``; ``met`` None when not measured in this run."""
    sweep = results.get("goodput", {}).get(OURS, {})
    for data in sweep.values():
        label = data["label"]
        w = _worst(data, NEAR_CONNECTIONS, NEAR_MULTIPLES)
        add(f"goodput {label} @64/256 conns, 1.5x/3x offered (worst) vs its best", w,
            f">= {NEAR_GOAL}x", w is not None and w >= NEAR_GOAL, "x")
        w = _worst(data, FAR_CONNECTIONS, FAR_MULTIPLES)
        add(f"goodput {label} @1,024 conns, 10x offered (worst) vs its best", w,
            f">= {FAR_GOAL}x", w is not None and w >= FAR_GOAL, "x")
        r = data.get("recovery_ratio")
        add(f"goodput {label}: capacity after overload vs before (medians)", r,
            f">= {RECOVERY_GOAL}x", r is not None and r >= RECOVERY_GOAL, "x")
    pts = [p for data in sweep.values() for p in _all_points(data)]
    slo = max((d["slo_ms"] for d in sweep.values()), default=None)
    p99 = max((p["p99_ms"] for p in pts), default=None)
    add("goodput sweep: p99 of every answer (worst point)", p99,
        f"<= SLO + {P99_MARGIN_MS:g} ms" + (f" ({slo + P99_MARGIN_MS:g} ms)" if slo else ""),
        p99 is not None and slo is not None and p99 <= slo + P99_MARGIN_MS, "ms")
    errs = sum(p["errors"] + p["socket_errors"] + p["unanswered"] for p in pts) if pts else None
    add("goodput sweep: HTTP errors (non-2xx, socket, unanswered)", errs, "0", errs == 0, "")
    soak = results.get("soak") or {}
    rss = soak.get("rss_ratio")
    add(f"soak {soak.get('multiple', 10):g}x for {soak.get('seconds', 60):g} s: frontend RSS "
        "after vs before", rss, f"<= {RSS_GOAL}x", rss is not None and rss <= RSS_GOAL, "x")
    left = sum(soak["queues_at_stop"].values()) if soak else None
    add("soak: queued queries right after the load stops", left,
        f"all 0 within {soak.get('queue_wait_limit_s', 2):g} s",
        soak.get("queues_empty_after_s") is not None, "")


def _errors(p: dict[str, Any]) -> str:
    return f"{p['errors']} / {p['socket_errors']} / {p['unanswered']}"


def _row(name: str, p: dict[str, Any], best: float) -> str:
    offered = f"{p['offered_rps']:,.0f}" if p.get("offered_rps") else "closed"
    return (f"| {name} | {offered} | **{p['good_rps']:,.0f}** | {p['good_rps'] / best:.2f} | "
            f"{p['real_rps']:,.0f} | {p['defaults_rps']:,.0f} | {_errors(p)} | "
            f"{p['p50_ms']:.1f} | {p['p99_ms']:.1f} |")


def markdown(results: dict[str, Any]) -> list[str]:
    """The goodput section: one table per system and app, then the soak."""
    sweep = results.get("goodput") or {}
    if not sweep and not results.get("soak"):
        return []
    labels = {s: i["label"] for s, i in results["systems"].items()}
    lines = ["", "## Goodput under overload (issue 15)", "",
             "Goodput: 2xx predictions with `\"default\": false` answered within the SLO, per "
             "second (the bare app has no defaults: its answers within the SLO). Closed loop "
             "from each send, open loop from each request's due time. Capacity points: closed "
             "loop before and after each open-loop point, compared by medians. Errors: non-2xx "
             "/ socket / unanswered (open loop)."]
    for system, apps in sweep.items():
        for data in apps.values():
            best = data["best_good_rps"] or 1.0
            lines += ["", f"### {labels.get(system, system)}: {data['label']} "
                      f"(SLO {data['slo_ms']:g} ms; best goodput {best:,.0f}/s, capacity for "
                      f"the rates {data['capacity_rps']:,.0f}/s)", "",
                      "| point | offered/s | goodput/s | vs best | real/s | defaults/s | "
                      "errors | p50 (ms) | p99 (ms) |",
                      "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
            for p in data["points"]:
                name = (f"{p['multiple']:g}x offered" if p["mode"] == "open"
                        else f"{p['connections']:,} conns")
                lines.append(_row(name, p, best))
            for side in ("before", "after"):
                for i, p in enumerate(data[f"capacity_{side}"], 1):
                    lines.append(_row(f"capacity {side} #{i} ({p['connections']} conns)",
                                      p, best))
            if data.get("recovery_ratio") is not None:
                lines += ["", f"Capacity (medians): {data['before_median_rps']:,.0f}/s before, "
                          f"{data['after_median_rps']:,.0f}/s after "
                          f"({data['recovery_ratio']:.2f}x)."]
    soak = results.get("soak")
    if soak:
        p = soak["point"]
        lines += ["", f"### Soak: {soak['seconds']:g} s at {soak['multiple']:g}x "
                  f"({p['offered_rps']:,.0f}/s offered to {soak['app']})", "",
                  f"Frontend RSS {soak['rss_before_mib']} MiB before, {soak['rss_peak_mib']} "
                  f"MiB at peak, {soak['rss_after_mib']} MiB after ({soak['rss_ratio']}x). "
                  f"Queues right after the load: {soak['queues_at_stop']}; all empty after "
                  f"{soak['queues_empty_after_s']} s. Goodput {p['good_rps']:,.0f}/s, defaults "
                  f"{p['defaults_rps']:,.0f}/s, p99 {p['p99_ms']:.1f} ms, errors {_errors(p)}."]
    lines += ["", "The non-overload figures (noop, sklearn at 1/16/64 connections) are "
              "compared with `bench/ab.py`, not here."]
    return lines


COLORS = {"clipper": "#d62728", "bare": "#1f77b4"}


def plot(results: dict[str, Any], path: Path) -> None:
    """Per app of ours (the bare app on every row): goodput and defaults per
    second against closed-loop connections, and against the offered load."""
    sweep = results.get("goodput") or {}
    ours = list(sweep.get(OURS, {}).items()) or [
        (a, d) for apps in sweep.values() for a, d in apps.items()]
    if not ours:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    others = [(s, d) for s, apps in sweep.items() if s != OURS for d in apps.values()]
    fig, axes = plt.subplots(len(ours), 2, figsize=(11, 4.2 * len(ours)), squeeze=False)
    for row, (_app, data) in enumerate(ours):
        series = [(OURS, data, f"clipper-core, {data['label']}")] + [
            (s, d, results["systems"].get(s, {}).get("label", s)) for s, d in others]
        for system, d, label in series:
            color = COLORS.get(system)
            closed = sorted((p for p in d["points"] if p["mode"] == "closed"),
                            key=lambda p: p["connections"])
            opened = sorted((p for p in d["points"] if p["mode"] == "open"),
                            key=lambda p: p["offered_rps"])
            for ax, pts, x in ((axes[row][0], closed, "connections"),
                               (axes[row][1], opened, "offered_rps")):
                if not pts:
                    continue
                xs = [p[x] for p in pts]
                ax.plot(xs, [p["good_rps"] for p in pts], "o-", color=color, linewidth=2,
                        label=f"{label}: goodput")
                if any(p["defaults_rps"] for p in pts):
                    ax.plot(xs, [p["defaults_rps"] for p in pts], "x--", color=color,
                            alpha=0.6, label=f"{label}: defaults")
        best = data["best_good_rps"]
        left, right = axes[row]
        left.set_xscale("log", base=2)
        left.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        left.set_xlabel("closed loop: connections")
        right.set_xlabel("open loop: offered load (req/s)")
        right.axhline(best, color="#888888", linestyle=":", label="best goodput (capacity)")
        for ax in (left, right):
            ax.set_ylim(bottom=0)
            ax.grid(True, alpha=0.3)
            ax.set_ylabel(f"per second ({data['label']}, SLO {data['slo_ms']:g} ms)")
            ax.legend(fontsize=8)
    fig.suptitle(f"Goodput (real answers within the SLO) under load, "
                 f"{results['meta']['date']}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

