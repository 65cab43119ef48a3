"""The Redis state store: ``redis://[[user]:password@]host:port/db?prefix=NAME``.

``rediss://`` connects with TLS (query options ``ssl_cert_reqs``
(``required``/``optional``/``none``), ``ssl_ca_certs``, ``ssl_certfile``,
``ssl_keyfile``).  Every key starts with ``prefix`` (default ``clipper``), so
several clusters can share one Redis without seeing each other.  Other query
options: ``timeout`` (socket timeout, seconds, default 2), ``connect_timeout``
(default 1), ``poll`` (watch poll interval, default 0.05).

Layout under ``{prefix}:``: ``revision`` (counter), ``apps`` (name -> JSON),
``links`` (app -> model), ``models`` (``["name","version"]`` -> JSON),
``model_counts`` (name -> number of versions), ``current`` (name -> version),
``replicas`` (``[model,version,id,frontend]`` -> JSON), ``frontends`` (query
frontend id -> JSON of its revision and last write).  Each configuration
write is one Lua script (checks, change, ``INCR revision`` and ``PUBLISH``
run atomically: :mod:`clipper_core.stores.redis_scripts`); reads of several keys run in one MULTI/EXEC.  Watchers
follow the pub/sub channel and poll the revision as a fallback.

redis-py is imported when a store is opened, not when the plugin loads.
Whenever Redis cannot be reached, every method raises
:class:`~clipper_core.errors.StoreUnavailableError` (never a redis-py
error).  After a connection failure calls fail fast for a back-off period
(50 ms, doubling up to 1 s), then the next call reconnects; the pub/sub
listener likewise reconnects with back-off, so ``watch()`` survives a Redis
restart.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import StoreUnavailableError
from ..hookspecs import hookimpl
from ..models import Application, FrontendRecord, ModelVersion, Replica, Snapshot
from .base import (
    BaseStateStore,
    StateUpdate,
    app_exists,
    app_from_record,
    app_missing,
    app_record,
    dumps,
    model_exists,
    model_from_record,
    model_missing,
    model_record,
    replica_from_record,
    replica_record,
    selection_record,
    version_missing,
)
from .redis_scripts import SCRIPTS
from .redis_url import DEFAULT_PREFIX, parse_redis_url, redact

__all__ = ["DEFAULT_PREFIX", "MAX_BACKOFF", "RedisStateStore", "parse_redis_url"]

log = logging.getLogger("clipper.stores.redis")

#: Longest time calls fail fast after a connection failure before retrying.
MAX_BACKOFF = 1.0

def _field(*parts: str) -> str:
    return json.dumps(list(parts), separators=(",", ":"))


class RedisStateStore(BaseStateStore):
    """A :class:`~clipper_core.interfaces.StateStore` in Redis hashes."""

    def __init__(self, url: str) -> None:
        import redis  # heavy (0.2 s): only when a Redis store is opened
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        opts = parse_redis_url(url)
        super().__init__(url, poll_interval=opts.pop("poll"))
        self.prefix: str = opts.pop("prefix")
        self._where = (f"Redis state store {opts['host']}:{opts['port']}/{opts['db']} "
                       f"(prefix {self.prefix!r})")
        self._redis_error: type[Exception] = redis.exceptions.RedisError
        # No retries inside redis-py: a retried script could run twice.
        self._client: Any = redis.Redis(**opts, decode_responses=True,
                                        retry=Retry(NoBackoff(), 0), health_check_interval=0)
        p = self.prefix
        self._keys = [f"{p}:revision", f"{p}:apps", f"{p}:links", f"{p}:models",
                      f"{p}:model_counts", f"{p}:current"]
        self._replicas_key = f"{p}:replicas"
        self._frontends_key = f"{p}:frontends"
        #: pub/sub channels are not per database, so the channel names both.
        self.channel = f"{p}:changes@{opts['db']}"
        self._scripts = {name: self._client.register_script(src)
                         for name, src in SCRIPTS.items()}
        self._push_stop = threading.Event()
        self._connection_errors: tuple[type[Exception], ...] = (
            redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
        #: back-off after a connection failure: calls fail fast until
        #: ``_retry_at`` instead of each waiting for a connect timeout
        self._backoff_lock = threading.Lock()
        self._backoff = 0.0
        self._retry_at = 0.0
        self._last_error = ""
        self._push_thread: threading.Thread | None = None

    # -- plumbing ----------------------------------------------------------
    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn every redis-py error into StoreUnavailableError; after a
        connection failure, fail fast for a back-off period (50 ms doubling to
        1 s) before the next call tries to reconnect."""
        if self._closed:
            raise StoreUnavailableError(f"{self._where} is closed", url=redact(self.url))
        wait = self._retry_at - time.monotonic()
        if wait > 0:
            raise StoreUnavailableError(
                f"{self._where} is unavailable: {self._last_error} (retrying in {wait:.2f}s)",
                url=redact(self.url))
        try:
            yield
        except (self._redis_error, OSError) as exc:
            message = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, self._connection_errors):
                with self._backoff_lock:
                    self._backoff = min(max(self._backoff * 2, 0.05), MAX_BACKOFF)
                    self._retry_at = time.monotonic() + self._backoff
                    self._last_error = message
            raise StoreUnavailableError(f"{self._where} is unavailable: {message}",
                                        url=redact(self.url)) from exc
        if self._backoff:
            with self._backoff_lock:
                self._backoff, self._retry_at = 0.0, 0.0

    def _run(self, script: str, *args: str, errors: dict[str, Callable[[], Exception]]) -> None:
        """Run a write script; raise ``errors[code]()`` when it refuses."""
        with self._guard():
            code = self._scripts[script](keys=self._keys, args=[self.channel, *args])
        if code != "ok":
            make = errors.get(code)
            if make is None:
                raise StoreUnavailableError(f"{self._where}: unexpected reply {code!r} "
                                            f"from the {script} script", url=redact(self.url))
            raise make()
        self._changed()

    def _multi(self, build: Callable[[Any], object]) -> list[Any]:
        """Run the commands ``build(pipe)`` queues in one MULTI/EXEC."""
        with self._guard():
            pipe = self._client.pipeline(transaction=True)
            build(pipe)
            replies: list[Any] = pipe.execute()
        return replies

    # -- applications ------------------------------------------------------
    def add_application(self, app: Application) -> None:
        record = dumps({**app_record(app), "linked_model": None})
        self._run("add_app", app.name, record, app.linked_model or "",
                  errors={"app_exists": lambda: app_exists(app.name)})

    def delete_application(self, name: str) -> None:
        self._run("delete_app", name, errors={"app_missing": lambda: app_missing(name)})
        with self._guard():
            self._client.delete(self._policy_key(name))

    def get_application(self, name: str) -> Application | None:
        raw, link = self._multi(lambda p: (p.hget(self._keys[1], name),
                                           p.hget(self._keys[2], name)))
        return _app(raw, link) if raw is not None else None

    def list_applications(self) -> list[Application]:
        apps, links = self._multi(lambda p: (p.hgetall(self._keys[1]),
                                             p.hgetall(self._keys[2])))
        return [_app(apps[n], links.get(n)) for n in sorted(apps)]

    # -- models ------------------------------------------------------------
    def add_model(self, model: ModelVersion, *, make_current: bool = True) -> None:
        record = model_record(model, 0)
        del record["seq"]  # the script appends the revision as "seq"
        self._run("add_model", model.name, _field(model.name, model.version), dumps(record),
                  model.version, "1" if make_current else "0",
                  errors={"model_exists": lambda: model_exists(model.name, model.version)})

    def delete_model_version(self, name: str, version: str) -> None:
        self._run("delete_model", name, _field(name, version), version,
                  errors={"version_missing": lambda: version_missing(name, version)})

    def get_model(self, name: str, version: str) -> ModelVersion | None:
        with self._guard():
            raw = self._client.hget(self._keys[3], _field(name, version))
        return model_from_record(json.loads(raw)) if raw is not None else None

    def list_models(self) -> list[ModelVersion]:
        with self._guard():
            raw = self._client.hgetall(self._keys[3])
        return _models(raw)

    def get_current_version(self, name: str) -> str | None:
        with self._guard():
            version: str | None = self._client.hget(self._keys[5], name)
        return version

    def set_current_version(self, name: str, version: str) -> None:
        self._run("set_current", name, _field(name, version), version,
                  errors={"version_missing": lambda: version_missing(name, version)})

    # -- links -------------------------------------------------------------
    def set_link(self, app_name: str, model_name: str | None) -> None:
        self._run("set_link", app_name, model_name or "", errors={
            "app_missing": lambda: app_missing(app_name),
            "model_missing": lambda: model_missing(str(model_name))})

    # -- selection ---------------------------------------------------------
    def set_selection(self, app: Application) -> None:
        record = dumps({**app_record(app), "linked_model": None,
                        "selection": selection_record(app)})
        errors: dict[str, Callable[[], Exception]] = {
            "app_missing": lambda: app_missing(app.name)}
        for model in app.linked_models:
            errors[f"model_missing:{model}"] = lambda m=model: model_missing(m)  # type: ignore[misc]
        self._run("set_selection", app.name, record, app.linked_model or "",
                  *app.linked_models, errors=errors)

    def _policy_key(self, app_name: str) -> str:
        # Apart from the configuration's keys: a write bumps no revision.
        return f"{self.prefix}:policy:{app_name}"

    def policy_states(self, app_name: str) -> dict[str, dict[str, Any]]:
        with self._guard():
            raw = self._client.hgetall(self._policy_key(app_name))
        return {key: json.loads(text) for key, text in raw.items()}

    def update_policy_state(self, app_name: str, key: str,
                            update: StateUpdate) -> dict[str, Any]:
        name = self._policy_key(app_name)
        result: dict[str, Any] = {}

        def swap(pipe: Any) -> None:
            text = pipe.hget(name, key)
            result["new"] = update(json.loads(text) if text is not None else None)
            pipe.multi()
            pipe.hset(name, key, dumps(result["new"]))

        with self._guard():
            # WATCH/MULTI: retried when another frontend wrote in between.
            self._client.transaction(swap, name)
        new: dict[str, Any] = result["new"]
        return new

    # -- replicas ----------------------------------------------------------
    def put_replica(self, replica: Replica) -> None:
        field = _field(replica.model_name, replica.model_version, replica.replica_id,
                       replica.frontend)
        with self._guard():
            self._client.hset(self._replicas_key, field, dumps(replica_record(replica)))

    def delete_replica(self, model_name: str, model_version: str, replica_id: str,
                       frontend: str = "") -> None:
        with self._guard():
            self._client.hdel(self._replicas_key,
                              _field(model_name, model_version, replica_id, frontend))

    def list_replicas(self) -> list[Replica]:
        with self._guard():
            raw = self._client.hgetall(self._replicas_key)
        return [replica_from_record(json.loads(raw[k])) for k in sorted(raw)]

    # -- query frontends ----------------------------------------------------
    def put_frontend(self, record: FrontendRecord) -> None:
        value = dumps({"frontend_id": record.frontend_id, "revision": record.revision,
                       "last_seen": record.last_seen})
        with self._guard():
            self._client.hset(self._frontends_key, record.frontend_id, value)

    def delete_frontend(self, frontend_id: str) -> None:
        with self._guard():
            self._client.hdel(self._frontends_key, frontend_id)

    def list_frontends(self) -> list[FrontendRecord]:
        with self._guard():
            raw = self._client.hgetall(self._frontends_key)
        records = [json.loads(raw[k]) for k in sorted(raw)]
        return [FrontendRecord(frontend_id=d["frontend_id"], revision=int(d["revision"]),
                               last_seen=float(d["last_seen"])) for d in records]

    # -- change tracking ---------------------------------------------------
    def advance_revision(self, at_least: int) -> int:
        with self._guard():
            value = self._scripts["advance_revision"](keys=self._keys,
                                                      args=[self.channel, int(at_least)])
        return int(value)

    def revision(self) -> int:
        with self._guard():
            value = self._client.get(self._keys[0])
        return int(value) if value is not None else 0

    def snapshot(self) -> Snapshot:
        rev, apps, links, models, current = self._multi(lambda p: (
            p.get(self._keys[0]), p.hgetall(self._keys[1]), p.hgetall(self._keys[2]),
            p.hgetall(self._keys[3]), p.hgetall(self._keys[5])))
        return Snapshot(revision=int(rev or 0),
                        applications={n: _app(apps[n], links.get(n)) for n in sorted(apps)},
                        models={(m.name, m.version): m for m in _models(models)},
                        current_versions=dict(current))

    def ping(self) -> None:
        with self._guard():
            self._client.ping()

    def close(self) -> None:
        """Stop watching and disconnect."""
        super().close()
        with contextlib.suppress(self._redis_error):
            self._client.close()

    # -- push notifications --------------------------------------------------
    def _start_push(self) -> None:
        if self._push_thread is not None and self._push_thread.is_alive():
            return
        self._push_stop.clear()
        self._push_thread = threading.Thread(target=self._listen, daemon=True,
                                             name=f"clipper-store-pubsub[{self.prefix}]")
        self._push_thread.start()

    def _stop_push(self) -> None:
        self._push_stop.set()
        thread, self._push_thread = self._push_thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)

    def _listen(self) -> None:
        """Follow the change channel; reconnect with back-off while Redis is down."""
        delay = 0.1
        while not self._push_stop.is_set():
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.channel)
                # Something may have changed while we were not subscribed.
                self._changed()
                delay = 0.1
                while not self._push_stop.is_set():
                    message = pubsub.get_message(timeout=0.2)
                    if message is not None and message.get("type") == "message":
                        self._changed()
            except (self._redis_error, OSError, ValueError) as exc:
                log.debug("pub/sub on %s lost (%s); reconnecting in %.1fs", self._where,
                          exc, delay)
                self._push_stop.wait(delay)
                delay = min(delay * 2, 2.0)
            finally:
                with contextlib.suppress(Exception):
                    pubsub.close()


def _app(raw: str, link: str | None) -> Application:
    return app_from_record({**json.loads(raw), "linked_model": link})


def _models(raw: dict[str, str]) -> list[ModelVersion]:
    records = [json.loads(v) for v in raw.values()]
    records.sort(key=lambda r: (r["name"], r["seq"]))
    return [model_from_record(r) for r in records]


@hookimpl
def register_state_stores(register: Callable[[str, Callable[..., Any]], None]) -> None:
    register("redis", RedisStateStore)
    register("rediss", RedisStateStore)
