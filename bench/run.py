"""Benchmark clipper-core against the bare Starlette baseline and the peers.

    python bench/run.py [--scenarios noop,sklearn,...] [--duration 15]
                        [--connections 1,16,64] [--peers] [--quick] [--profile]
                        [--goodput-seconds 15] [--soak-seconds 60]

Starts each system in turn (ours on the embedded default: ClipperConnection
with the local_process manager), checks it answers correctly, drives every
scenario with ``wrk -t1`` (overload, goodput and soak with bench/ratedrive.c,
which counts every prediction: see goodput.py), stops it, and goes on to the
next.  Writes bench/results/latest.{json,md,png} (and latest-goodput.png).
See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import attrs

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import goodput  # noqa: E402
import report  # noqa: E402
import workloads  # noqa: E402
from load import LoadError, raise_fd_limit, run_rate, run_wrk  # noqa: E402
from probes import PeakRSS, profile, summarize_profile  # noqa: E402, F401
from systems import Bare, Clipper, System, SystemError_  # noqa: E402

ALL_SCENARIOS = ("noop", "sklearn", "sklearn-b1", "cache", "overload", "scale", "memory",
                 "startup", "goodput", "soak")
#: Scenarios that need the sklearn models deployed.
SKLEARN_SCENARIOS = {"sklearn", "sklearn-b1", "overload", "goodput", "soak"}
LOAD_SCENARIOS = report.LOAD_SCENARIOS


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# One system
# ---------------------------------------------------------------------------
class Runner:
    def __init__(self, args: argparse.Namespace, results: dict[str, Any]) -> None:
        self.args = args
        self.results = results

    def measure(self, system: System, scenario: str, connections: int) -> dict[str, Any]:
        """Warm up, then one closed-loop point; defaults counted on the system."""
        url = system.url(scenario)
        body = system.endpoint(scenario).body
        if self.args.warmup > 0:
            run_wrk(url, connections, self.args.warmup, body)
        before = system.defaults(scenario)
        pt = run_wrk(url, connections, self.args.duration, body)
        after = system.defaults(scenario)
        defaults = (after - before) if before is not None and after is not None else 0
        good = max(0, pt.requests - pt.errors - defaults)
        row = {"system": system.name, "scenario": scenario, "connections": connections,
               "requests": pt.requests, "seconds": round(pt.seconds, 2),
               "rps": round(pt.rps, 1), "good_rps": round(good / pt.seconds, 1),
               "p50_ms": pt.p50_ms, "p90_ms": pt.p90_ms, "p99_ms": pt.p99_ms,
               "max_ms": pt.max_ms, "errors": pt.errors, "socket_errors": pt.socket_errors,
               "defaults": defaults}
        log(f"{system.name:9s} {scenario:10s} c={connections:<3d} {row['good_rps']:9,.0f} req/s "
            f"p50 {pt.p50_ms:6.1f} ms p99 {pt.p99_ms:7.1f} ms errors {pt.errors} "
            f"sock {pt.socket_errors} defaults {defaults}")
        self.results["points"].append(row)
        return row

    def run_system(self, system: System) -> None:
        info = self.results["systems"][system.name]
        log(f"starting {system.label}")
        try:
            system.start()
        except Exception as exc:
            info["status"] = f"did not start: {str(exc)[:600]}"
            log(info["status"])
            with contextlib.suppress(Exception):
                system.stop()
            return
        try:
            info["startup_s"] = round(system.startup_s or 0.0, 2)
            info["startup_note"] = system.startup_note
            log(f"{system.label} up in {info['startup_s']} s")
            self._checks(system)
            self._scenarios(system, info)
            info["status"] = "ok"
        except Exception as exc:
            info["status"] = f"failed: {type(exc).__name__}: {str(exc)[:600]}"
            log(info["status"] + "\n" + traceback.format_exc())
        finally:
            system.stop()

    def _checks(self, system: System) -> None:
        """Every endpoint answers the right thing before it is measured."""
        wanted = set(self.args.scenarios) & set(system.scenarios) & set(LOAD_SCENARIOS)
        if "noop" in wanted or "cache" in wanted:
            system.check("noop", workloads.NOOP_OUTPUT)
        if wanted & {"sklearn", "sklearn-b1"} and self.args.sklearn_expected is not None:
            for s in wanted & {"sklearn", "sklearn-b1"}:
                system.check(s, self.args.sklearn_expected)

    def _scenarios(self, system: System, info: dict[str, Any]) -> None:
        args = self.args
        for scenario in LOAD_SCENARIOS:
            if scenario not in args.scenarios or scenario not in system.scenarios:
                continue
            for c in args.connections:
                if scenario == "noop" and "memory" in args.scenarios:
                    pids = system.pids()
                    with PeakRSS(pids) as rss:
                        self.measure(system, scenario, c)
                    mem = info.setdefault("memory", {"processes": {}})
                    for k, v in rss.mib().items():
                        mem["processes"][k] = max(v, mem["processes"].get(k, 0.0))
                    mem["total_mib"] = round(sum(mem["processes"].values()), 1)
                    sup = getattr(system, "supervisor_pids", None)
                    if sup:
                        import psutil

                        with contextlib.suppress(psutil.Error):
                            mem["supervisors_mib"] = round(sum(
                                psutil.Process(p).memory_info().rss
                                for p in sup().values()) / 2**20, 1)
                else:
                    self.measure(system, scenario, c)
        if args.profile and isinstance(system, Clipper) and "noop" in system.scenarios:
            with contextlib.suppress(Exception):
                self.results["profile"] = profile(system, args)
        if "overload" in args.scenarios and "overload" in system.scenarios:
            try:
                self.results["overload"][system.name] = self.overload(system)
            except (LoadError, SystemError_, OSError) as exc:
                self.results["overload"][system.name] = {"error": str(exc)[:300]}
                log(f"overload failed: {exc}")
        if "scale" in args.scenarios and isinstance(system, Clipper):
            self.results["scale"] = self.scale(system)
        self._goodput(system)

    def _goodput(self, system: System) -> None:
        """The soak, then the goodput sweep (see goodput.py): the soak first,
        so its RSS "before" is not a high-water mark the sweep left."""
        settings = goodput.Settings.from_args(self.args)
        if "soak" in self.args.scenarios and isinstance(system, Clipper):
            self.results["soak"] = goodput.soak(system, settings, log)
        if "goodput" in self.args.scenarios and "goodput" in system.scenarios:
            sweep = goodput.Sweep(system, settings, log, self.args.sklearn_expected).run()
            self.results["goodput"][system.name] = sweep
            self.results["points"] += goodput.closed_points(system.name, sweep)

    def overload(self, system: System) -> dict[str, Any]:
        """3x the measured capacity of the model-bound path, open loop."""
        args = self.args
        source = "sklearn-b1" if isinstance(system, Clipper) else "sklearn"
        if isinstance(system, Clipper):
            system.add_slo_app("overload", "sklearn-b1", int(args.slo_ms * 1000))
        cap_row = report.point(self.results, system.name, source, 64)
        if cap_row is None:
            cap_row = self.measure(system, "overload", 64)
            self.results["points"].remove(cap_row)
        capacity = max(cap_row["good_rps"], 1.0)
        rate = 3 * capacity
        conns = int(min(1000, max(64, rate * 0.1)))
        ep = system.endpoint("overload")
        before = system.defaults("overload")
        log(f"{system.name} overload: {rate:,.0f} req/s offered for {args.overload_seconds} s "
            f"on {conns} connections (capacity {capacity:,.0f})")
        r = run_rate(system.host, system.port, ep.path, rate, args.overload_seconds, conns,
                     ep.body, args.slo_ms)
        after = system.defaults("overload")
        time.sleep(2)
        # Capacity after the load drops: the same measurement as before it
        # (the capacity source, whose SLO is long enough for a closed loop,
        # for as long as a point), but with no warm-up.  A 5 s sample of this
        # replica-bound path varied by +-20 % from one to the next.
        src = source if source in system.scenarios else "overload"
        src_defaults = system.defaults(src)
        rec = run_wrk(system.url(src), 64, max(2.0, args.duration), system.endpoint(src).body)
        rec_defaults = system.defaults(src)
        rec_good = rec.requests - rec.errors - (
            rec_defaults - src_defaults if rec_defaults is not None and src_defaults is not None
            else 0)
        rec_rps = max(0, rec_good) / rec.seconds if rec.seconds else 0.0
        sched = max(1, r["scheduled"])
        good_rps = r["good"] / r["seconds"] if r["seconds"] else 0.0
        out = {**{k: r[k] for k in ("rate", "scheduled", "sent", "completed", "status_errors",
                                    "socket_errors", "unfinished", "real", "good", "p50_ms",
                                    "p90_ms", "p99_ms", "max_ms", "per_second")},
               "capacity_rps": capacity, "capacity_source": f"{source}@64", "connections": conns,
               "slo_ms": args.slo_ms, "good_rps": round(good_rps, 1),
               "goodput_ratio": round(good_rps / capacity, 3),
               "defaults": r["defaults"], "defaults_share": r["defaults"] / sched,
               "defaults_by_metrics": (after - before) if before is not None else None,
               "recovered_rps": round(rec_rps, 1),
               "recovered_ratio": round(rec_rps / capacity, 3)}
        log(f"{system.name} overload: goodput {good_rps:,.0f}/s ({out['goodput_ratio']:.2f}x "
            f"capacity), defaults "
            f"{out['defaults_share']:.1%}, errors {r['status_errors']}+{r['socket_errors']}, "
            f"unfinished {r['unfinished']}, after {rec_rps:,.0f} good req/s")
        return out

    def scale(self, system: Clipper) -> dict[str, Any]:
        args = self.args
        before = report.point(self.results, system.name, "noop", 64)
        if before is None:
            before = self.measure(system, "noop", 64)
        log(f"registering {args.scale_apps} apps and model versions")
        reg_s = system.register_many(args.scale_apps)
        after = self.measure(system, "scale", 64)
        out = {"apps": args.scale_apps, "register_s": round(reg_s, 1),
               "before_rps": before["good_rps"], "after_rps": after["good_rps"],
               "ratio": round(after["good_rps"] / max(1.0, before["good_rps"]), 3)}
        log(f"scale: {out}")
        return out


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------
def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python bench/run.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenarios", default=",".join(ALL_SCENARIOS),
                   help=f"comma-separated subset of {','.join(ALL_SCENARIOS)}")
    p.add_argument("--duration", type=float, default=None, help="seconds per point (15)")
    p.add_argument("--warmup", type=float, default=None, help="seconds of warm-up (5)")
    p.add_argument("--connections", default=None, help="comma-separated (1,16,64)")
    p.add_argument("--peers", action="store_true",
                   help="also BentoML, MLServer and Ray Serve (installed into bench/.peers/)")
    p.add_argument("--only-peers", default=None,
                   help="with --peers: comma-separated subset of bentoml,mlserver,ray")
    p.add_argument("--no-bare", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="short smoke run")
    p.add_argument("--profile", action="store_true",
                   help="py-spy the query frontend on noop at 64 connections")
    p.add_argument("--overload-seconds", type=float, default=None, help="(20)")
    p.add_argument("--slo-ms", type=float, default=20.0)
    p.add_argument("--scale-apps", type=int, default=None, help="(1000)")
    p.add_argument("--goodput-seconds", type=float, default=None,
                   help="seconds per goodput point (--duration)")
    p.add_argument("--goodput-connections", default="16,64,256,1024",
                   help="closed-loop points of the goodput sweep")
    p.add_argument("--goodput-multiples", default="1.5,3,10",
                   help="open-loop points of the goodput sweep, x the capacity")
    p.add_argument("--soak-seconds", type=float, default=None, help="(60)")
    p.add_argument("--out", default=str(HERE / "results"))
    args = p.parse_args(argv)
    q = args.quick
    args.duration = args.duration or (2.0 if q else 15.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if q else 5.0)
    args.connections = [int(c) for c in (args.connections or ("1,16" if q else "1,16,64")
                                         ).split(",")]
    args.overload_seconds = args.overload_seconds or (3.0 if q else 20.0)
    args.scale_apps = args.scale_apps or (50 if q else 1000)
    args.goodput_seconds = args.goodput_seconds or (1.0 if q else args.duration)
    args.goodput_connections = [int(c) for c in args.goodput_connections.split(",")]
    args.goodput_multiples = [float(m) for m in args.goodput_multiples.split(",")]
    args.soak_seconds = args.soak_seconds or (3.0 if q else 60.0)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(ALL_SCENARIOS)
    if unknown:
        p.error(f"unknown scenarios {sorted(unknown)}; known: {', '.join(ALL_SCENARIOS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    os.environ.update({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
    work = HERE / ".work"
    work.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    raise_fd_limit()  # wrk and ratedrive inherit it: 1,024 connections and more
    need_sklearn = bool(set(args.scenarios) & SKLEARN_SCENARIOS)
    args.sklearn_expected = None
    if need_sklearn:
        import warnings

        import numpy as np

        log("training the sklearn model (fixed seed) for the output checks")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = workloads.train_sklearn()
        args.sklearn_expected = int(model.predict(np.asarray(
            [workloads.example_input(workloads.SKLEARN_FEATURES)]))[0])
    results: dict[str, Any] = {
        "meta": {"date": datetime.datetime.now(datetime.timezone.utc).strftime(
                     "%Y-%m-%d %H:%M UTC"),
                 "command": "python bench/run.py " + " ".join(argv if argv is not None
                                                              else sys.argv[1:]),
                 "machine": f"{os.cpu_count()} cores, {platform.machine()}, "
                            f"Python {platform.python_version()}",
                 "load_before": os.getloadavg()[0],
                 "duration_s": args.duration, "warmup_s": args.warmup,
                 "connections": args.connections, "scenarios": args.scenarios},
        "systems": {}, "points": [], "overload": {}, "scale": {}, "goodput": {},
        "overload_note": (f"Overload: {args.overload_seconds:g} s at 3x the capacity of the "
                          "model-bound path (ours: the sklearn model with batch_size=1 behind "
                          f"an app with a {args.slo_ms:g} ms SLO; bare: its inline sklearn "
                          "route), open loop on many connections; latency counted from each "
                          "request's due time; goodput counts real (non-default) 2xx answers "
                          "within the SLO."),
        "goodput_settings": attrs.asdict(goodput.Settings.from_args(args)),
    }
    systems: list[System] = [Clipper(tmp, with_sklearn=need_sklearn)]
    if not args.no_bare:
        systems.append(Bare(tmp, with_sklearn=need_sklearn))
    if args.peers:
        import peers

        wanted = args.only_peers.split(",") if args.only_peers else list(peers.PEERS)
        systems += [peers.PEERS[n](tmp) for n in wanted]
    runner = Runner(args, results)
    for system in systems:
        results["systems"][system.name] = {"label": system.label, "status": "not run"}
        if hasattr(system, "install"):
            try:
                log(f"installing {system.label} (if needed)")
                system.install()
            except Exception as exc:
                results["systems"][system.name]["status"] = f"not installed: {str(exc)[:600]}"
                log(results["systems"][system.name]["status"])
                continue
        runner.run_system(system)
        report.write(results, Path(args.out))  # after each system: partial results survive
    results["meta"]["load_after"] = os.getloadavg()[0]
    report.write(results, Path(args.out))
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"wrote {args.out}/latest.md, latest.json, latest.png")
    print((Path(args.out) / "latest.md").read_text())
    ok = all(info["status"] == "ok" for name, info in results["systems"].items()
             if name in ("clipper", "bare"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
