"""Turn a run's results into latest.json, latest.md and latest.png.

``results`` is the dict bench/run.py builds: ``meta``, ``systems`` (name ->
label, status, startup, memory), ``points`` (one closed-loop measurement per
system, scenario and connection count), ``overload``, ``scale``, ``profile``,
``goodput`` and ``soak`` (see goodput_report.py).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import goodput_report  # noqa: E402

LOAD_SCENARIOS = ("noop", "sklearn", "sklearn-b1", "cache")
OURS = "clipper"
BASE = "bare"
PEERS = ("bentoml", "mlserver", "ray")


def point(results: dict[str, Any], system: str, scenario: str,
          connections: int) -> dict[str, Any] | None:
    for p in results["points"]:
        if (p["system"], p["scenario"], p["connections"]) == (system, scenario, connections):
            return p
    return None


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets of the benchmark issues (9, and 15 for goodput), each with
    the measured value (None when not measured in this run) and whether it
    is met."""
    out: list[dict[str, Any]] = []

    def add(name: str, value: float | None, goal: str, met: bool | None, unit: str = "",
            issue: int = 9) -> None:
        out.append({"target": name, "value": value, "goal": goal, "unit": unit,
                    "met": None if value is None else met, "issue": issue})

    def rps(system: str, scenario: str, c: int) -> float | None:
        p = point(results, system, scenario, c)
        return p["good_rps"] if p else None

    def p99(system: str, scenario: str, c: int) -> float | None:
        p = point(results, system, scenario, c)
        return p["p99_ms"] if p else None

    r = _ratio(rps(OURS, "noop", 64), rps(BASE, "noop", 64))
    add("noop@64 throughput vs bare", r, ">= 0.7x (stretch 1.0x)", r is not None and r >= 0.7,
        "x")
    r = _ratio(p99(OURS, "noop", 64), p99(BASE, "noop", 64))
    add("noop@64 p99 vs bare", r, "<= 1.5x", r is not None and r <= 1.5, "x")
    r = _ratio(rps(OURS, "sklearn", 64), rps(BASE, "sklearn", 64))
    add("sklearn@64 throughput vs bare", r, ">= 2x", r is not None and r >= 2.0, "x")
    v = p99(OURS, "sklearn", 64)
    add("sklearn@64 p99", v, "< 50 ms", v is not None and v < 50, "ms")
    r = _ratio(rps(OURS, "sklearn", 64), rps(OURS, "sklearn-b1", 64))
    add("sklearn@64 adaptive vs batch_size=1", r, ">= 2.5x", r is not None and r >= 2.5, "x")
    for peer in PEERS:
        if peer not in results["systems"]:
            continue
        worst: float | None = None
        for scenario in LOAD_SCENARIOS:
            for c in (16, 64):
                x = _ratio(rps(OURS, scenario, c), rps(peer, scenario, c))
                if x is not None:
                    worst = x if worst is None else min(worst, x)
        add(f"every scenario @16/64 vs {peer} (worst)", worst, ">= 10x",
            worst is not None and worst >= 10, "x")
    mem = results["systems"].get(OURS, {}).get("memory", {}).get("total_mib")
    add("peak RSS of the cluster serving noop", mem, "<= 200 MiB", mem is not None and mem <= 200,
        "MiB")
    st = results["systems"].get(OURS, {}).get("startup_s")
    add("start-up to first prediction", st, "<= 3 s", st is not None and st <= 3.0, "s")
    ov = results.get("overload", {}).get(OURS)
    if ov and "goodput_ratio" in ov:
        # goodput: real answers within the SLO (defaults are no success)
        add("overload 3x: goodput vs capacity", ov["goodput_ratio"], ">= 0.9x",
            ov["goodput_ratio"] >= 0.9, "x")
        errs = ov["status_errors"] + ov["socket_errors"]
        add("overload 3x: HTTP errors", errs, "0", errs == 0)
        rec = ov.get("recovered_ratio")
        add("overload: capacity after the load drops", rec, ">= 0.9x of before",
            rec is not None and rec >= 0.9, "x")
    else:
        add("overload 3x: goodput vs capacity", None, ">= 0.9x", None, "x")
    sc = results.get("scale", {}).get("ratio")
    add("scale: noop@64 with 1,000 apps vs 1 app", sc, ">= 0.9x", sc is not None and sc >= 0.9,
        "x")
    if results.get("goodput") or results.get("soak"):
        goodput_report.targets(
            results, lambda name, value, goal, met, unit: add(name, value, goal, met, unit, 15))
    return out


_ANSI = re.compile(r"\x1b\[[0-9;]*m|\[[0-9;]*m")


def _one_line(text: str, limit: int = 100) -> str:
    """First line of ``text``, shortened, safe inside a markdown table cell."""
    line = _ANSI.sub("", text).splitlines()[0] if text else ""
    return (line[:limit] + ("..." if len(line) > limit else "")).replace("|", "/")


def _fmt(v: Any, digits: int = 0) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    systems = [s for s in results["systems"]]
    labels = {s: results["systems"][s]["label"] for s in systems}
    lines = [f"# Benchmark results ({meta['date']})", "",
             f"`{meta['command']}` on {meta['machine']}; {meta['duration_s']:g} s per point "
             f"after a {meta['warmup_s']:g} s warm-up, `wrk -t1`; every system back to back "
             "in this one run. Throughput counts only 2xx answers that are not default "
             "outputs.", ""]
    lines += ["## Throughput (req/s) and latency p50 / p99 (ms)", "",
              "| scenario | conns | " + " | ".join(labels[s] for s in systems) + " |",
              "| --- | ---: | " + " | ".join("---:" for _ in systems) + " |"]
    conns = sorted({p["connections"] for p in results["points"]
                    if p["scenario"] in LOAD_SCENARIOS})
    for scenario in LOAD_SCENARIOS:
        for c in conns:
            cells = []
            for s in systems:
                p = point(results, s, scenario, c)
                if p is None:
                    cells.append("-")
                    continue
                extra = ""
                bad = p["errors"] + p["socket_errors"]
                if p.get("defaults"):
                    extra += f", {p['defaults']:,} defaults"
                if bad:
                    extra += f", {bad:,} errors"
                cells.append(f"**{p['good_rps']:,.0f}** ({p['p50_ms']:.1f} / "
                             f"{p['p99_ms']:.1f}{extra})")
            if any(cell != "-" for cell in cells):
                lines.append(f"| {scenario} | {c} | " + " | ".join(cells) + " |")
    for issue in sorted({t.get("issue", 9) for t in results["targets"]}):
        lines += ["", f"## Targets (issue {issue})", "", "| target | measured | goal | met |",
                  "| --- | ---: | --- | :---: |"]
        for t in results["targets"]:
            if t.get("issue", 9) != issue:
                continue
            met = {True: "yes", False: "**no**", None: "not measured"}[t["met"]]
            lines.append(f"| {t['target']} | {_fmt(t['value'], 2)} {t['unit']} | {t['goal']} "
                         f"| {met} |")
    lines += ["", "## Systems", "", "| system | status | start-up (s) | peak RSS (MiB) |",
              "| --- | --- | ---: | ---: |"]
    for s in systems:
        info = results["systems"][s]
        mem = info.get("memory", {})
        status = _one_line(info["status"])
        lines.append(f"| {labels[s]} | {status} | {_fmt(info.get('startup_s'), 2)} | "
                     f"{_fmt(mem.get('total_mib'), 1)} |")
    for s in systems:
        mem = results["systems"][s].get("memory", {})
        if mem.get("processes"):
            procs = ", ".join(f"{k} {v:.1f}" for k, v in mem["processes"].items())
            lines.append(f"\nPeak RSS of {labels[s]} serving noop (MiB): {procs}"
                         + (f"; supervisors (not in the total): {mem['supervisors_mib']:.1f}"
                            if mem.get("supervisors_mib") else ""))
    if results.get("overload"):
        lines += ["", "## Overload (open loop, constant rate)", "",
                  "| system | offered req/s | capacity req/s | goodput req/s | defaults | "
                  "HTTP errors | socket errors | unfinished | p99 (ms) | capacity after |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for s, ov in results["overload"].items():
            if "error" in ov or "goodput_ratio" not in ov:
                lines.append(f"| {labels.get(s, s)} | {ov.get('error', 'old format')} |"
                             + " |" * 9)
                continue
            lines.append(
                f"| {labels.get(s, s)} | {ov['rate']:,.0f} | {ov['capacity_rps']:,.0f} | "
                f"{ov['good_rps']:,.0f} ({ov['goodput_ratio']:.2f}x) | "
                f"{ov['defaults_share'] * 100:.1f} % | "
                f"{ov['status_errors']} | {ov['socket_errors']} | {ov['unfinished']} | "
                f"{ov['p99_ms']:.1f} | {_fmt(ov.get('recovered_rps'))} |")
        lines.append("")
        lines.append(results["overload_note"])
    lines += goodput_report.markdown(results)
    if results.get("scale"):
        sc = results["scale"]
        lines += ["", "## Scale", "",
                  f"noop@64 with one app: {_fmt(sc.get('before_rps'))} req/s; with "
                  f"{sc.get('apps'):,} apps and {sc.get('apps'):,} model versions registered "
                  f"(in {sc.get('register_s', 0):.1f} s): {_fmt(sc.get('after_rps'))} req/s "
                  f"(ratio {_fmt(sc.get('ratio'), 2)})."]
    if results.get("profile"):
        pr = results["profile"]
        lines += ["", "## Profile of the query frontend (py-spy, noop @64)", "",
                  f"{pr['samples']:,} samples. Share of samples per function (own time, "
                  "then including callees):", "",
                  "| function | own | incl. |", "| --- | ---: | ---: |"]
        for row in pr["top"]:
            lines.append(f"| `{row['function']}` | {row['self'] * 100:.1f} % | "
                         f"{row['total'] * 100:.1f} % |")
    failures = {s: i["status"] for s, i in results["systems"].items() if i["status"] != "ok"}
    if failures:
        lines += ["", "## Systems that did not run", ""]
        for s, why in failures.items():
            text = _ANSI.sub("", why)[-1500:].replace("`", "'")
            lines += [f"- {results['systems'][s]['label']}:", "", "```", text, "```", ""]
    lines.append("")
    return "\n".join(lines)


COLORS = {"clipper": "#d62728", "bare": "#1f77b4", "bentoml": "#2ca02c", "mlserver": "#9467bd",
          "ray": "#ff7f0e"}


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [p for p in results["points"] if p["scenario"] in LOAD_SCENARIOS]
    scenarios = [s for s in LOAD_SCENARIOS if any(p["scenario"] == s for p in points)]
    if not scenarios:
        scenarios = ["noop"]
    fig, axes = plt.subplots(2, len(scenarios), figsize=(4.2 * len(scenarios), 7.5),
                             squeeze=False)
    for col, scenario in enumerate(scenarios):
        top, bottom = axes[0][col], axes[1][col]
        for system, info in results["systems"].items():
            pts = sorted((p for p in points
                          if p["system"] == system and p["scenario"] == scenario),
                         key=lambda p: p["connections"])
            if not pts:
                continue
            xs = [p["connections"] for p in pts]
            color = COLORS.get(system, None)
            top.plot(xs, [p["good_rps"] for p in pts], "o-", color=color, label=info["label"],
                     linewidth=2)
            bottom.plot(xs, [p["p99_ms"] for p in pts], "o-", color=color,
                        label=f"{info['label']} p99", linewidth=2)
            bottom.plot(xs, [p["p50_ms"] for p in pts], "s--", color=color, alpha=0.6,
                        label=f"{info['label']} p50")
        top.set_title(scenario, fontsize=13, fontweight="bold")
        for ax in (top, bottom):
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted({p["connections"] for p in points}) or [1])
            ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
            ax.grid(True, alpha=0.3)
        top.set_ylim(bottom=0)
        top.set_ylabel("throughput (req/s)" if col == 0 else "")
        bottom.set_yscale("log")
        bottom.set_ylabel("latency (ms), solid p99, dashed p50" if col == 0 else "")
        bottom.set_xlabel("connections")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if labels:
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.965),
                   ncol=len(labels), frameon=False, fontsize=11)
    meta = results["meta"]
    fig.suptitle(f"clipper-core benchmark, {meta['date']} ({meta['machine']}); "
                 f"{meta['duration_s']:g} s per point, wrk -t1", y=0.995, fontsize=10,
                 color="#555555")
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: dict[str, Any], out: Path) -> None:
    """Compute the targets and write latest.json, latest.md and latest.png in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    results["targets"] = targets(results)
    (out / "latest.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (out / "latest.md").write_text(markdown(results))
    plot(results, out / "latest.png")
    goodput_report.plot(results, out / "latest-goodput.png")


if __name__ == "__main__":  # re-render the table and the plot from a JSON file
    import sys

    src = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results" /
               "latest.json")
    write(json.loads(src.read_text()), src.parent)
