"""bench/selection.py's arithmetic: the medians and the two ratios it prints
(the scenario itself runs on a quiet machine: ``python bench/selection.py``)."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest
from conftest import ROOT


def load_bench() -> ModuleType:
    sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("bench_selection", ROOT / "bench" /
                                                  "selection.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_ratios_are_medians_of_alternating_rounds() -> None:
    bench = load_bench()
    from load import Point

    def point(rps: float, p99: float) -> Point:
        return Point(requests=int(rps), seconds=1.0, rps=rps, p50_ms=1.0, p90_ms=1.0,
                     p99_ms=p99, max_ms=p99, errors=0, socket_errors=0)

    shadow = {"primary-alone": [point(100, 10.0), point(100, 30.0), point(100, 12.0)],
              "primary-shadowed": [point(100, 11.0), point(100, 13.0), point(100, 90.0)]}
    exp4 = {"slowest-alone": [point(400, 5), point(500, 5), point(450, 5)],
            "ensemble": [point(380, 5), point(360, 5), point(900, 5)]}
    found = bench.summarise(shadow, exp4, {"applications": {"ensemble": {
        "default_outputs": 2}}, "selection": {"ensemble": {"stragglers": 2}}})
    assert found["shadow_p99_ratio"]["ratio"] == pytest.approx(13.0 / 12.0)
    assert found["exp4_throughput_ratio"]["ratio"] == pytest.approx(380 / 450)
    assert found["defaults"]["ensemble"] == 2 and found["defaults"]["primary-alone"] is None
    assert found["selection"]["ensemble"]["stragglers"] == 2
    assert [p["p99_ms"] for p in found["points"]["primary-shadowed"]] == [11.0, 13.0, 90.0]


def test_quick_is_a_smoke_run() -> None:
    args = load_bench().parse(["--quick"])
    assert (args.duration, args.warmup, args.rounds, args.connections) == (1.0, 0.0, 1, 4)
