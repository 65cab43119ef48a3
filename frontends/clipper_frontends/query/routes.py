"""Applications and model queues as the hot path needs them.

:class:`Routes` turns a configuration snapshot of the state store into one
:class:`AppRoute` per application (its input type, SLO, default output and
the queue of its linked model version) and keeps the model queues, each
with the batching policy its model version asks for.  It is rebuilt only
when the configuration changes, so a query never reads the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import orjson

from clipper_core.interfaces import BatchingPolicy
from clipper_core.models import Application, InputType, ModelVersion, Snapshot

from .deadlines import DeadlineTimer
from .metrics import AppMetrics
from .queues import Evaluation, ModelQueue, SendBatch, Worker

log = logging.getLogger("clipper.query")

PolicyFactory = Callable[..., BatchingPolicy]


def parse_output(out: bytes) -> Any:
    """A model's output string: its JSON value if it parses, else the string."""
    try:
        return orjson.loads(out)
    except orjson.JSONDecodeError:
        return out.decode("utf-8", "replace")


class AppRoute:
    """Everything the hot path needs about one application, computed once per
    configuration change."""

    __slots__ = ("app", "input_type", "deadline_s", "default_value", "model_name",
                 "queue", "metrics", "timer", "selector")

    def __init__(self, app: Application, queue: ModelQueue | None, metrics: AppMetrics,
                 timer: DeadlineTimer) -> None:
        self.timer = timer
        self.app = app
        self.input_type = app.input_type
        self.deadline_s = app.latency_slo_micros / 1e6
        self.default_value = parse_output(app.default_output.encode())
        self.model_name = app.linked_model
        self.queue = queue
        self.metrics = metrics
        #: the app's selection-layer path (several models); None: one queue
        self.selector: Any = None


class Routes:
    """The applications and model queues of one query frontend.

    :param members: ``members(model, version)`` -> the replica pool's list of
        that version's replicas (read by its queue).
    :param send_batch: the pool's ``send_batch``.
    :param on_result: ``on_result(evaluation, output)`` for every answer.
    :param on_dropped: ``on_dropped(evaluation)`` for every evaluation given up.
    :param in_use: ``in_use(model, version)``: whether a replica serves it
        (its queue stays while one does).
    :param on_release: ``on_release(model, version)`` after its queue was
        dropped (the pool forgets its replica list).
    """

    def __init__(self, policies: dict[str, PolicyFactory],
                 members: Callable[[str, str], list[Any]], send_batch: SendBatch,
                 on_result: Callable[[Evaluation, bytes], None],
                 on_dropped: Callable[[Evaluation], None], *, pipeline_depth: int,
                 in_use: Callable[[str, str], bool] = lambda name, version: True,
                 on_release: Callable[[str, str], None] = lambda name, version: None,
                 make_selector: Callable[[Application, dict[str, ModelQueue]], Any]
                 | None = None) -> None:
        if "aimd" not in policies:
            raise ValueError("the built-in batching policy 'aimd' is not registered")
        self.policies = policies
        self._members = members
        self._send_batch = send_batch
        self._on_result = on_result
        self._on_dropped = on_dropped
        self.pipeline_depth = pipeline_depth
        self._in_use = in_use
        self._on_release = on_release
        #: ``make_selector(app, queues)`` for apps on a selection policy
        self._make_selector = make_selector
        self.apps: dict[str, AppRoute] = {}
        self.queues: dict[tuple[str, str], ModelQueue] = {}
        self.app_metrics: dict[str, AppMetrics] = {}
        self.snapshot: Snapshot | None = None
        #: the tightest SLO (seconds) of the applications linking each model
        self._slo: dict[str, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def apply(self, snap: Snapshot) -> None:
        """Rebuild the routes for a new configuration snapshot."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        self.snapshot = snap
        # Batching policies and SLOs of queues whose model is now known.
        slo: dict[str, float] = {}
        for app in snap.applications.values():
            for linked_name in app.linked_models:
                s = app.latency_slo_micros / 1e6
                slo[linked_name] = min(slo.get(linked_name, s), s)
        self._slo = slo
        for (name, version), queue in self.queues.items():
            model = snap.models.get((name, version))
            if model is not None:
                self._set_policy(queue, model)
            queue.slo_s = slo.get(name, queue.slo_s)
        apps = {}
        for name, app in snap.applications.items():
            metrics = self.app_metrics.setdefault(name, AppMetrics())
            linked = snap.linked_version(app)
            linked_queue = (self.queue(linked.name, linked.version, linked.input_type)
                            if linked else None)
            old = self.apps.get(name)
            timer = (old.timer if old is not None
                     and old.deadline_s * 1e6 == app.latency_slo_micros
                     else DeadlineTimer(self._loop))
            apps[name] = route = AppRoute(app, linked_queue, metrics, timer)
            if app.selects and self._make_selector is not None:
                route.selector = self._make_selector(app, self._linked_queues(snap, app))
        self.apps = apps
        for name, version in list(self.queues):
            self.release(name, version)
        log.info("configuration revision %d: %d apps, %d model versions", snap.revision,
                 len(apps), len(snap.models))

    def queue(self, name: str, version: str, input_type: InputType) -> ModelQueue:
        """The queue of a model version, made on first use."""
        found = self.queues.get((name, version))
        if found is not None:
            return found
        model = self.snapshot.models.get((name, version)) if self.snapshot else None
        replicas: list[Worker] = self._members(name, version)
        queue = ModelQueue(name, version, int(input_type), self.policies["aimd"](model),
                           self._send_batch, self._on_result, replicas=replicas,
                           on_dropped=self._on_dropped, pipeline_depth=self.pipeline_depth)
        if model is not None:
            self._set_policy(queue, model)
        queue.slo_s = self._slo.get(name, queue.slo_s)
        self.queues[(name, version)] = queue
        return queue

    def release(self, name: str, version: str) -> bool:
        """Drop the queue of a model version that no application links, no
        replica serves and nothing waits in (it and its metrics go); whether
        it was dropped.  A later replica or pinned query makes a new one."""
        queue = self.queues.get((name, version))
        if queue is None or queue.queue or self._in_use(name, version):
            return False
        if any(route.queue is queue or (route.selector is not None
                                        and queue in route.selector.queues.values())
               for route in self.apps.values()):
            return False
        del self.queues[(name, version)]
        self._on_release(name, version)
        return True

    def _linked_queues(self, snap: Snapshot, app: Application) -> dict[str, ModelQueue]:
        """The queue of the current version of each of the app's linked models."""
        queues = {}
        for name in app.linked_models:
            version = snap.current_versions.get(name)
            model = snap.models.get((name, version)) if version is not None else None
            if model is not None:
                queues[name] = self.queue(model.name, model.version, model.input_type)
        return queues

    def pinned_queue(self, route: AppRoute, version: str) -> ModelQueue | None:
        """The queue of ``version`` of the app's linked model; None if no such version."""
        model = route.model_name
        snap = self.snapshot
        if model is None or snap is None or (model, version) not in snap.models:
            return None
        return self.queue(model, version, route.input_type)

    def _set_policy(self, queue: ModelQueue, model: ModelVersion) -> None:
        wanted = model.policy_name
        if queue.policy_key == (wanted, model.batch_size):
            return
        factory = self.policies.get(wanted)
        if factory is None:
            log.error("model %s:%s asks for unknown batching policy %r; using aimd",
                      model.name, model.version, wanted)
            factory = self.policies["aimd"]
        queue.policy = factory(model)
        queue.policy_key = (wanted, model.batch_size)
