"""What every state store shares: change watching, error messages, encoding.

:class:`BaseStateStore` gives a backend a ``watch()`` that polls
:meth:`revision` from one daemon thread per store object and can be woken
early by a push notification (:meth:`BaseStateStore._changed`), so a backend
only has to implement the data methods of
:class:`clipper_core.interfaces.StateStore`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import attrs

from ..errors import ConflictError, NotFoundError, StoreUnavailableError
from ..interfaces import Unsubscribe
from ..models import Application, InputType, ModelVersion, Replica

log = logging.getLogger("clipper.stores")

#: Seconds between two revision polls of a watcher thread: a one-row read.
#: A query frontend sees another process's write within it, and an admin
#: write waits for the frontends to serve it (read-your-writes), so it is
#: short.
DEFAULT_POLL_INTERVAL = 0.05


class BaseStateStore:
    """Shared machinery of the built-in stores; subclasses implement the data
    methods and :meth:`revision`, and call :meth:`_changed` when they learn of
    a change early (their own write, a pub/sub message)."""

    url: str
    poll_interval: float = DEFAULT_POLL_INTERVAL

    def __init__(self, url: str, *, poll_interval: float = DEFAULT_POLL_INTERVAL) -> None:
        self.url = url
        self.poll_interval = poll_interval
        self._watch_lock = threading.Lock()
        self._callbacks: dict[int, Callable[[int], None]] = {}
        self._next_token = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._closed = False

    # -- change tracking ---------------------------------------------------
    def revision(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def watch(self, callback: Callable[[int], None]) -> Unsubscribe:
        """Call ``callback(revision)`` from the store's watcher thread within a
        second of every configuration change (by this or any other store
        object on the same URL), until the returned function is called.

        Changes that happen in quick succession may be reported once, with
        the newest revision.  While the store is unreachable the watcher keeps
        trying and reports the revision it finds when the store is back.
        """
        try:
            baseline: int | None = self.revision()
        except StoreUnavailableError:
            baseline = None  # report the first revision seen once reachable
        with self._watch_lock:
            if self._closed:
                raise StoreUnavailableError(f"State store {self.url} is closed", url=self.url)
            token = self._next_token
            self._next_token += 1
            self._callbacks[token] = callback
            if self._watcher is None or not self._watcher.is_alive():
                self._stop.clear()
                self._watcher = threading.Thread(
                    target=self._watch_loop, args=(baseline,), name=f"clipper-store-watch[{self.url}]",
                    daemon=True)
                self._start_push()
                self._watcher.start()

        def unsubscribe() -> None:
            with self._watch_lock:
                self._callbacks.pop(token, None)
        return unsubscribe

    def _changed(self) -> None:
        """Wake the watcher thread now (a push notification arrived)."""
        self._wake.set()

    def _start_push(self) -> None:
        """Start a backend's push notifications (called once, with the watcher)."""

    def _stop_push(self) -> None:
        """Stop what :meth:`_start_push` started."""

    def _watch_loop(self, last: int | None) -> None:
        down = False
        while not self._stop.is_set():
            self._wake.wait(self.poll_interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                current = self.revision()
            except StoreUnavailableError as exc:
                if not down:
                    log.warning("watching %s: %s; retrying", self.url, exc)
                    down = True
                continue
            except Exception:  # noqa: BLE001 - the watcher must outlive any error
                log.exception("watching %s failed; retrying", self.url)
                continue
            if down:
                log.info("watching %s: store reachable again", self.url)
                down = False
            if current != last:
                last = current
                with self._watch_lock:
                    callbacks = list(self._callbacks.values())
                for callback in callbacks:
                    try:
                        callback(current)
                    except Exception:  # noqa: BLE001 - a bad callback must not stop others
                        log.exception("store watch callback %r failed", callback)

    def _stop_watcher(self) -> None:
        with self._watch_lock:
            self._closed = True
            self._callbacks.clear()
            watcher, self._watcher = self._watcher, None
        self._stop.set()
        self._wake.set()
        self._stop_push()
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(timeout=2.0)

    def close(self) -> None:
        """Stop watching and release connections; the object is unusable after."""
        self._stop_watcher()

    def __enter__(self) -> BaseStateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"


# -- error messages shared by every backend (the REST API shows them) ------

def app_exists(name: str) -> ConflictError:
    return ConflictError(f"Application with name '{name}' already exists", name=name)


def app_missing(name: str) -> NotFoundError:
    return NotFoundError(f"No application with name '{name}' exists", name=name)


def model_exists(name: str, version: str) -> ConflictError:
    return ConflictError(f"Model with name '{name}' and version '{version}' already exists",
                         name=name, version=version)


def model_missing(name: str) -> NotFoundError:
    return NotFoundError(f"No model with name '{name}' exists", name=name)


def version_missing(name: str, version: str) -> NotFoundError:
    return NotFoundError(f"No model with name '{name}' and version '{version}' exists",
                         name=name, version=version)


def replica_key(r: Replica) -> tuple[str, str, str, str]:
    return (r.model_name, r.model_version, r.replica_id, r.frontend)


# -- JSON records used by the SQLite and Redis stores -----------------------

def app_record(app: Application) -> dict[str, Any]:
    record = {"name": app.name, "input_type": int(app.input_type),
              "default_output": app.default_output,
              "latency_slo_micros": app.latency_slo_micros, "linked_model": app.linked_model}
    if app.selects:
        record["selection"] = selection_record(app)
    return record


def selection_record(app: Application) -> dict[str, Any]:
    """An app's models beside the primary and its selection policy."""
    return {"other_models": list(app.other_models), **app.selection_wire()}


def app_from_record(d: dict[str, Any]) -> Application:
    app = Application(name=d["name"], input_type=InputType(int(d["input_type"])),
                      default_output=d["default_output"],
                      latency_slo_micros=int(d["latency_slo_micros"]),
                      linked_model=d.get("linked_model"))
    selection = d.get("selection")
    if isinstance(selection, str):
        selection = json.loads(selection)
    if not selection:
        return app
    others = tuple(selection.get("other_models") or ())
    return attrs.evolve(app.with_selection(selection), other_models=others)


def model_record(m: ModelVersion, seq: int) -> dict[str, Any]:
    """``seq`` orders versions of one model by registration."""
    return {"name": m.name, "version": m.version, "input_type": int(m.input_type),
            "image": m.image, "labels": list(m.labels), "batch_size": m.batch_size,
            "batching_policy": m.batching_policy, "seq": seq}


def model_from_record(d: dict[str, Any]) -> ModelVersion:
    return ModelVersion(name=d["name"], version=d["version"],
                        input_type=InputType(int(d["input_type"])), image=d.get("image"),
                        labels=tuple(d.get("labels") or ()),
                        batch_size=int(d.get("batch_size", -1)),
                        batching_policy=d.get("batching_policy"))


def replica_record(r: Replica) -> dict[str, Any]:
    return {"model_name": r.model_name, "model_version": r.model_version,
            "replica_id": r.replica_id, "input_type": int(r.input_type),
            "connected": r.connected, "frontend": r.frontend, "last_seen": r.last_seen}


def replica_from_record(d: dict[str, Any]) -> Replica:
    return Replica(model_name=d["model_name"], model_version=d["model_version"],
                   replica_id=d["replica_id"], input_type=InputType(int(d["input_type"])),
                   connected=bool(d["connected"]), frontend=d.get("frontend", ""),
                   last_seen=float(d.get("last_seen", 0.0)))


def dumps(d: dict[str, Any]) -> str:
    return json.dumps(d, separators=(",", ":"), sort_keys=True)


# -- selection policy state (a key space apart from the configuration) ------

#: ``update(current state or None) -> new state`` of ``update_policy_state``
StateUpdate = Callable[[dict[str, Any] | None], dict[str, Any]]


def check_selection_models(app: Application, has_model: Callable[[str], bool]) -> None:
    """NotFoundError naming the first of ``app``'s linked models that is unknown."""
    for name in app.linked_models:
        if not has_model(name):
            raise model_missing(name)
