"""The model-selection path of a query: several models, one answer.

An application whose policy is anything but plain ``single`` has a
:class:`Selector` on its route (``AppRoute.selector``); ``QueryService``
hands such a request here instead of its one-queue path, and the policy
(:class:`clipper_core.interfaces.SelectionPolicy`) picks the models.  Each
chosen model's evaluation goes through the service's own ``_start`` (cache,
joining, admission, SLO timers), so an ensemble answers at the SLO with the
models that answered; the missing ones are counted.  Below the app's
confidence threshold the default output answers ("low confidence").  Shadow
models get the same input; their agreement and latency go to ``/metrics``
and nothing waits for them.

:class:`SelectionLayer` keeps each app's policy states (a copy of the
store's, refreshed every second in a worker thread) and turns
``POST /{app}/update`` feedback into a store write, also in a worker thread:
the event loop never calls the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from clipper_core import rpc
from clipper_core.cache import MISS
from clipper_core.errors import ClipperException, NotFoundError, ValidationError
from clipper_core.interfaces import StateStore
from clipper_core.models import Application
from clipper_core.selection import Query, state_key

from .deadlines import TIMEOUT
from .queues import ModelError, ModelQueue
from .selection_metrics import Combined, SelectionMetrics
from .service import NO_MODEL_VALUE, Pending

if TYPE_CHECKING:
    from .routes import AppRoute
    from .service import QueryService

log = logging.getLogger("clipper.query.selection")

REFRESH_S = 1.0


def _is_output(value: Any) -> bool:
    """A model's answer (not a missed SLO, an error, or "no replica": feedback
    must not count a model that could not answer as wrong)."""
    return (value is not TIMEOUT and type(value) is not ModelError and value is not None
            and value is not NO_MODEL_VALUE)


class Selector:
    """One application's policy and the queues of its linked models."""

    __slots__ = ("app", "policy", "queues", "layer", "metrics", "threshold", "params",
                 "__weakref__")

    def __init__(self, app: Application, policy: Any, queues: dict[str, ModelQueue],
                 layer: SelectionLayer) -> None:
        self.app = app
        self.policy = policy
        self.queues = queues
        self.layer = layer
        self.params = dict(app.policy_params)
        self.threshold = app.confidence_threshold
        self.metrics = layer.metrics_for(app.name)

    def state(self, query: Query) -> dict[str, Any]:
        states = self.layer.states.get(self.app.name, {})
        found = states.get(state_key(self.params, query.uid))
        return found if found is not None else self.layer.initial(self)

    def start(self, service: QueryService, route: AppRoute,
              body: bytes) -> tuple[list[Any], bool]:
        """Parse a predict body and start each input's models: one waiter
        per input (a future of the combined answer, or the answer)."""
        inputs, uid, batch = parse(route, body, service.max_batch_inputs)
        return [self._one(service, route, data, uid) for data in inputs], batch

    def _one(self, service: QueryService, route: AppRoute, data: bytes,
             uid: int | None) -> Any:
        query = Query(data=data, uid=uid)
        state = self.state(query)
        metrics = self.metrics
        names: list[str] = []
        waiters: list[Any] = []
        for model in self.policy.select(state, query):
            queue = self.queues.get(model)
            metrics.selected(model)
            if queue is None or not queue.replicas:
                metrics.missing += 1
                continue
            names.append(model)
            waiters.extend(service._start(route, queue, [data]))
        shadows = self.policy.shadows(state, query)
        if not waiters:
            if shadows:
                self._shadow(service, route, data, shadows, None)
            return NO_MODEL_VALUE
        combine = Combine(self, state, query, names, waiters)
        if shadows:
            self._shadow(service, route, data, shadows, combine)
        return combine.result()

    def _shadow(self, service: QueryService, route: AppRoute, data: bytes,
                shadows: list[str], primary: Combine | None) -> None:
        t0 = time.perf_counter()
        for model in shadows:
            queue = self.queues.get(model)
            if queue is None or not queue.replicas:
                continue
            (w,) = service._start(route, queue, [data])
            record = self.metrics.shadow_done(model, t0, primary)
            if isinstance(w, asyncio.Future):
                w.add_done_callback(_resolved(record))
            else:
                record(w)

    def finish(self, state: dict[str, Any], query: Query, names: list[str],
               values: list[Any]) -> Any:
        """The combined answer of the models that answered in time."""
        outputs = {m: v for m, v in zip(names, values, strict=True) if _is_output(v)}
        self.metrics.missing += sum(1 for v in values if v is TIMEOUT)
        if not outputs:
            return next((v for v in values if type(v) is ModelError), TIMEOUT)
        value, confidence = self.policy.combine(state, query, outputs)
        if confidence < self.threshold:
            self.metrics.low_confidence += 1
            return Combined(value, confidence, low=True)
        return Combined(value, confidence)


class Combine:
    """Waits for the chosen models of one input, then combines their answers."""

    __slots__ = ("selector", "state", "query", "names", "waiters", "remaining", "future",
                 "value")

    def __init__(self, selector: Selector, state: dict[str, Any], query: Query,
                 names: list[str], waiters: list[Any]) -> None:
        self.selector, self.state, self.query = selector, state, query
        self.names, self.waiters = names, waiters
        self.future: asyncio.Future[Any] | None = None
        self.value: Any = None
        pending = [w for w in waiters if isinstance(w, asyncio.Future) and not w.done()]
        self.remaining = len(pending)
        if pending:
            self.future = pending[0].get_loop().create_future()
            for w in pending:
                w.add_done_callback(self._one_done)
        else:
            self._finish()

    def result(self) -> Any:
        return self.future if self.future is not None else self.value

    def _one_done(self, _f: asyncio.Future[Any]) -> None:
        self.remaining -= 1
        if not self.remaining:
            self._finish()

    def _finish(self) -> None:
        values = [((w.result() if not w.cancelled() else TIMEOUT)
                   if isinstance(w, asyncio.Future) else w) for w in self.waiters]
        self.value = self.selector.finish(self.state, self.query, self.names, values)
        if self.future is not None and not self.future.done():
            self.future.set_result(self.value)


def _resolved(record: Callable[[Any], None]) -> Callable[[asyncio.Future[Any]], None]:
    """A done callback that hands a future's value (TIMEOUT if cancelled) to ``record``."""
    def done(f: asyncio.Future[Any]) -> None:
        record(f.result() if not f.cancelled() else TIMEOUT)
    return done


def is_update(path: str) -> bool:
    """``/{app}/update`` (feedback)."""
    parts = path.strip("/").split("/")
    return len(parts) == 2 and parts[1] == "update"


def parse(route: AppRoute, body: bytes, limit: int) -> tuple[list[bytes], int | None, bool]:
    """A predict (or update) body's inputs as wire bytes, its ``uid``, and
    whether it was an ``input_batch``.  ValidationError for a bad body."""
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"request body is not valid JSON: {exc}") from None
    if type(request) is not dict:
        raise ValidationError("request body must be a JSON object with an \"input\" or "
                              "\"input_batch\" field")
    uid = request.get("uid")
    if uid is not None and (type(uid) is not int):
        raise ValidationError("\"uid\" must be an integer")
    if "input" in request:
        inputs, batch = [request["input"]], False
    elif "input_batch" in request and type(request["input_batch"]) is list \
            and request["input_batch"]:
        inputs, batch = request["input_batch"], True
        if len(inputs) > limit:
            raise ValidationError(f"\"input_batch\" holds {len(inputs)} inputs; the limit "
                                  f"is {limit}")
    else:
        raise ValidationError("request body has no \"input\" or non-empty \"input_batch\"")
    bools = rpc.may_hold_booleans(body)
    return [rpc.encode_input(route.input_type, x, bools) for x in inputs], uid, batch


class SelectionLayer:
    """Policy states of every selecting app, their refresh, and feedback.

    :param store: the state store (called only from worker threads).
    :param build: ``build(name, models, params)`` -> a policy (the plugins').
    """

    def __init__(self, store: StateStore, build: Callable[..., Any]) -> None:
        self.store = store
        self.build = build
        #: app -> state key -> state (the copy queries read)
        self.states: dict[str, dict[str, dict[str, Any]]] = {}
        self.metrics: dict[str, SelectionMetrics] = {}
        #: the current selector of each app; an entry goes with its route (an app
        #: deleted or back on ``single`` leaves /metrics and the refresh)
        self.selectors: weakref.WeakValueDictionary[str, Selector] = (
            weakref.WeakValueDictionary())
        self._initial: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None

    def metrics_for(self, app: str) -> SelectionMetrics:
        return self.metrics.setdefault(app, SelectionMetrics())

    def initial(self, selector: Selector) -> dict[str, Any]:
        found = self._initial.get(selector.app.name)
        if found is None:
            found = self._initial[selector.app.name] = selector.policy.init_state()
        return found

    def make_selector(self, app: Application, queues: dict[str, ModelQueue]) -> Selector | None:
        """The selector of a selecting app (None on a bad policy: logged, and
        the app answers from its primary model alone)."""
        try:
            policy = self.build(app.selection_policy, app.linked_models, app.policy_params)
        except ClipperException as exc:
            log.error("application %s: selection policy %r: %s", app.name,
                      app.selection_policy, exc)
            return None
        selector = Selector(app, policy, queues, self)
        self._initial.pop(app.name, None)
        self.selectors[app.name] = selector
        return selector

    # -- the store, from worker threads -------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._task = loop.create_task(self._refresh_forever())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _refresh_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            for name in [n for n in self.states if n not in self.selectors]:
                del self.states[name]
            for name in list(self.selectors):
                try:
                    states = await loop.run_in_executor(None, self.store.policy_states, name)
                except Exception as exc:  # noqa: BLE001 - the store is away: keep the copy
                    log.warning("policy states of %s not refreshed: %s", name, exc)
                    continue
                self.states[name] = states
            await asyncio.sleep(REFRESH_S)

    def feedback(self, service: QueryService, path: str, body: bytes) -> Any:
        """``POST /{app}/update``: the chosen models' outputs (cached, else
        queried), then the policy's new state written through a worker thread."""
        name = path.strip("/").split("/")[0]
        route = service.routes.apps.get(name)
        if route is None:
            raise NotFoundError(f"No application named {name!r} is registered",
                                error="Application not found")
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ValidationError(f"request body is not valid JSON: {exc}") from None
        if type(request) is not dict or not isinstance(request.get("label"), (int, float)) \
                or isinstance(request.get("label"), bool):
            raise ValidationError("an update is {\"uid\": <int>, \"input\": <input>, "
                                  "\"label\": <number>}")
        selector = route.selector
        if selector is None:
            return 200, b'{"success":true}'  # plain single: accepted and ignored
        (data,), uid, _ = parse(route, body, 1)
        query = Query(data=data, uid=uid)
        names = [m for m in selector.policy.select(selector.state(query), query)
                 if m in selector.queues]
        waiters = []
        for model in names:
            queue = selector.queues[model]
            hit = service.cache.get((queue.model_name, queue.model_version, data))
            waiters.append(hit if hit is not MISS else service._start(route, queue, [data])[0])
        label = float(request["label"])

        def finish(values: list[Any]) -> tuple[int, bytes]:
            outputs = {m: v for m, v in zip(names, values, strict=True) if _is_output(v)}
            if outputs:
                self._write(selector, query, label, outputs)
            return 200, b'{"success":true}'

        return Pending(waiters, finish)

    def _write(self, selector: Selector, query: Query, label: float,
               outputs: dict[str, Any]) -> None:
        app, policy = selector.app.name, selector.policy
        key = state_key(selector.params, query.uid)
        selector.metrics.feedback += 1

        def update(old: dict[str, Any] | None) -> dict[str, Any]:
            new: dict[str, Any] = policy.observe(old if old is not None else policy.init_state(),
                                                 query, label, outputs)
            return new

        def write() -> dict[str, Any]:
            return self.store.update_policy_state(app, key, update)

        def stored(f: asyncio.Future[dict[str, Any]]) -> None:
            if f.cancelled() or f.exception() is not None:
                log.warning("feedback for %s not stored: %s", app,
                            None if f.cancelled() else f.exception())
                return
            self.states.setdefault(app, {})[key] = f.result()

        loop = asyncio.get_running_loop()
        loop.run_in_executor(None, write).add_done_callback(stored)

    def describe(self) -> dict[str, Any]:
        """Per app: selections per model, weights, stragglers, shadows."""
        out = {}
        for name, selector in list(self.selectors.items()):
            state = self.states.get(name, {}).get("") or self.initial(selector)
            out[name] = {"policy": selector.app.selection_policy,
                         "weights": selector.policy.weights(state),
                         **self.metrics_for(name).describe()}
        return out

