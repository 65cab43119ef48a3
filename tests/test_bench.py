"""The benchmark harness end to end: a --quick noop run of bench/run.py
starts a real cluster and the bare baseline, drives them with wrk and writes
the table, the JSON and the plot."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (apt wrk)")


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
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import run
    finally:
        sys.path.remove(str(ROOT / "bench"))
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
