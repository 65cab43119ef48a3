"""The Redis state store: ``redis://[[user]:password@]host:port/db?prefix=NAME``.

``rediss://`` connects with TLS (query options ``ssl_cert_reqs``
(``required``/``optional``/``none``), ``ssl_ca_certs``, ``ssl_certfile``,
``ssl_keyfile``).  Every key starts with ``prefix`` (default ``clipper``), so
several clusters can share one Redis without seeing each other.  Other query
options: ``timeout`` (socket timeout, seconds, default 2), ``connect_timeout``
(default 1), ``poll`` (watch poll interval, default 0.15).

Layout under ``{prefix}:``: ``revision`` (counter), ``apps`` (name -> JSON),
``links`` (app -> model), ``models`` (``["name","version"]`` -> JSON),
``model_counts`` (name -> number of versions), ``current`` (name -> version),
``replicas`` (``[model,version,id,frontend]`` -> JSON).  Each configuration
write is one Lua script (checks, change, ``INCR revision`` and ``PUBLISH``
run atomically); reads of several keys run in one MULTI/EXEC.  Watchers
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
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import StoreUnavailableError, ValidationError
from ..hookspecs import hookimpl
from ..models import Application, ModelVersion, Replica, Snapshot
from .base import (
    DEFAULT_POLL_INTERVAL,
    BaseStateStore,
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
    version_missing,
)

log = logging.getLogger("clipper.stores.redis")

DEFAULT_PREFIX = "clipper"

#: Longest time calls fail fast after a connection failure before retrying.
MAX_BACKOFF = 1.0

# KEYS of every script: revision, apps, links, models, model_counts, current.
# ARGV[1] is the change channel; scripts return "ok" or an error code.
_ADD_APP = """
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return 'app_exists' end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[3], ARGV[2], ARGV[4]) end
redis.call('PUBLISH', ARGV[1], redis.call('INCR', KEYS[1]))
return 'ok'
"""

_DELETE_APP = """
if redis.call('HDEL', KEYS[2], ARGV[2]) == 0 then return 'app_missing' end
redis.call('HDEL', KEYS[3], ARGV[2])
redis.call('PUBLISH', ARGV[1], redis.call('INCR', KEYS[1]))
return 'ok'
"""

# ARGV: channel, name, field, record JSON (without "seq"), version, make_current
_ADD_MODEL = """
if redis.call('HEXISTS', KEYS[4], ARGV[3]) == 1 then return 'model_exists' end
local rev = redis.call('INCR', KEYS[1])
local rec = string.sub(ARGV[4], 1, -2) .. ',"seq":' .. rev .. '}'
redis.call('HSET', KEYS[4], ARGV[3], rec)
redis.call('HINCRBY', KEYS[5], ARGV[2], 1)
if ARGV[6] == '1' then redis.call('HSET', KEYS[6], ARGV[2], ARGV[5]) end
redis.call('PUBLISH', ARGV[1], rev)
return 'ok'
"""

# ARGV: channel, name, field, version
_DELETE_MODEL = """
if redis.call('HDEL', KEYS[4], ARGV[3]) == 0 then return 'version_missing' end
if redis.call('HINCRBY', KEYS[5], ARGV[2], -1) <= 0 then redis.call('HDEL', KEYS[5], ARGV[2]) end
if redis.call('HGET', KEYS[6], ARGV[2]) == ARGV[4] then redis.call('HDEL', KEYS[6], ARGV[2]) end
redis.call('PUBLISH', ARGV[1], redis.call('INCR', KEYS[1]))
return 'ok'
"""

_SET_CURRENT = """
if redis.call('HEXISTS', KEYS[4], ARGV[3]) == 0 then return 'version_missing' end
redis.call('HSET', KEYS[6], ARGV[2], ARGV[4])
redis.call('PUBLISH', ARGV[1], redis.call('INCR', KEYS[1]))
return 'ok'
"""

# ARGV: channel, app, model ('' unlinks)
_SET_LINK = """
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then return 'app_missing' end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[3], ARGV[2])
else
  if redis.call('HEXISTS', KEYS[5], ARGV[3]) == 0 then return 'model_missing' end
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
end
redis.call('PUBLISH', ARGV[1], redis.call('INCR', KEYS[1]))
return 'ok'
"""

_CERT_REQS = {"required", "optional", "none"}


def parse_redis_url(url: str) -> dict[str, Any]:
    """Split a ``redis://``/``rediss://`` store URL into connection options
    (keyword arguments of ``redis.Redis``) plus ``prefix`` and ``poll``."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValidationError(f"Not a Redis store URL: {url!r}", argument="store", value=url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    try:
        port = parts.port or 6379
        db_text = parts.path.strip("/")
        db = int(db_text) if db_text else int(query.pop("db", 0))
        opts: dict[str, Any] = {
            "host": parts.hostname or "127.0.0.1", "port": port, "db": db,
            "username": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None,
            "socket_timeout": float(query.pop("timeout", 2.0)),
            "socket_connect_timeout": float(query.pop("connect_timeout", 1.0)),
            "poll": float(query.pop("poll", DEFAULT_POLL_INTERVAL)),
        }
    except ValueError as exc:
        raise ValidationError(f"Bad Redis store URL {url!r}: {exc}", argument="store",
                              value=url) from exc
    opts["prefix"] = query.pop("prefix", DEFAULT_PREFIX) or DEFAULT_PREFIX
    if parts.scheme == "rediss":
        opts["ssl"] = True
        reqs = query.pop("ssl_cert_reqs", "required")
        if reqs not in _CERT_REQS:
            raise ValidationError(f"Bad ssl_cert_reqs {reqs!r} in {url!r}: one of "
                                  f"{', '.join(sorted(_CERT_REQS))}", argument="store", value=url)
        opts["ssl_cert_reqs"] = reqs
        for key in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
            if key in query:
                opts[key] = query.pop(key)
    if query:
        raise ValidationError(f"Unknown option(s) {', '.join(sorted(query))} in Redis store "
                              f"URL {_redact(url)!r}", argument="store", value=_redact(url))
    return opts


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port
                                                              else "")
    return parts._replace(netloc=netloc).geturl()


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
        #: pub/sub channels are not per database, so the channel names both.
        self.channel = f"{p}:changes@{opts['db']}"
        self._scripts = {name: self._client.register_script(src) for name, src in (
            ("add_app", _ADD_APP), ("delete_app", _DELETE_APP), ("add_model", _ADD_MODEL),
            ("delete_model", _DELETE_MODEL), ("set_current", _SET_CURRENT),
            ("set_link", _SET_LINK))}
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
            raise StoreUnavailableError(f"{self._where} is closed", url=_redact(self.url))
        wait = self._retry_at - time.monotonic()
        if wait > 0:
            raise StoreUnavailableError(
                f"{self._where} is unavailable: {self._last_error} (retrying in {wait:.2f}s)",
                url=_redact(self.url))
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
                                        url=_redact(self.url)) from exc
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
                                            f"from the {script} script", url=_redact(self.url))
            raise make()
        self._changed()

    def _multi(self, build: Callable[[Any], object]) -> list[Any]:
        """Run the commands ``build(pipe)`` queues in one MULTI/EXEC."""
        with self._guard():
            pipe = self._client.pipeline(transaction=True)
            build(pipe)
            return pipe.execute()

    # -- applications ------------------------------------------------------
    def add_application(self, app: Application) -> None:
        record = dumps({**app_record(app), "linked_model": None})
        self._run("add_app", app.name, record, app.linked_model or "",
                  errors={"app_exists": lambda: app_exists(app.name)})

    def delete_application(self, name: str) -> None:
        self._run("delete_app", name, errors={"app_missing": lambda: app_missing(name)})

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
            return self._client.hget(self._keys[5], name)

    def set_current_version(self, name: str, version: str) -> None:
        self._run("set_current", name, _field(name, version), version,
                  errors={"version_missing": lambda: version_missing(name, version)})

    # -- links -------------------------------------------------------------
    def set_link(self, app_name: str, model_name: str | None) -> None:
        self._run("set_link", app_name, model_name or "", errors={
            "app_missing": lambda: app_missing(app_name),
            "model_missing": lambda: model_missing(str(model_name))})

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

    # -- change tracking ---------------------------------------------------
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
