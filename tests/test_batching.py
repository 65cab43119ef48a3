"""Batching policies: unit behaviour, and batches seen by a real replica."""

from __future__ import annotations

import asyncio
from pathlib import Path

import loadgen
import pytest
from serving import Serving, write_model

from clipper_core.batching import AIMDPolicy, DelayedPolicy, FixedPolicy
from clipper_core.models import ModelVersion
from clipper_core.plugins import backends
from clipper_core.testing.batching_policy import BatchingPolicyContract

# Sleeps 5 ms per call plus a little per input, and reports the batch size.
BATCH_REPORTER = """
import time
def predict(inputs):
    time.sleep(0.005 + 0.0001 * len(inputs))
    return [str(len(inputs))] * len(inputs)
"""


# -- the shared contract, on the built-in policies -------------------------------

class TestAIMDContract(BatchingPolicyContract):
    policy_name = "aimd"


class TestDelayedContract(BatchingPolicyContract):
    policy_name = "delayed"


class TestDelayedWithOptionsContract(BatchingPolicyContract):
    policy_name = "delayed"

    @pytest.fixture
    def policy_options(self) -> dict[str, object]:
        return {"max_delay_s": 0.01, "start": 1, "step": 1, "backoff": 0.5}


class TestFixedContract(BatchingPolicyContract):
    policy_name = "fixed"
    adaptive = False

    @pytest.fixture
    def model(self) -> ModelVersion:
        return ModelVersion.create("contract-model", "1", "doubles", batch_size=8)


# -- the built-ins' own behaviour ------------------------------------------------

def test_builtin_policies_registered() -> None:
    assert {"aimd", "fixed", "delayed"} <= set(backends("batching_policies"))


def test_fixed_policy_uses_batch_size() -> None:
    p = FixedPolicy(ModelVersion.create("m", 1, "doubles", batch_size=9))
    assert p.max_batch_size() == 9 and p.batch_delay(1) == 0.0
    p.on_batch_done(9, 10.0, 0.1)
    assert p.max_batch_size() == 9


def test_aimd_grows_while_inside_slo_and_backs_off() -> None:
    p = AIMDPolicy(start=4, step=2, backoff=0.5)
    for _ in range(10):
        p.on_batch_done(p.max_batch_size(), 0.001, 0.1)
    assert p.max_batch_size() == 24
    p.on_batch_done(24, 0.2, 0.1)  # too slow: multiplicative decrease
    assert p.max_batch_size() == 12
    p.on_batch_done(3, 0.001, 0.1)  # a small batch says nothing about larger ones
    assert p.max_batch_size() == 12


def test_aimd_never_below_one() -> None:
    p = AIMDPolicy(start=2, backoff=0.1)
    for _ in range(5):
        p.on_batch_done(2, 1.0, 0.1)
    assert p.max_batch_size() == 1


def test_delayed_waits_only_for_a_partial_batch() -> None:
    p = DelayedPolicy(max_delay_s=0.004, start=8)
    assert p.batch_delay(3) == 0.004
    assert p.batch_delay(8) == 0.0


def _concurrent(port: int, app: str, n: int, concurrency: int) -> list[int]:
    """Batch sizes reported by the model for ``n`` distinct concurrent queries."""
    bodies = [b'{"input": [%d.0]}' % i for i in range(n)]

    def check(status: int, body: dict) -> None:
        assert status == 200 and not body["default"], body

    results = asyncio.run(loadgen.run(port, f"/{app}/predict", bodies, concurrency, check))
    return [int(body["output"]) for _, body in results]


def test_adaptive_batching_forms_batches_under_load(tmp_path: Path) -> None:
    s = Serving(tmp_path, cache_size=0)
    try:
        s.deploy("adaptive", "reporter", batch_size=-1, slo_micros=1_000_000)
        s.start_frontend()
        s.start_replica(write_model(tmp_path / "m", BATCH_REPORTER), "reporter", "1")
        s.wait_connected("reporter")
        sizes = _concurrent(s.port, "adaptive", 1000, 48)
        mean = sum(sizes) / len(sizes)
        assert mean > 4, f"mean batch size {mean:.1f}"
        m = s.metrics()["models"]["reporter:1"]
        assert m["mean_batch_size"] > 4
        assert m["batching"]["policy"] == "aimd"
    finally:
        s.close()


def test_fixed_batch_size_nine_saturated(tmp_path: Path) -> None:
    s = Serving(tmp_path, cache_size=0)
    try:
        s.deploy("fixed", "reporter", batch_size=9, slo_micros=5_000_000)
        s.start_frontend()
        s.start_replica(write_model(tmp_path / "m", BATCH_REPORTER), "reporter", "1")
        s.wait_connected("reporter")
        sizes = _concurrent(s.port, "fixed", 450, 450)
        assert len(sizes) == 450
        assert max(sizes) <= 9
        share = sizes.count(9) / len(sizes)
        assert share >= 0.7, f"only {share:.0%} answered in batches of exactly 9"
    finally:
        s.close()


def test_delayed_policy_by_name(tmp_path: Path) -> None:
    s = Serving(tmp_path, cache_size=0)
    try:
        s.deploy("delayed", "reporter", batching_policy="delayed", slo_micros=1_000_000)
        s.start_frontend()
        s.start_replica(write_model(tmp_path / "m", BATCH_REPORTER), "reporter", "1")
        s.wait_connected("reporter")
        _concurrent(s.port, "delayed", 300, 32)
        m = s.metrics()["models"]["reporter:1"]
        assert m["batching"]["policy"] == "delayed"
        assert m["mean_batch_size"] > 2
    finally:
        s.close()
