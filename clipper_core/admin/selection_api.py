"""The model-selection methods of ``ClipperConnection``.

:class:`SelectionAPI` is a base class of
:class:`~clipper_core.connection.ClipperConnection`; it uses the
connection's ``_call`` (from :class:`~clipper_core.admin.replica_api.ReplicaAPI`).
"""

from __future__ import annotations

import logging
from typing import Any

from ..models import Application
from .replica_api import requires_connection
from .wire import GetSelectionWeights, Request, SetSelectionPolicy

log = logging.getLogger("clipper.connection")


class SelectionAPI:
    """Choose an application's selection policy; read its current weights."""

    def _call(self, request: Request[Any]) -> Any:  # pragma: no cover - ReplicaAPI's
        raise NotImplementedError

    @requires_connection
    def set_selection_policy(self, app_name: str, selection_policy: str | None = None,
                             policy_params: dict[str, Any] | None = None,
                             confidence_threshold: float | None = None) -> None:
        """Change the selection policy of ``app_name`` (None keeps a field).

        The policy must accept the app's linked models and the parameters;
        ``single`` serves at most one linked model.
        """
        self._call(SetSelectionPolicy(app_name=app_name, selection_policy=selection_policy,
                                      policy_params=policy_params,
                                      confidence_threshold=confidence_threshold))
        log.info("Application %s now selects models with %s", app_name,
                 selection_policy or "its policy")

    @requires_connection
    def get_selection_weights(self, app_name: str) -> dict[str, Any]:
        """The app's policy, parameters and each linked model's current weight."""
        weights: dict[str, Any] = self._call(GetSelectionWeights(app_name=app_name))
        return weights

    def _app_info(self, app: Application) -> dict[str, Any]:
        """An app's info dict; with its current weights when it selects models."""
        info = app.to_wire()
        if app.selects:
            info["weights"] = self._call(GetSelectionWeights(app_name=app.name))["weights"]
        return info
