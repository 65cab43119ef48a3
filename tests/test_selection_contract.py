"""Every built-in selection policy against the shared contract."""

from __future__ import annotations

from typing import Any

import pytest

from clipper_core.testing.selection_policy import SelectionPolicyContract


class TestSingleContract(SelectionPolicyContract):
    policy_name = "single"
    max_models = 1


class TestExp3Contract(SelectionPolicyContract):
    policy_name = "exp3"
    learns = True


class TestExp4Contract(SelectionPolicyContract):
    policy_name = "exp4"
    learns = True


class TestEpsilonGreedyContract(SelectionPolicyContract):
    policy_name = "epsilon_greedy"
    learns = True


class TestSplitContract(SelectionPolicyContract):
    policy_name = "split"


class TestShadowContract(SelectionPolicyContract):
    policy_name = "shadow"


class TestExp4SquaredContract(SelectionPolicyContract):
    policy_name = "exp4"
    learns = True

    @pytest.fixture
    def policy_params(self) -> dict[str, Any]:
        return {"loss": "squared", "seed": 3}
