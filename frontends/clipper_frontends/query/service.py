"""The query service: what a query frontend does, whatever the transport.

Both HTTP adapters (the built-in server in :mod:`.httpserver` and the ASGI
app in :mod:`.asgi`) call the same four steps for ``POST /{app}/predict``:

1. :meth:`QueryService.route_for` finds the application (404 if none);
2. :meth:`QueryService.start_query` parses the body, checks admission, looks
   the prediction cache up and enqueues the inputs it must evaluate; it
   returns one waiter per input (a future, or a value already known);
3. the adapter waits for the futures (model answers or SLO deadlines);
4. :meth:`QueryService.render` turns the values into the response body.

Every other route is in one table, :attr:`QueryService.table`, answered
by :meth:`QueryService.answer_other`.  Errors are core exceptions mapped to
a status by :func:`clipper_core.errors.http_status`, and rendered by
:func:`error_payload` as ``{"error": ..., "cause": ...}``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson

from clipper_core import rpc
from clipper_core.cache import MISS, PredictionCache
from clipper_core.errors import (
    ClipperException,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    ValidationError,
    http_status,
)
from clipper_core.models import InputType

from .deadlines import TIMEOUT
from .ingest import DoublesParser
from .queues import Evaluation, ModelError, ModelQueue
from .routes import AppRoute, Routes, parse_output
from .selection_metrics import LOW_CONFIDENCE, Combined

NO_MODEL = "No connected models found for query"
SLO_MISSED = "Failed to retrieve a prediction response within the specified latency SLO"
#: the ``"error"`` of a query frontend's error body, by status (Clipper's words)
ERROR_LABELS = {400: "Json error", 404: "Not found", 405: "Method not allowed",
                413: "Payload too large", 414: "URI too long", 503: "Service unavailable"}

#: ``handler() -> (status, body)`` for a route of the table
Handler = Callable[[], tuple[int, bytes]]


class Pending:
    """An answer that waits for futures (model answers, a store write):
    when every waiter is done, ``finish(values)`` gives ``(status, body)``,
    ``values`` holding each waiter's result (a value that was no future
    stays as it is; a cancelled future counts as ``TIMEOUT``)."""

    __slots__ = ("waiters", "finish")

    def __init__(self, waiters: list[Any],
                 finish: Callable[[list[Any]], tuple[int, bytes]]) -> None:
        self.waiters = waiters
        self.finish = finish


#: ``handler(path, body) -> (status, body) | Pending`` for a matched route
MatchedHandler = Callable[[str, bytes], "tuple[int, bytes] | Pending"]
#: while requests keep the loop busy, look for replica answers this often
#: (seconds): a loop turn that reads hundreds of requests must not leave the
#: replicas' answers, and so the replicas, waiting until it ends
POLL_INTERVAL_S = 0.0005


class _NoModel:
    __slots__ = ()


NO_MODEL_VALUE: Any = _NoModel()


def error_payload(exc: ClipperException) -> tuple[int, bytes]:
    """The status and JSON body of a refused request."""
    status = http_status(exc)
    label = exc.fields.get("error") or ERROR_LABELS.get(status, "Bad request")
    return status, orjson.dumps({"error": label, "cause": exc.msg})


class QueryService:
    """Routes, parses, admits, enqueues and renders queries.

    Runs on the frontend's event loop; :meth:`bind` gives it the loop.
    """

    def __init__(self, routes: Routes, cache: PredictionCache, *,
                 max_body_bytes: int, poll: Callable[[], None] | None = None,
                 max_batch_inputs: int = 10_000) -> None:
        self.routes = routes
        self._poll = poll or (lambda: None)
        self._next_poll = 0.0
        self.cache = cache
        self.max_body = max_body_bytes
        self.max_batch_inputs = max_batch_inputs
        #: evaluations in flight by (model, version, input): identical
        #: concurrent queries share one
        self.pending: dict[tuple[str, str, bytes], Evaluation] = {}
        #: (method, path) -> handler of every route but predict
        self.table: dict[tuple[bytes, str], Handler] = {}
        #: path -> content type of a route whose body is not JSON (``/docs``)
        self.content_types: dict[str, bytes] = {}
        #: (method, match(path), handler) of routes with parameters in the path
        #: or answers that wait (``/v2/models/{name}/infer``, ``/{app}/update``)
        self.matched: list[tuple[bytes, Callable[[str], bool], MatchedHandler]] = []
        self._doubles = DoublesParser()
        self._next_query_id = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def add_route(self, method: bytes, path: str, handler: Handler,
                  content_type: bytes = b"application/json") -> None:
        """Serve ``method path`` (GET also answers HEAD) with ``handler``,
        whose body is of ``content_type``."""
        self.table[(method, path)] = handler
        if content_type != b"application/json":
            self.content_types[path] = content_type

    def add_matched_route(self, method: bytes, match: Callable[[str], bool],
                          handler: MatchedHandler) -> None:
        """Serve ``method`` on every path ``match(path)`` accepts (after the
        exact routes) with ``handler(path, body)``, which may answer later
        (:class:`Pending`)."""
        self.matched.append((method, match, handler))

    # -- predict -------------------------------------------------------------
    def route_for(self, path: str) -> AppRoute:
        """The application of a ``/{app}/predict`` path; NotFoundError if none."""
        parts = path.strip("/").split("/")
        route = self.routes.apps.get(parts[0]) if len(parts) == 2 else None
        if route is None:
            raise NotFoundError(f"No application named {parts[0]!r} is registered",
                                error="Application not found")
        return route

    def start_query(self, route: AppRoute, body: bytes) -> tuple[list[Any], bool]:
        """Parse a request body and start its evaluations: one waiter (a
        future, or a value already known) per input, and whether it was an
        ``input_batch``.  ValidationError (400) for a bad body."""
        try:
            return self._prepare(route, body)
        except ValidationError:
            route.metrics.errors += 1
            raise

    def render(self, route: AppRoute, values: list[Any], batch: bool, t0: float) -> bytes:
        """The response body for the answered ``values``; records the
        request in the app's metrics (``t0``: its arrival, ``perf_counter``)."""
        results = []
        defaults = 0
        for value in values:
            qid = self._next_query_id
            self._next_query_id = qid + 1
            if value is TIMEOUT:
                defaults += 1
                route.metrics.slo_defaults += 1
                results.append({"query_id": qid, "output": route.default_value, "default": True,
                                "default_explanation": SLO_MISSED})
            elif type(value) is ModelError:
                defaults += 1
                route.metrics.error_defaults += 1
                results.append({"query_id": qid, "output": route.default_value, "default": True,
                                "default_explanation": f"Model error: {value.message}"})
            elif value is NO_MODEL_VALUE:
                defaults += 1
                route.metrics.no_model_defaults += 1
                results.append({"query_id": qid, "output": route.default_value, "default": True,
                                "default_explanation": NO_MODEL})
            elif type(value) is Combined:  # a selecting app's answer, with its confidence
                if value.low:
                    defaults += 1
                    results.append({"query_id": qid, "output": route.default_value,
                                    "default": True, "default_explanation": LOW_CONFIDENCE,
                                    "confidence": value.confidence})
                else:
                    results.append({"query_id": qid, "output": value.output, "default": False,
                                    "confidence": value.confidence})
            else:
                results.append({"query_id": qid, "output": value, "default": False})
        payload = orjson.dumps({"batch_predictions": results} if batch else results[0])
        route.metrics.record(time.perf_counter() - t0, len(results), defaults)
        return payload

    def on_result(self, ev: Evaluation, out: bytes) -> None:
        """A model answered one evaluation: cache it and wake its waiters."""
        if self.pending.get(ev.key) is ev:
            del self.pending[ev.key]
        if out.startswith(rpc.ERROR_PREFIX):
            value: Any = ModelError(rpc.decode_error(out) or "model error")
        else:
            value = parse_output(out)
            self.cache.put(ev.key, value, len(out))
        for w in ev.waiters:
            if not w.done():
                w.set_result(value)

    def on_dropped(self, ev: Evaluation) -> None:
        """A queue gave up on an evaluation nobody waits for any more."""
        if self.pending.get(ev.key) is ev:
            del self.pending[ev.key]

    def _prepare(self, route: AppRoute, body: bytes) -> tuple[list[Any], bool]:
        if route.selector is not None:  # several models: the selection layer's path
            return route.selector.start(self, route, body)  # type: ignore[no-any-return]
        queue = route.queue
        if queue is not None and not queue.can_queue() and b'"input_batch"' not in body:
            # Overloaded: the queue holds all the work it can serve in time.
            # Decided before parsing, so the excess costs little more than its
            # HTTP: the query gets the default at its deadline (unparsed, so
            # a malformed body is not told apart from a good one here).
            return self._hold(route, queue), False
        input_type = route.input_type
        data = (self._doubles.single_input(body) if input_type is InputType.DOUBLES
                else None)
        if data is not None:
            return self._start(route, route.queue, [data]), False
        limit = self.max_batch_inputs
        if len(body) > 16 * limit and input_type in rpc.DTYPES and body.count(b"[") > limit + 1:
            # Each numeric input is a list: refused before parsing megabytes.
            raise PayloadTooLargeError(f"request body holds more than {limit} inputs, the "
                                       f"limit of an \"input_batch\"")
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ValidationError(f"request body is not valid JSON: {exc}") from None
        if type(request) is not dict:
            raise ValidationError("request body must be a JSON object with an \"input\" or "
                                  "\"input_batch\" field")
        if "input" in request:
            inputs = [request["input"]]
            batch = False
        elif "input_batch" in request:
            inputs = request["input_batch"]
            batch = True
            if type(inputs) is not list or not inputs:
                raise ValidationError("\"input_batch\" must be a non-empty list of inputs")
            if len(inputs) > limit:
                raise PayloadTooLargeError(f"\"input_batch\" holds {len(inputs)} inputs; the "
                                           f"limit is {limit}")
        else:
            raise ValidationError("request body has no \"input\" or \"input_batch\" field")
        bools = rpc.may_hold_booleans(body)
        encoded = [rpc.encode_input(input_type, x, bools) for x in inputs]
        queue = route.queue
        version = request.get("version")
        if version is not None:
            queue = self._pinned_queue(route, version)
        return self._start(route, queue, encoded), batch

    def _hold(self, route: AppRoute, queue: ModelQueue) -> list[Any]:
        """One waiter answered with the default at the query's deadline."""
        loop = self._loop
        assert loop is not None
        queue.shed += 1
        route.metrics.shed += 1
        w = loop.create_future()
        route.timer.add(loop.time() + route.deadline_s, w)
        return [w]

    def _pinned_queue(self, route: AppRoute, version: Any) -> ModelQueue | None:
        if isinstance(version, bool) or not isinstance(version, (str, int)):
            raise ValidationError("\"version\" must be a string")
        queue = self.routes.pinned_queue(route, str(version))
        if queue is None:
            raise ValidationError(f"Requested version: {version} does not exist for model: "
                                  f"{route.model_name}", error="Query processing error")
        return queue

    def _start(self, route: AppRoute, queue: ModelQueue | None,
               encoded: list[bytes]) -> list[Any]:
        """Start the evaluations of a parsed request's inputs (wire bytes)."""
        if queue is None or not queue.replicas:
            return [NO_MODEL_VALUE] * len(encoded)
        loop = self._loop
        assert loop is not None
        now = loop.time()
        deadline = now + route.deadline_s
        cache = self.cache
        pending = self.pending
        add_timer = route.timer.add
        name, ver = queue.model_name, queue.model_version
        waiters: list[Any] = []
        admit = queue.can_queue()
        for data in encoded:
            key = (name, ver, data)
            hit = cache.get(key)
            if hit is not MISS:
                waiters.append(hit)
                continue
            w = loop.create_future()
            add_timer(deadline, w)
            ev = pending.get(key)
            if ev is None and not admit:
                # The queue holds all the work it can serve in time: this
                # query gets the default at its deadline, not sooner (a
                # client answered at once would only ask again at once).
                queue.shed += 1
                route.metrics.shed += 1
            elif ev is not None:
                ev.waiters.append(w)
                if deadline > ev.deadline:
                    ev.deadline = deadline
            else:
                ev = Evaluation(key, data, w, deadline)
                pending[key] = ev
                queue.queue.append(ev)
            waiters.append(w)
        # One dispatch for the whole request, so an input_batch travels as one batch.
        queue.dispatch()
        if now >= self._next_poll:
            self._next_poll = now + POLL_INTERVAL_S
            self._poll()
        return waiters

    # -- every other route ---------------------------------------------------
    def answer_other(self, method: bytes, path: str,
                     body: bytes = b"") -> tuple[int, bytes] | Pending:
        """Every route but ``POST /{app}/predict``: the exact routes of the
        table, then the matched ones; 405 for a predict path, else 404."""
        lookup = b"GET" if method == b"HEAD" else method
        handler = self.table.get((lookup, path))
        try:
            if handler is not None:
                return handler()
            for route_method, match, matched in self.matched:
                if route_method == lookup and match(path):
                    return matched(path, body)
            if path.endswith("/predict") or path.endswith("/predict/"):
                raise MethodNotAllowedError("use POST /{app}/predict")
            raise NotFoundError(f"no route {path}; use POST /{{app}}/predict")
        except ClipperException as exc:
            return error_payload(exc)

    @staticmethod
    def is_predict(method: bytes, path: str) -> bool:
        return method == b"POST" and (path.endswith("/predict") or path.endswith("/predict/"))
