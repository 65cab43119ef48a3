"""The model-selection layer end to end: a real local_process cluster (management
frontend, query frontend, one replica process per model) driven through
ClipperConnection and HTTP, as a user would.

Three models answer from the input: ``m-one`` and ``m-two`` answer ``x[0]``,
``m-plus`` answers ``x[0] + 1``, so every answer says which side it came from.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ROOT, wait_until
from local_cluster import running_cluster

from clipper_core.connection import ClipperConnection
from clipper_core.deployers.python import deploy_python_closure
from clipper_core.selection import uid_point

MODELS = {"m-one": 0.0, "m-two": 0.0, "m-plus": 1.0}
SLO = 2_000_000


def _model(offset: float) -> Any:
    return lambda xs: [float(x[0]) + offset for x in xs]


@pytest.fixture(scope="module")
def conn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClipperConnection]:
    with running_cluster(tmp_path_factory.mktemp("sel"), "selection-e2e") as c:
        for name, offset in MODELS.items():
            deploy_python_closure(c, name, 1, "doubles", _model(offset))
        c.register_application("ens", "doubles", "-1", SLO, selection_policy="exp4",
                               policy_params={"eta": 0.5})
        c.register_application("canary", "doubles", "-1", SLO, selection_policy="split")
        c.register_application("mirror", "doubles", "-1", SLO, selection_policy="shadow",
                               policy_params={"primary": "m-one"})
        c.register_application("plain", "doubles", "-1", SLO)
        for name in MODELS:
            c.link_model_to_app("ens", name)
        for app, models in (("canary", ("m-one", "m-plus")), ("mirror", ("m-one", "m-plus")),
                            ("plain", ("m-one",))):
            for name in models:
                c.link_model_to_app(app, name)
        # split's weights may name only linked models: set once both are linked
        c.set_selection_policy("canary", policy_params={"weights": {"m-one": 90, "m-plus": 10}})
        for app in ("ens", "canary", "mirror", "plain"):
            wait_until(lambda a=app: not post(c, a, {"input": [0.0]}).json()["default"], 30,
                       what=f"{app} to answer")
        yield c


#: one client for every request (a new client per request costs ~50 ms)
HTTP = httpx.Client(timeout=10)


def post(conn: ClipperConnection, app: str, body: dict[str, Any],
         action: str = "predict") -> httpx.Response:
    return HTTP.post(f"http://{conn.get_query_addr()}/{app}/{action}", json=body)


def when(value: Any, ok: Callable[[Any], bool]) -> Any:
    """``value`` if ``ok(value)``, else None (for wait_until)."""
    return value if ok(value) else None


def selection_metrics(conn: ClipperConnection, app: str) -> dict[str, Any]:
    found: dict[str, Any] = conn.inspect_instance()["selection"][app]
    return found


def test_exp4_answers_with_a_confidence_and_learns_from_update(conn: ClipperConnection) -> None:
    answer = post(conn, "ens", {"input": [4.0, 0.0]}).json()
    assert answer["output"] == 4.0 and answer["default"] is False
    assert answer["confidence"] == pytest.approx(2 / 3, abs=1e-3)
    batch = post(conn, "ens", {"input_batch": [[1.0], [2.0]]}).json()["batch_predictions"]
    assert [(a["output"], round(a["confidence"], 3)) for a in batch] == [(1.0, 0.667),
                                                                         (2.0, 0.667)]
    before = conn.get_selection_weights("ens")["weights"]
    assert before == pytest.approx({m: 1 / 3 for m in MODELS}, abs=1e-5)
    # The labels agree with m-plus: its weight must rise above the other two.
    for i in range(12):
        x = float(10 + i)
        ok = post(conn, "ens", {"uid": 1, "input": [x], "label": x + 1}, "update")
        assert ok.status_code == 200 and ok.json() == {"success": True}
    weights = wait_until(lambda: when(conn.get_selection_weights("ens")["weights"],
                                      lambda w: w["m-plus"] > 0.9), 10, what="m-plus to lead")
    assert weights["m-one"] == pytest.approx(weights["m-two"])
    info = conn.get_app_info("ens")
    assert info is not None and info["selection_policy"] == "exp4"
    assert info["weights"]["m-plus"] > 0.9
    # The frontend's copy follows: the ensemble now answers with m-plus.
    flipped = wait_until(lambda: when(post(conn, "ens", {"input": [7.0]}).json(),
                                      lambda a: a["output"] == 8.0), 10,
                         what="the answer to follow")
    assert flipped["confidence"] > 0.9
    assert selection_metrics(conn, "ens")["feedback"] >= 12


def test_split_90_10_is_sticky_per_uid(conn: ClipperConnection) -> None:
    sides: dict[int, str] = {}
    for uid in range(300):
        for x in (float(uid), uid + 0.5):
            out = post(conn, "canary", {"input": [x], "uid": uid}).json()["output"]
            side = "m-one" if out == x else "m-plus"
            assert sides.setdefault(uid, side) == side, f"uid {uid} changed side"
    expected = {uid: "m-one" if uid_point(uid) < 0.9 else "m-plus" for uid in sides}
    assert sides == expected
    share = sum(s == "m-one" for s in sides.values()) / len(sides)
    assert 0.85 <= share <= 0.95


def test_shadow_answers_from_the_primary_and_metrics_count_the_shadows(
        conn: ClipperConnection) -> None:
    before = selection_metrics(conn, "mirror")
    compared0 = before.get("shadows", {}).get("m-plus", {}).get("compared", 0)
    for i in range(30):
        answer = post(conn, "mirror", {"input": [float(100 + i)]}).json()
        assert answer["output"] == float(100 + i) and answer["default"] is False
    shadow = wait_until(lambda: when(selection_metrics(conn, "mirror")["shadows"]["m-plus"],
                                     lambda s: s["compared"] >= compared0 + 30), 10,
                        what="the shadows to be recorded")
    assert shadow["agreement"] == 0.0 and shadow["p99_ms"] is not None
    assert selection_metrics(conn, "mirror")["selections"].get("m-plus", 0) == 0


def test_a_single_app_answers_exactly_as_before(conn: ClipperConnection) -> None:
    resp = post(conn, "plain", {"input": [3.0, 1.0]})
    assert re.fullmatch(rb'\{"query_id":\d+,"output":3\.0,"default":false\}', resp.content)
    batch = post(conn, "plain", {"input_batch": [[1.0], [2.0]]}).content
    assert re.fullmatch(rb'\{"batch_predictions":\[\{"query_id":\d+,"output":1\.0,'
                        rb'"default":false\},\{"query_id":\d+,"output":2\.0,'
                        rb'"default":false\}\]\}', batch)
    update = post(conn, "plain", {"uid": 1, "input": [3.0], "label": 3}, "update")
    assert update.status_code == 200 and update.json() == {"success": True}
    info = conn.get_app_info("plain")
    assert info == {"name": "plain", "input_type": "doubles", "default_output": "-1",
                    "latency_slo_micros": SLO, "linked_models": ["m-one"],
                    "candidate_model_names": ["m-one"]}
    assert "plain" not in conn.inspect_instance().get("selection", {})


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_digits_demo_runs_quick_and_the_policies_survive_the_break(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    out = tmp_path / "figures.json"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "selection_demo.py"),
                           "--quick", "--out", str(tmp_path), "--json", str(out),
                           "--cluster", "selection-demo-test"],
                          capture_output=True, text=True, timeout=850)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    found = json.loads(out.read_text())
    errors = found["errors"]
    assert set(errors) == {"exp3", "exp4", "epsilon-greedy", "single-svm", "single-logreg",
                           "single-knn", "single-tree"}
    assert all(e["defaults"] == 0 for e in errors.values())
    # the broken version answers 0 to everything: the svm app is wrong ~90% after it
    assert errors["single-svm"]["before"] < 0.15 < 0.6 < errors["single-svm"]["after"]
    for policy in ("exp3", "exp4", "epsilon-greedy"):
        assert errors[policy]["after"] < errors["single-svm"]["after"] - 0.3
    assert [Path(p).name for p in found["plots"]] == ["selection_errors.png",
                                                      "selection_exp3.png"]
    assert all(Path(p).stat().st_size > 10_000 for p in found["plots"])
    assert "exp4 error" in proc.stdout
