"""The in-process state store: ``memory://`` (for tests and one-process use).

``memory://`` gives a fresh, private store.  ``memory://NAME`` gives a store
shared by every object opened on the same name in this process (the way a
second process would share an SQLite file), which the contract suite uses to
test watching "another process".  Nothing survives the process.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Callable
from typing import Any

import attrs

from ..hookspecs import hookimpl
from ..models import Application, FrontendRecord, ModelVersion, Replica, Snapshot
from .base import (
    BaseStateStore,
    StateUpdate,
    app_exists,
    app_missing,
    check_selection_models,
    model_exists,
    model_missing,
    replica_key,
    version_missing,
)


class _MemoryState:
    """The data behind one store name; guarded by ``lock``."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.revision = 0
        self.apps: dict[str, Application] = {}
        self.models: dict[tuple[str, str], ModelVersion] = {}
        self.current: dict[str, str] = {}
        self.replicas: dict[tuple[str, str, str, str], Replica] = {}
        self.frontends: dict[str, FrontendRecord] = {}
        #: (app, key) -> policy state as JSON text (a copy per read)
        self.policy: dict[tuple[str, str], str] = {}
        self.listeners: weakref.WeakSet[MemoryStateStore] = weakref.WeakSet()

    def bump(self) -> None:
        self.revision += 1
        for store in list(self.listeners):
            store._changed()


_named: weakref.WeakValueDictionary[str, _MemoryState] = weakref.WeakValueDictionary()
_named_lock = threading.Lock()


class MemoryStateStore(BaseStateStore):
    """A thread-safe :class:`~clipper_core.interfaces.StateStore` in dicts."""

    def __init__(self, url: str = "memory://") -> None:
        super().__init__(url)
        name = url.split("://", 1)[1].split("?", 1)[0].strip("/") if "://" in url else ""
        if name:
            with _named_lock:
                state = _named.get(name)
                if state is None:
                    state = _named[name] = _MemoryState()
        else:
            state = _MemoryState()
        self._state = state
        with state.lock:
            state.listeners.add(self)

    # -- applications ------------------------------------------------------
    def add_application(self, app: Application) -> None:
        s = self._state
        with s.lock:
            if app.name in s.apps:
                raise app_exists(app.name)
            s.apps[app.name] = app
            s.bump()

    def delete_application(self, name: str) -> None:
        s = self._state
        with s.lock:
            if s.apps.pop(name, None) is None:
                raise app_missing(name)
            for key in [k for k in s.policy if k[0] == name]:
                del s.policy[key]
            s.bump()

    def get_application(self, name: str) -> Application | None:
        with self._state.lock:
            return self._state.apps.get(name)

    def list_applications(self) -> list[Application]:
        with self._state.lock:
            return sorted(self._state.apps.values(), key=lambda a: a.name)

    # -- models ------------------------------------------------------------
    def _has_model(self, name: str) -> bool:
        return any(n == name for n, _v in self._state.models)

    def add_model(self, model: ModelVersion, *, make_current: bool = True) -> None:
        s = self._state
        with s.lock:
            key = (model.name, model.version)
            if key in s.models:
                raise model_exists(*key)
            s.models[key] = model
            if make_current:
                s.current[model.name] = model.version
            s.bump()

    def delete_model_version(self, name: str, version: str) -> None:
        s = self._state
        with s.lock:
            if s.models.pop((name, version), None) is None:
                raise version_missing(name, version)
            if s.current.get(name) == version:
                del s.current[name]
            s.bump()

    def get_model(self, name: str, version: str) -> ModelVersion | None:
        with self._state.lock:
            return self._state.models.get((name, version))

    def list_models(self) -> list[ModelVersion]:
        with self._state.lock:
            return sorted(self._state.models.values(), key=lambda m: m.name)

    def get_current_version(self, name: str) -> str | None:
        with self._state.lock:
            return self._state.current.get(name)

    def set_current_version(self, name: str, version: str) -> None:
        s = self._state
        with s.lock:
            if (name, version) not in s.models:
                raise version_missing(name, version)
            s.current[name] = version
            s.bump()

    # -- links -------------------------------------------------------------
    def set_link(self, app_name: str, model_name: str | None) -> None:
        s = self._state
        with s.lock:
            app = s.apps.get(app_name)
            if app is None:
                raise app_missing(app_name)
            if model_name is not None and not self._has_model(model_name):
                raise model_missing(model_name)
            s.apps[app_name] = attrs.evolve(app, linked_model=model_name)
            s.bump()

    # -- selection ---------------------------------------------------------
    def set_selection(self, app: Application) -> None:
        s = self._state
        with s.lock:
            old = s.apps.get(app.name)
            if old is None:
                raise app_missing(app.name)
            check_selection_models(app, self._has_model)
            s.apps[app.name] = attrs.evolve(
                old, linked_model=app.linked_model, other_models=app.other_models,
                selection_policy=app.selection_policy, policy_params=dict(app.policy_params),
                confidence_threshold=app.confidence_threshold)
            s.bump()

    def policy_states(self, app_name: str) -> dict[str, dict[str, Any]]:
        with self._state.lock:
            return {key: json.loads(text) for (app, key), text in self._state.policy.items()
                    if app == app_name}

    def update_policy_state(self, app_name: str, key: str,
                            update: StateUpdate) -> dict[str, Any]:
        s = self._state
        with s.lock:
            text = s.policy.get((app_name, key))
            new = update(json.loads(text) if text is not None else None)
            s.policy[(app_name, key)] = json.dumps(new)
            return new

    # -- replicas ----------------------------------------------------------
    def put_replica(self, replica: Replica) -> None:
        with self._state.lock:
            self._state.replicas[replica_key(replica)] = replica

    def delete_replica(self, model_name: str, model_version: str, replica_id: str,
                       frontend: str = "") -> None:
        with self._state.lock:
            self._state.replicas.pop((model_name, model_version, replica_id, frontend), None)

    def list_replicas(self) -> list[Replica]:
        with self._state.lock:
            return sorted(self._state.replicas.values(), key=replica_key)

    # -- query frontends ----------------------------------------------------
    def put_frontend(self, record: FrontendRecord) -> None:
        with self._state.lock:
            self._state.frontends[record.frontend_id] = record

    def delete_frontend(self, frontend_id: str) -> None:
        with self._state.lock:
            self._state.frontends.pop(frontend_id, None)

    def list_frontends(self) -> list[FrontendRecord]:
        with self._state.lock:
            return [self._state.frontends[k] for k in sorted(self._state.frontends)]

    # -- change tracking ---------------------------------------------------
    def revision(self) -> int:
        with self._state.lock:
            return self._state.revision

    def advance_revision(self, at_least: int) -> int:
        s = self._state
        with s.lock:
            if s.revision < at_least:
                s.revision = at_least - 1
                s.bump()
            return s.revision

    def snapshot(self) -> Snapshot:
        s = self._state
        with s.lock:
            return Snapshot(revision=s.revision, applications=dict(s.apps),
                            models=dict(s.models), current_versions=dict(s.current))

    def ping(self) -> None:
        return None

    def close(self) -> None:
        super().close()
        with self._state.lock:
            self._state.listeners.discard(self)


@hookimpl
def register_state_stores(register: Callable[[str, Callable[..., Any]], None]) -> None:
    register("memory", MemoryStateStore)
