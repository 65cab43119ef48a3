"""The contract every :class:`~clipper_core.interfaces.BatchingPolicy` must meet.

Subclass :class:`BatchingPolicyContract` in a policy's tests and name the
policy (it is built by name through the plugin manager, as a query frontend
builds it)::

    class TestHalfPolicy(BatchingPolicyContract):
        policy_name = "half"
        adaptive = False

Fixtures a subclass may override:

- ``policy_options``: keyword options passed to the factory (default none);
- ``model``: the :class:`~clipper_core.models.ModelVersion` the policy is
  built for (default ``batch_size=-1``, the adaptive default);
- ``make_policy``: ``make_policy(model)`` returns a new policy (default: the
  factory registered under :attr:`~BatchingPolicyContract.policy_name`).

Capabilities are class attributes: ``adaptive`` says whether the maximum
follows latency feedback (then it must grow while full batches finish well
inside the SLO and back off when one does not; otherwise it never moves),
``max_delay_s`` bounds :meth:`batch_delay`, ``max_batch_limit`` bounds
:meth:`max_batch_size`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest

from ..interfaces import BatchingPolicy
from ..models import ModelVersion
from ..plugins import backends

#: An SLO for the feedback the tests give (seconds).
SLO_S = 0.1

MakePolicy = Callable[[ModelVersion], BatchingPolicy]


class BatchingPolicyContract:
    """Tests every method of the BatchingPolicy Protocol; see the module docstring."""

    #: The name the policy is registered under (``register_batching_policies``).
    policy_name: str = ""
    #: Whether the maximum batch size follows latency feedback.
    adaptive: bool = True
    #: Longest wait :meth:`BatchingPolicy.batch_delay` may ask for (seconds).
    max_delay_s: float = 0.05
    #: Largest maximum batch size the policy may ever report.
    max_batch_limit: int = 4096

    @pytest.fixture
    def policy_options(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def model(self) -> ModelVersion:
        return ModelVersion.create("contract-model", "1", "doubles", batch_size=-1,
                                   batching_policy=self.policy_name or None)

    @pytest.fixture
    def make_policy(self, policy_options: dict[str, Any]) -> MakePolicy:
        if not self.policy_name:
            raise NotImplementedError("a BatchingPolicyContract subclass must set policy_name")
        factory = backends("batching_policies")[self.policy_name].factory

        def make(model: ModelVersion) -> BatchingPolicy:
            policy: BatchingPolicy = factory(model, **policy_options)
            return policy
        return make

    @pytest.fixture
    def policy(self, make_policy: MakePolicy, model: ModelVersion) -> BatchingPolicy:
        return make_policy(model)

    def _assert_max_in_bounds(self, policy: BatchingPolicy) -> int:
        size = policy.max_batch_size()
        assert isinstance(size, int) and not isinstance(size, bool), (
            f"max_batch_size() returned {size!r}, not an int")
        assert 1 <= size <= self.max_batch_limit, (
            f"max_batch_size() is {size}, outside 1..{self.max_batch_limit}")
        return size

    def _full_batches(self, policy: BatchingPolicy, latency_s: float, n: int) -> None:
        for _ in range(n):
            policy.on_batch_done(policy.max_batch_size(), latency_s, SLO_S)

    # -- the Protocol ---------------------------------------------------------
    def test_implements_protocol(self, policy: BatchingPolicy) -> None:
        assert isinstance(policy, BatchingPolicy)

    def test_max_batch_size_is_a_positive_int(self, policy: BatchingPolicy) -> None:
        first = self._assert_max_in_bounds(policy)
        assert policy.max_batch_size() == first, "asking twice must not change the maximum"

    @pytest.mark.parametrize("queued", [0, 1, 2, 7, 64, 10_000])
    def test_batch_delay_is_never_negative_and_bounded(self, policy: BatchingPolicy,
                                                       queued: int) -> None:
        delay = policy.batch_delay(queued)
        assert isinstance(delay, (int, float)) and not isinstance(delay, bool)
        assert 0.0 <= delay <= self.max_delay_s, (
            f"batch_delay({queued}) is {delay!r}, outside 0..{self.max_delay_s}")

    def test_a_full_batch_is_never_held_back(self, policy: BatchingPolicy) -> None:
        size = policy.max_batch_size()
        assert policy.batch_delay(size) == 0.0
        assert policy.batch_delay(size * 3) == 0.0

    def test_feedback_keeps_sizes_and_delays_within_bounds(self, policy: BatchingPolicy) -> None:
        rng = random.Random(14)
        for _ in range(2000):
            size = rng.randint(1, policy.max_batch_size())
            latency = rng.choice([0.0, SLO_S * rng.random(), SLO_S * rng.uniform(1, 20)])
            policy.on_batch_done(size, latency, SLO_S)
            self._assert_max_in_bounds(policy)
            assert 0.0 <= policy.batch_delay(rng.randint(0, 100)) <= self.max_delay_s

    def test_growth_stops_at_the_limit(self, policy: BatchingPolicy) -> None:
        for _ in range(5000):
            policy.on_batch_done(policy.max_batch_size(), 0.0, SLO_S)
        self._assert_max_in_bounds(policy)

    def test_describe_is_json_and_reports_the_maximum(self, policy: BatchingPolicy) -> None:
        for latency in (0.0, SLO_S * 5):
            self._full_batches(policy, latency, 3)
            described = policy.describe()
            assert isinstance(described, dict) and all(isinstance(k, str) for k in described)
            assert json.loads(json.dumps(described)) == described, "describe() must be JSON"
            if "max_batch_size" in described:
                assert described["max_batch_size"] == policy.max_batch_size()

    def test_instances_do_not_share_state(self, make_policy: MakePolicy,
                                          model: ModelVersion) -> None:
        one, other = make_policy(model), make_policy(model)
        before = other.max_batch_size()
        self._full_batches(one, 0.0, 50)
        self._full_batches(one, SLO_S * 10, 5)
        assert other.max_batch_size() == before

    # -- adaptive policies ----------------------------------------------------
    def test_grows_while_full_batches_finish_inside_the_slo(self,
                                                           policy: BatchingPolicy) -> None:
        start = policy.max_batch_size()
        self._full_batches(policy, SLO_S * 0.01, 50)
        if self.adaptive:
            assert policy.max_batch_size() > start, "never grew inside the SLO"
        else:
            assert policy.max_batch_size() == start, "a non-adaptive policy moved"

    def test_backs_off_when_a_batch_misses_the_slo(self, policy: BatchingPolicy) -> None:
        self._full_batches(policy, SLO_S * 0.01, 50)
        grown = policy.max_batch_size()
        policy.on_batch_done(grown, SLO_S * 2, SLO_S)
        if self.adaptive:
            assert policy.max_batch_size() < grown, "a batch over the SLO did not cut it"
            self._full_batches(policy, SLO_S * 2, 50)
            assert policy.max_batch_size() == 1, "repeated misses must reach batches of one"
            self._full_batches(policy, SLO_S * 0.01, 50)
            assert policy.max_batch_size() > 1, "never recovered once inside the SLO again"
        else:
            assert policy.max_batch_size() == grown, "a non-adaptive policy moved"
