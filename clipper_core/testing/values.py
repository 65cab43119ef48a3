"""Values and a watch recorder shared by the state store contract suites."""

from __future__ import annotations

import threading
from typing import Any

import attrs

from ..models import Application, InputType, ModelVersion, Replica

#: How long a watcher may take to report a change (the Protocol says 1 s).
WATCH_DEADLINE = 1.0


def make_app(name: str = "app", *, input_type: str = "doubles", slo: int = 100000,
             linked_model: str | None = None) -> Application:
    app = Application.create(name, input_type, "default", slo)
    return attrs.evolve(app, linked_model=linked_model)


def make_model(name: str = "m", version: str = "1", **kwargs: Any) -> ModelVersion:
    kwargs.setdefault("input_type", "doubles")
    kwargs.setdefault("image", f"registry.local/{name}:{version}")
    return ModelVersion.create(name, version, **kwargs)


def make_replica(model: str = "m", version: str = "1", replica_id: str = "0",
                 frontend: str = "", **kwargs: Any) -> Replica:
    return Replica(model_name=model, model_version=version, replica_id=replica_id,
                   input_type=kwargs.pop("input_type", InputType.DOUBLES), frontend=frontend,
                   **kwargs)


class Recorder:
    """A watch callback that remembers the revisions it was called with."""

    def __init__(self) -> None:
        self.revisions: list[int] = []
        self._cond = threading.Condition()

    def __call__(self, revision: int) -> None:
        with self._cond:
            self.revisions.append(revision)
            self._cond.notify_all()

    def wait_for(self, revision: int, timeout: float = WATCH_DEADLINE) -> bool:
        """True once called with ``revision`` or later, within ``timeout``."""
        with self._cond:
            return self._cond.wait_for(
                lambda: any(r >= revision for r in self.revisions), timeout)
