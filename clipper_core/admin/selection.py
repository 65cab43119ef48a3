"""The admin rules of the model-selection layer.

An application on ``single`` (the default) links at most one model, as in
Clipper; any other policy links several.  Every write builds the policy with
the app's linked models and parameters first, so an unknown policy or bad
parameters are refused (400) before anything is stored.  The policy's
state is the query frontends' business; :func:`current_weights` only reads
it.
"""

from __future__ import annotations

from typing import Any

import attrs

from ..errors import ConflictError, PluginError, ValidationError
from ..interfaces import StateStore
from ..models import Application
from ..plugins import get_backend
from ..selection import DEFAULT_POLICY, build_policy


def check_policy(app: Application) -> None:
    """ValidationError unless ``app``'s policy is installed and accepts its
    linked models and parameters (with no model linked, the name alone)."""
    try:
        if not app.linked_models:
            get_backend("selection_policies", app.selection_policy)
            return
        build_policy(app.selection_policy, app.linked_models, app.policy_params)
    except PluginError as exc:
        raise ValidationError(str(exc), argument="selection_policy",
                              value=app.selection_policy) from None


def with_policy(app: Application, policy: str | None, params: dict[str, Any] | None,
                threshold: float | None) -> Application:
    """``app`` with the given selection fields (None keeps a field), checked."""
    if threshold is not None and not 0.0 <= float(threshold) <= 1.0:
        raise ValidationError(f"confidence_threshold must be in [0, 1], got {threshold!r}",
                              argument="confidence_threshold", value=threshold)
    new = attrs.evolve(
        app, selection_policy=policy if policy is not None else app.selection_policy,
        policy_params=dict(params) if params is not None else dict(app.policy_params),
        confidence_threshold=(float(threshold) if threshold is not None
                              else app.confidence_threshold))
    if new.selection_policy == DEFAULT_POLICY and len(new.linked_models) > 1:
        raise ValidationError(f"Application '{app.name}' links {len(new.linked_models)} "
                              "models; the 'single' policy serves one: unlink the others "
                              "first", argument="selection_policy", value=DEFAULT_POLICY)
    check_policy(new)
    return new


def linked(app: Application, model_name: str) -> Application:
    """``app`` with ``model_name`` linked too (ConflictError on ``single``)."""
    if app.selection_policy == DEFAULT_POLICY and app.linked_model is not None:
        raise ConflictError(
            f"Application '{app.name}' is already linked to model "
            f"'{app.linked_model}'; an application links at most one model: "
            "unlink it first, or choose a selection policy that serves several "
            "(set_selection_policy)", app_name=app.name, linked_model=app.linked_model)
    if app.linked_model is None:
        new = attrs.evolve(app, linked_model=model_name)
    else:
        new = attrs.evolve(app, other_models=(*app.other_models, model_name))
    check_policy(new)
    return new


def unlinked(app: Application, model_name: str) -> Application:
    """``app`` without ``model_name``; the next model becomes the primary."""
    rest = [m for m in app.linked_models if m != model_name]
    return attrs.evolve(app, linked_model=rest[0] if rest else None,
                        other_models=tuple(rest[1:]))


def current_weights(store: StateStore, app: Application) -> dict[str, Any]:
    """The app's policy, its parameters and each model's current weight (from
    the app-wide state the query frontends store; the initial one if none)."""
    info: dict[str, Any] = {"selection_policy": app.selection_policy,
                            "policy_params": dict(app.policy_params),
                            "confidence_threshold": app.confidence_threshold,
                            "linked_models": list(app.linked_models), "weights": {}}
    if not app.linked_models:
        return info
    try:
        policy = build_policy(app.selection_policy, app.linked_models, app.policy_params)
    except (PluginError, ValidationError) as exc:
        info["error"] = str(exc)
        return info
    states = store.policy_states(app.name)
    state = states.get("") or policy.init_state()
    info["weights"] = {m: round(float(w), 6) for m, w in policy.weights(state).items()}
    info["user_states"] = sum(1 for key in states if key)
    return info
