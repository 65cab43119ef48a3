"""The benchmark harness: --quick runs of bench/run.py start a real cluster
and the bare baseline, drive them and write the table, the JSON and the
plots; the goodput counting of bench/ratedrive.c against a scripted server;
the targets of issue 15 from made-up sweeps."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import goodput_report  # noqa: E402
import load  # noqa: E402
import report  # noqa: E402

needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (apt wrk)")
needs_cc = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                              reason="needs a C compiler for bench/ratedrive.c")


@needs_wrk
def test_quick_noop_run_writes_results(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--scenarios", "noop",
         "--connections", "1", "--duration", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=170, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((out / "latest.json").read_text())
    assert data["systems"]["clipper"]["status"] == "ok"
    assert data["systems"]["bare"]["status"] == "ok"
    points = {(p["system"], p["scenario"], p["connections"]): p for p in data["points"]}
    assert set(points) == {("clipper", "noop", 1), ("bare", "noop", 1)}
    for p in points.values():
        # real answers were counted, none of them errors or default outputs
        assert p["requests"] > 0 and p["good_rps"] > 0
        assert p["errors"] == 0 and p["socket_errors"] == 0 and p["defaults"] == 0
        assert 0 < p["p50_ms"] <= p["p99_ms"]
    assert 0 < data["systems"]["clipper"]["startup_s"] < 120
    md = (out / "latest.md").read_text()
    assert "| noop | 1 |" in md and "clipper-core" in md and "bare Starlette" in md
    png = (out / "latest.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_profile_summary_counts_own_and_inclusive_samples(tmp_path: Path) -> None:
    import run
    raw = tmp_path / "p.txt"
    raw.write_text("main (a.py:1);handle (b.py:2);parse (c.py:3) 6\n"
                   "main (a.py:1);handle (b.py:2) 3\n"
                   "main (a.py:1);send (d.py:9) 1\n")
    s = run.summarize_profile(raw)
    assert s["samples"] == 10
    rows = {r["function"]: r for r in s["top"]}
    assert rows["parse (c.py)"]["self"] == pytest.approx(0.6)
    assert rows["handle (b.py)"]["self"] == pytest.approx(0.3)
    assert rows["handle (b.py)"]["total"] == pytest.approx(0.9)
    incl = {r["function"]: r["total"] for r in s["top_inclusive"]}
    assert incl["main (a.py)"] == pytest.approx(1.0)


# ---------------------------------------------------------------------------
# Goodput counting (bench/ratedrive.c) against a scripted server
# ---------------------------------------------------------------------------
#: path -> (status, body, delay): one real answer, one default (spaces after
#: the colons, as Python's json writes them), a batch of two real and one
#: default, a real answer too late for a 20 ms SLO, an error.
SCRIPT: dict[str, tuple[int, bytes, float]] = {
    "/real": (200, b'{"query_id":1,"output":3,"default":false}', 0.0),
    "/default": (200, b'{"query_id": 1, "output": -1, "default": true, '
                      b'"default_explanation": "Failed to retrieve a prediction"}', 0.0),
    "/batch": (200, b'{"batch_predictions":[{"output":1,"default":false},{"output":-1,'
                    b'"default":true,"default_explanation":"slo"},{"output":2,'
                    b'"default":false}]}', 0.0),
    "/slow": (200, b'{"output":3,"default":false}', 0.05),
    "/error": (503, b'{"error":"busy"}', 0.0),
}


class _Scripted(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        status, body, delay = SCRIPT[self.path]
        time.sleep(delay)
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the generator hangs up with requests in flight when its time is up


@pytest.fixture
def scripted() -> Iterator[int]:
    server = _Server(("127.0.0.1", 0), _Scripted)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _closed(port: int, path: str, slo_ms: float = 20.0) -> dict[str, Any]:
    return load.run_closed("127.0.0.1", port, path, 2, 0.4, load.Body(width=4), slo_ms)


@needs_cc
def test_ratedrive_counts_every_prediction(scripted: int) -> None:
    real = _closed(scripted, "/real")
    assert real["mode"] == "closed" and real["completed"] > 10
    assert real["predictions"] == real["real"] == real["completed"] == real["within_slo"]
    assert real["defaults"] == 0 and real["good"] == real["completed"]
    assert real["status_errors"] == real["socket_errors"] == 0
    assert sum(real["good_per_second"]) == real["good"]

    dflt = _closed(scripted, "/default")
    assert dflt["defaults"] == dflt["completed"] > 0
    assert dflt["real"] == dflt["good"] == 0  # defaults are no goodput, however fast

    batch = _closed(scripted, "/batch")
    n = batch["completed"]
    assert n > 0 and batch["predictions"] == 3 * n
    assert batch["real"] == batch["good"] == 2 * n and batch["defaults"] == n

    slow = _closed(scripted, "/slow")
    assert slow["real"] == slow["completed"] > 0
    assert slow["good"] == 0 and slow["p50_ms"] >= 50  # real, but after the SLO
    assert _closed(scripted, "/slow", slo_ms=1000)["good"] > 0

    err = _closed(scripted, "/error")
    assert err["status_errors"] == err["completed"] > 0
    assert err["predictions"] == err["good"] == 0


@needs_cc
def test_ratedrive_open_loop_keeps_the_schedule(scripted: int) -> None:
    r = load.run_rate("127.0.0.1", scripted, "/batch", 200.0, 0.5, 4, load.Body(width=4), 20.0)
    assert r["mode"] == "open" and r["scheduled"] == r["sent"] == r["completed"] == 100
    assert r["unfinished"] == 0 and r["real"] == 200 and r["defaults"] == 100
    # two connections, 50 ms per answer, 100 req/s: the backlog is charged
    # from each request's due time (no coordinated omission)
    late = load.run_rate("127.0.0.1", scripted, "/slow", 100.0, 0.5, 2, load.Body(width=4),
                         1000.0)
    assert late["scheduled"] == 50 and late["completed"] == 50
    assert late["max_ms"] > 150 and late["good"] == late["completed"]


# ---------------------------------------------------------------------------
# The targets of issue 15
# ---------------------------------------------------------------------------
def _pt(mode: str, good: float, c: int = 16, multiple: float | None = None,
        p99: float = 10.0, errors: int = 0) -> dict[str, Any]:
    return {"mode": mode, "connections": c, "multiple": multiple, "good_rps": good,
            "real_rps": good, "defaults_rps": 0.0, "offered_rps": 1.0 if multiple else None,
            "errors": errors, "socket_errors": 0, "unanswered": 0, "p50_ms": 1.0,
            "p99_ms": p99}


def _sweep(near: float, far: float, before: list[float], after: list[float],
           p99: float = 10.0, errors: int = 0) -> dict[str, Any]:
    points = [_pt("closed", 1000), _pt("closed", near, 64), _pt("closed", 1000, 256),
              _pt("closed", far, 1024, p99=p99),
              _pt("open", 1000, 64, 1.5), _pt("open", 1000, 64, 3.0, errors=errors),
              _pt("open", 1000, 64, 10.0)]
    import statistics

    b, a = statistics.median(before), statistics.median(after)
    return {"label": "batch_size=1", "slo_ms": 20.0, "capacity_rps": 1000.0,
            "best_good_rps": 1000.0, "points": points,
            "capacity_before": [_pt("closed", v) for v in before],
            "capacity_after": [_pt("closed", v) for v in after],
            "before_median_rps": b, "after_median_rps": a, "recovery_ratio": a / b}


def _issue15(sweep: dict[str, Any], soak: dict[str, Any] | None = None) -> dict[str, Any]:
    results = {"systems": {"clipper": {"label": "clipper-core"}}, "points": [],
               "goodput": {"clipper": {"goodput-b1": sweep}}, "soak": soak or {}}
    return {t["target"]: t for t in report.targets(results) if t["issue"] == 15}


def test_goodput_targets_are_ratios_to_the_best_goodput() -> None:
    t = _issue15(_sweep(near=950, far=700, before=[1000, 900, 1100], after=[960, 2000, 10]))
    near = t["goodput batch_size=1 @64/256 conns, 1.5x/3x offered (worst) vs its best"]
    far = t["goodput batch_size=1 @1,024 conns, 10x offered (worst) vs its best"]
    rec = t["goodput batch_size=1: capacity after overload vs before (medians)"]
    assert near["value"] == pytest.approx(0.95) and near["met"] is True
    assert far["value"] == pytest.approx(0.7) and far["met"] is True
    assert rec["value"] == pytest.approx(0.96) and rec["met"] is True  # medians, not means
    assert t["goodput sweep: p99 of every answer (worst point)"]["met"] is True
    assert t["goodput sweep: HTTP errors (non-2xx, socket, unanswered)"]["value"] == 0
    soak_rows = [k for k in t if k.startswith("soak")]
    assert soak_rows and all(t[k]["met"] is None for k in soak_rows)  # not measured

    t = _issue15(_sweep(near=890, far=690, before=[1000] * 3, after=[940] * 3, p99=30.5,
                        errors=1),
                 {"multiple": 10, "seconds": 60, "rss_ratio": 1.11, "queue_wait_limit_s": 2,
                  "queues_at_stop": {"m:1": 3}, "queues_empty_after_s": None})
    assert not any(row["met"] for row in t.values())


def test_goodput_markdown_and_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    bare = _sweep(near=500, far=100, before=[600], after=[610])
    results = {"meta": {"date": "today"},
               "systems": {"clipper": {"label": "clipper-core"}, "bare": {"label": "bare"}},
               "goodput": {"clipper": {"goodput-b1": _sweep(950, 700, [1000], [990])},
                           "bare": {"goodput-inline": bare}}}
    md = "\n".join(goodput_report.markdown(results))
    assert "### clipper-core: batch_size=1" in md and "### bare: batch_size=1" in md
    assert "| 10x offered |" in md and "| 1,024 conns | closed | **700** | 0.70 |" in md
    goodput_report.plot(results, tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _drive(mode: str, rate: float, conns: int, good: float) -> dict[str, Any]:
    return {"mode": mode, "rate": rate, "seconds": 1.0, "connections": conns,
            "completed": int(good), "scheduled": int(good), "sent": int(good),
            "good": good, "real": good, "defaults": 0, "status_errors": 0,
            "socket_errors": 0, "unfinished": 0, "p50_ms": 1.0, "p90_ms": 2.0,
            "p99_ms": 3.0, "max_ms": 4.0, "good_per_second": [int(good)]}


def test_sweep_alternates_capacity_points_around_each_overload(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import goodput
    import systems

    calls: list[tuple[str, float]] = []
    closed_goodput = {16: 800.0, 64: 1000.0, 256: 900.0, 1024: 500.0}
    # before, after, before, after, ...
    capacity_points = iter([1000.0, 100.0, 950.0, 2000.0, 10.0, 999.0])

    def closed(host: str, port: int, path: str, c: int, seconds: float, body: Any,
               slo: float) -> dict[str, Any]:
        calls.append(("closed", c))
        good = next(capacity_points) if len(calls) > 5 else closed_goodput[c]
        return _drive("closed", 0.0, c, good)

    def rate(host: str, port: int, path: str, r: float, seconds: float, conns: int,
             body: Any, slo: float) -> dict[str, Any]:
        calls.append(("open", r))
        return _drive("open", r, conns, 100.0)

    monkeypatch.setattr(goodput, "run_closed", closed)
    monkeypatch.setattr(goodput, "run_rate", rate)
    settings = goodput.Settings(slo_ms=20, point_s=1, warmup_s=1,
                                connections=(16, 64, 256, 1024), multiples=(1.5, 3, 10),
                                capacity_connections=16, soak_s=1, soak_multiple=10)
    data = goodput.Sweep(systems.Bare(tmp_path), settings, lambda _m: None).run_app(
        "goodput-inline")
    assert calls == [("closed", 16),  # warm-up
                     ("closed", 16), ("closed", 64), ("closed", 256), ("closed", 1024),
                     ("closed", 16), ("open", 1500.0), ("closed", 16),
                     ("closed", 16), ("open", 3000.0), ("closed", 16),
                     ("closed", 16), ("open", 10000.0), ("closed", 16)]
    assert data["capacity_rps"] == 1000.0  # the best closed-loop goodput sets the rates
    assert [p["good_rps"] for p in data["capacity_before"]] == [1000.0, 950.0, 10.0]
    assert [p["good_rps"] for p in data["capacity_after"]] == [100.0, 2000.0, 999.0]
    assert data["recovery_ratio"] == round(999.0 / 950.0, 3)  # medians, not means
    assert data["best_good_rps"] == 2000.0  # anywhere in the sweep
    assert [p.get("multiple") for p in data["points"] if p["mode"] == "open"] == [1.5, 3, 10]


@needs_cc
def test_quick_goodput_and_soak_run(tmp_path: Path) -> None:
    """The goodput sweep and the soak end to end, on ours and the bare app,
    with 1,024 connections and 10x offered (fewer points than the full
    sweep, 1 s each; about 50 s)."""
    pytest.importorskip("matplotlib")
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--scenarios",
         "goodput,soak", "--goodput-connections", "16,1024", "--goodput-multiples", "10",
         "--soak-seconds", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((out / "latest.json").read_text())
    assert {s: data["systems"][s]["status"] for s in ("clipper", "bare")} == {
        "clipper": "ok", "bare": "ok"}
    sweeps = data["goodput"]
    assert set(sweeps["clipper"]) == {"goodput-b1", "goodput-adaptive"}
    assert set(sweeps["bare"]) == {"goodput-inline"}
    for system, apps in sweeps.items():
        for sweep in apps.values():
            closed = {p["connections"]: p for p in sweep["points"] if p["mode"] == "closed"}
            opened = {p["multiple"]: p for p in sweep["points"] if p["mode"] == "open"}
            assert set(closed) == {16, 1024} and set(opened) == {10.0}
            assert closed[1024]["requests"] > 0 and closed[1024]["socket_errors"] == 0
            assert closed[16]["answers_rps"] > 0  # goodput itself depends on the machine
            for m, p in opened.items():
                assert p["offered_rps"] == pytest.approx(m * sweep["capacity_rps"], rel=0.01)
            assert len(sweep["capacity_before"]) == len(sweep["capacity_after"]) == 1
            for p in sweep["points"] + sweep["capacity_before"] + sweep["capacity_after"]:
                assert p["good_rps"] <= p["real_rps"] <= p["answers_rps"] + 1
                # one prediction per request: every answer is real, a default or an error
                assert p["real_rps"] + p["defaults_rps"] + p["errors"] / p["seconds"] == \
                    pytest.approx(p["answers_rps"], abs=0.2)
                if system == "bare":
                    assert p["defaults_rps"] == 0
    points = {(p["system"], p["scenario"], p["connections"]): p for p in data["points"]}
    assert {"good_rps", "p99_ms"} <= set(points[("clipper", "goodput-b1", 16)])
    soak = data["soak"]
    assert soak["rss_before_mib"] > 0 and soak["rss_after_mib"] > 0
    assert "sklearn-b1:1" in soak["queues_at_stop"]
    issue15 = [t for t in data["targets"] if t["issue"] == 15]
    assert len(issue15) == 3 * 2 + 4
    for t in issue15:  # 64/256 connections and 1.5x/3x were not run: not measured
        assert (t["met"] is None) == ("@64/256" in t["target"]), t
    md = (out / "latest.md").read_text()
    assert "## Targets (issue 15)" in md and "### bare Starlette: model inline" in md
    assert (out / "latest-goodput.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
