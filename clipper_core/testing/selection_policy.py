"""The contract every :class:`~clipper_core.interfaces.SelectionPolicy` must meet.

Subclass :class:`SelectionPolicyContract` in a policy's tests and name the
policy (it is built by name through the plugin manager, as a query frontend
builds it)::

    class TestMyPolicy(SelectionPolicyContract):
        policy_name = "mine"
        learns = True

Fixtures a subclass may override:

- ``models``: the linked model names the policy is built for (default three);
- ``policy_params``: its ``policy_params`` (default none, plus a ``seed``).

Capabilities are class attributes: ``learns`` says whether feedback must
move the policy toward the model with the lower loss (then, after feedback
where one model is always right and the others always wrong, that model
must have the largest weight); ``max_models`` bounds how many models the
policy accepts (``single`` takes one).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from ..errors import ValidationError
from ..interfaces import SelectionPolicy
from ..plugins import backends
from ..selection.base import Query

#: feedback rounds of the learning test
ROUNDS = 400


class SelectionPolicyContract:
    """Tests every method of the SelectionPolicy Protocol; see the module docstring."""

    #: The name the policy is registered under (``register_selection_policies``).
    policy_name: str = ""
    #: Whether feedback moves the weights toward the best model.
    learns: bool = False
    #: Most linked models the policy accepts (None = any number).
    max_models: int | None = None

    @pytest.fixture
    def models(self) -> tuple[str, ...]:
        return ("m-a", "m-b", "m-c")[: self.max_models or 3]

    @pytest.fixture
    def policy_params(self) -> dict[str, Any]:
        return {"seed": 7}

    @pytest.fixture
    def policy(self, models: tuple[str, ...], policy_params: dict[str, Any]) -> SelectionPolicy:
        factory = backends("selection_policies")[self.policy_name].factory
        built: SelectionPolicy = factory(models, policy_params)
        return built

    def test_registered_and_implements_protocol(self, policy: SelectionPolicy) -> None:
        assert isinstance(policy, SelectionPolicy)

    def test_init_state_is_json(self, policy: SelectionPolicy) -> None:
        state = policy.init_state()
        assert json.loads(json.dumps(state)) == state

    def test_select_names_linked_models(self, policy: SelectionPolicy,
                                        models: tuple[str, ...]) -> None:
        state = policy.init_state()
        for uid in (None, 1, 2, 3):
            chosen = policy.select(state, Query(data=b"x", uid=uid))
            assert chosen, "select() must name at least one model"
            assert set(chosen) <= set(models)
            shadows = policy.shadows(state, Query(data=b"x", uid=uid))
            assert set(shadows) <= set(models)
            assert not set(shadows) & set(chosen), "a shadow is never waited for"

    def test_combine_answers_from_the_outputs(self, policy: SelectionPolicy,
                                              models: tuple[str, ...]) -> None:
        state = policy.init_state()
        query = Query(data=b"x")
        chosen = policy.select(state, query)
        outputs = {m: 1 for m in chosen}
        value, confidence = policy.combine(state, query, outputs)
        assert value == 1
        assert 0.0 <= confidence <= 1.0
        # Answers from a subset (a straggler missing) still combine.
        one = {chosen[0]: 2}
        value, confidence = policy.combine(state, query, one)
        assert value == 2
        assert 0.0 <= confidence <= 1.0

    def test_observe_returns_new_json_state(self, policy: SelectionPolicy,
                                            models: tuple[str, ...]) -> None:
        state = policy.init_state()
        frozen = json.dumps(state, sort_keys=True)
        query = Query(data=b"x", uid=5)
        outputs = {m: 0 for m in policy.select(state, query)}
        new = policy.observe(state, query, 1.0, outputs)
        assert json.dumps(state, sort_keys=True) == frozen, "observe() must not mutate state"
        assert json.loads(json.dumps(new)) == new

    def test_weights_cover_every_model(self, policy: SelectionPolicy,
                                       models: tuple[str, ...]) -> None:
        weights = policy.weights(policy.init_state())
        assert set(weights) == set(models)
        assert all(w >= 0.0 for w in weights.values())

    def test_bad_parameters_are_refused(self, models: tuple[str, ...]) -> None:
        factory = backends("selection_policies")[self.policy_name].factory
        with pytest.raises(ValidationError):
            factory(models, {"loss": "no-such-loss"})

    def test_too_many_models_are_refused(self) -> None:
        if self.max_models is None:
            pytest.skip("the policy takes any number of models")
        factory = backends("selection_policies")[self.policy_name].factory
        with pytest.raises(ValidationError):
            factory(tuple(f"m{i}" for i in range(self.max_models + 1)), {})

    def test_feedback_favours_the_best_model(self, policy: SelectionPolicy,
                                             models: tuple[str, ...]) -> None:
        if not self.learns:
            pytest.skip("the policy does not learn from feedback")
        best = models[-1]
        state: Mapping[str, Any] = policy.init_state()
        for i in range(ROUNDS):
            query = Query(data=str(i).encode())
            chosen = policy.select(state, query)
            outputs = {m: (1 if m == best else 0) for m in chosen}
            state = policy.observe(state, query, 1.0, outputs)
        weights = policy.weights(state)
        assert max(weights, key=lambda m: weights[m]) == best, weights
