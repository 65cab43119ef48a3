"""The model-selection layer: built-in selection policies and their helpers.

An application names its policy (``Application.selection_policy``, default
``single``) and its parameters (``policy_params``); plugins announce more
policies with the ``register_selection_policies`` hook, exactly like the
built-ins below.  A policy follows the shape of the Clipper paper
(section 5): ``select`` the models a query goes to, ``combine`` their
outputs into one answer with a confidence, ``observe`` feedback into a new
state.  See :class:`clipper_core.interfaces.SelectionPolicy` and
``docs/selection.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pluggy

from ..hookspecs import Register, hookimpl
from ..plugins import get_backend
from .bandits import EpsilonGreedyPolicy, Exp3Policy
from .base import LOSSES, LogWeights, Params, PolicyBase, Query, agree, loss
from .ensembles import Exp4Policy
from .routing import ShadowPolicy, SinglePolicy, SplitPolicy, uid_point

__all__ = ["LOSSES", "DEFAULT_POLICY", "EpsilonGreedyPolicy", "Exp3Policy", "Exp4Policy",
           "LogWeights", "Params", "PolicyBase", "Query", "ShadowPolicy", "SinglePolicy",
           "SplitPolicy", "agree", "build_policy", "loss", "state_key", "uid_point"]

#: the policy of an application that names none: today's one linked model
DEFAULT_POLICY = "single"

BUILTINS: tuple[type[PolicyBase], ...] = (SinglePolicy, Exp3Policy, Exp4Policy,
                                          EpsilonGreedyPolicy, SplitPolicy, ShadowPolicy)


def build_policy(name: str, models: Sequence[str], params: Mapping[str, Any] | None = None,
                 pm: pluggy.PluginManager | None = None) -> Any:
    """The selection policy ``name`` for ``models``: PluginError for an unknown
    name (listing the installed ones), ValidationError for bad parameters."""
    return get_backend("selection_policies", name, pm).factory(tuple(models), dict(params or {}))


def state_key(params: Mapping[str, Any], uid: int | None) -> str:
    """Where a query's policy state lives: ``""`` for the application's, or
    ``"uid:<n>"`` when the policy keeps one per user (``per_uid: true``)."""
    if uid is not None and params.get("per_uid") is True:
        return f"uid:{uid}"
    return ""


@hookimpl
def register_selection_policies(register: Register) -> None:
    for cls in BUILTINS:
        register(cls.name, cls)
