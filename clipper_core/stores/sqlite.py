"""The embedded default state store: ``sqlite:///abs/path/state.db``.

One SQLite file in WAL mode, shared safely by every process of a cluster
(management frontend, query frontends, the CLI).  Writes run in ``BEGIN
IMMEDIATE`` transactions with a busy timeout; each thread has its own
connection.  A single ``revision`` row is bumped by every configuration
write, and watchers poll it (a one-row read) every 50 ms, so a change made by
another process is seen well within a second.

Options in the query string: ``timeout`` (busy timeout in seconds, default
5), ``poll`` (watch poll interval in seconds, default 0.05).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import StoreUnavailableError, ValidationError
from ..hookspecs import hookimpl
from ..models import Application, ModelVersion, Snapshot
from .base import (
    DEFAULT_POLL_INTERVAL,
    BaseStateStore,
    app_exists,
    app_from_record,
    app_missing,
    check_selection_models,
    model_exists,
    model_from_record,
    model_missing,
    selection_record,
    version_missing,
)
from .sqlite_records import SqliteRecords

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('revision', 0);
CREATE TABLE IF NOT EXISTS applications (
    name TEXT PRIMARY KEY, input_type INTEGER NOT NULL, default_output TEXT NOT NULL,
    latency_slo_micros INTEGER NOT NULL, linked_model TEXT);
CREATE TABLE IF NOT EXISTS models (
    name TEXT NOT NULL, version TEXT NOT NULL, input_type INTEGER NOT NULL, image TEXT,
    labels TEXT NOT NULL, batch_size INTEGER NOT NULL, batching_policy TEXT,
    seq INTEGER NOT NULL, PRIMARY KEY (name, version));
CREATE TABLE IF NOT EXISTS current_versions (name TEXT PRIMARY KEY, version TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS replicas (
    model_name TEXT NOT NULL, model_version TEXT NOT NULL, replica_id TEXT NOT NULL,
    frontend TEXT NOT NULL, input_type INTEGER NOT NULL, connected INTEGER NOT NULL,
    last_seen REAL NOT NULL, PRIMARY KEY (model_name, model_version, replica_id, frontend));
CREATE TABLE IF NOT EXISTS frontends (
    frontend_id TEXT PRIMARY KEY, revision INTEGER NOT NULL, last_seen REAL NOT NULL);
CREATE TABLE IF NOT EXISTS app_selections (name TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS policy_states (
    app TEXT NOT NULL, key TEXT NOT NULL, state TEXT NOT NULL, PRIMARY KEY (app, key));
"""

_APP_COLS = "name, input_type, default_output, latency_slo_micros, linked_model"
#: an app's columns and its selection record (NULL for a plain ``single`` app)
_APP_READ = (f"{_APP_COLS}, (SELECT record FROM app_selections "
             "WHERE app_selections.name = applications.name)")
_MODEL_COLS = "name, version, input_type, image, labels, batch_size, batching_policy, seq"


def parse_sqlite_url(url: str) -> tuple[Path, dict[str, str]]:
    """Split ``sqlite:///abs/path.db?timeout=5`` into the path and options."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise ValidationError(f"Not an SQLite store URL: {url!r}", argument="store", value=url)
    raw = unquote(parts.netloc + parts.path)
    if not raw or raw == "/":
        raise ValidationError(f"SQLite store URL {url!r} names no file; use "
                              "sqlite:///absolute/path/state.db", argument="store", value=url)
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return Path(os.path.expanduser(raw)), options


class SqliteStateStore(SqliteRecords, BaseStateStore):
    """A :class:`~clipper_core.interfaces.StateStore` in one SQLite file."""

    def __init__(self, url: str) -> None:
        path, options = parse_sqlite_url(url)
        try:
            timeout = float(options.get("timeout", 5.0))
            poll = float(options.get("poll", DEFAULT_POLL_INTERVAL))
        except ValueError as exc:
            raise ValidationError(f"Bad option in SQLite store URL {url!r}: {exc}",
                                  argument="store", value=url) from exc
        super().__init__(url, poll_interval=poll)
        self.path = path
        self._timeout = timeout
        self._local = threading.local()
        #: every open connection with its thread, to close them all (and those
        #: of finished threads) without waiting for the garbage collector
        self._conns: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._conns_lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailableError(
                f"Cannot create the directory of SQLite store {path}: {exc}", url=url) from exc
        with self._write() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)

    # -- connections -------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (a new one after a fork)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        if self._closed:
            raise StoreUnavailableError(f"State store {self.url} is closed", url=self.url)
        try:
            conn = sqlite3.connect(str(self.path), timeout=self._timeout,
                                   isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"cannot switch to WAL mode (got {mode})")
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc
        self._local.conn, self._local.pid = conn, os.getpid()
        with self._conns_lock:
            alive = []
            for thread, other in self._conns:
                if thread.is_alive():
                    alive.append((thread, other))
                else:
                    with contextlib.suppress(sqlite3.Error):
                        other.close()
            alive.append((threading.current_thread(), conn))
            self._conns = alive
        return conn

    def _unavailable(self, exc: BaseException) -> StoreUnavailableError:
        return StoreUnavailableError(f"SQLite state store {self.path} is unavailable: {exc}",
                                     url=self.url)

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE): committed on success, rolled
        back if the body raises."""
        db = self._conn()
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc
        try:
            yield db
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise self._unavailable(exc) from exc
            raise
        try:
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise self._unavailable(exc) from exc

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees one version of the file."""
        db = self._conn()
        try:
            db.execute("BEGIN")
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc
        try:
            yield db
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc
        finally:
            with contextlib.suppress(sqlite3.Error):
                db.execute("COMMIT")

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._conn().execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc

    @staticmethod
    def _bump(db: sqlite3.Connection) -> int:
        db.execute("UPDATE meta SET value = value + 1 WHERE key = 'revision'")
        return int(db.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()[0])

    @staticmethod
    def _has_model(db: sqlite3.Connection, name: str) -> bool:
        return db.execute("SELECT 1 FROM models WHERE name = ? LIMIT 1", (name,)).fetchone() \
            is not None

    # -- applications ------------------------------------------------------
    def add_application(self, app: Application) -> None:
        with self._write() as db:
            if db.execute("SELECT 1 FROM applications WHERE name = ?", (app.name,)).fetchone():
                raise app_exists(app.name)
            db.execute(f"INSERT INTO applications ({_APP_COLS}) VALUES (?, ?, ?, ?, ?)",
                       (app.name, int(app.input_type), app.default_output,
                        app.latency_slo_micros, app.linked_model))
            if app.selects:
                db.execute("INSERT OR REPLACE INTO app_selections (name, record) VALUES (?, ?)",
                           (app.name, json.dumps(selection_record(app))))
            self._bump(db)
        self._changed()

    def delete_application(self, name: str) -> None:
        with self._write() as db:
            if db.execute("DELETE FROM applications WHERE name = ?", (name,)).rowcount == 0:
                raise app_missing(name)
            db.execute("DELETE FROM app_selections WHERE name = ?", (name,))
            db.execute("DELETE FROM policy_states WHERE app = ?", (name,))
            self._bump(db)
        self._changed()

    def get_application(self, name: str) -> Application | None:
        rows = self._query(f"SELECT {_APP_READ} FROM applications WHERE name = ?", (name,))
        return _app(rows[0]) if rows else None

    def list_applications(self) -> list[Application]:
        return [_app(r) for r in
                self._query(f"SELECT {_APP_READ} FROM applications ORDER BY name")]

    # -- models ------------------------------------------------------------
    def add_model(self, model: ModelVersion, *, make_current: bool = True) -> None:
        with self._write() as db:
            if db.execute("SELECT 1 FROM models WHERE name = ? AND version = ?",
                          (model.name, model.version)).fetchone():
                raise model_exists(model.name, model.version)
            seq = self._bump(db)
            db.execute(f"INSERT INTO models ({_MODEL_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (model.name, model.version, int(model.input_type), model.image,
                        json.dumps(list(model.labels)), model.batch_size,
                        model.batching_policy, seq))
            if make_current:
                db.execute("INSERT OR REPLACE INTO current_versions (name, version) "
                           "VALUES (?, ?)", (model.name, model.version))
        self._changed()

    def delete_model_version(self, name: str, version: str) -> None:
        with self._write() as db:
            if db.execute("DELETE FROM models WHERE name = ? AND version = ?",
                          (name, version)).rowcount == 0:
                raise version_missing(name, version)
            db.execute("DELETE FROM current_versions WHERE name = ? AND version = ?",
                       (name, version))
            self._bump(db)
        self._changed()

    def get_model(self, name: str, version: str) -> ModelVersion | None:
        rows = self._query(f"SELECT {_MODEL_COLS} FROM models WHERE name = ? AND version = ?",
                           (name, version))
        return _model(rows[0]) if rows else None

    def list_models(self) -> list[ModelVersion]:
        return [_model(r) for r in
                self._query(f"SELECT {_MODEL_COLS} FROM models ORDER BY name, seq")]

    def get_current_version(self, name: str) -> str | None:
        rows = self._query("SELECT version FROM current_versions WHERE name = ?", (name,))
        return rows[0][0] if rows else None

    def set_current_version(self, name: str, version: str) -> None:
        with self._write() as db:
            if not db.execute("SELECT 1 FROM models WHERE name = ? AND version = ?",
                              (name, version)).fetchone():
                raise version_missing(name, version)
            db.execute("INSERT OR REPLACE INTO current_versions (name, version) VALUES (?, ?)",
                       (name, version))
            self._bump(db)
        self._changed()

    # -- links -------------------------------------------------------------
    def set_link(self, app_name: str, model_name: str | None) -> None:
        with self._write() as db:
            if not db.execute("SELECT 1 FROM applications WHERE name = ?",
                              (app_name,)).fetchone():
                raise app_missing(app_name)
            if model_name is not None and not self._has_model(db, model_name):
                raise model_missing(model_name)
            db.execute("UPDATE applications SET linked_model = ? WHERE name = ?",
                       (model_name, app_name))
            self._bump(db)
        self._changed()

    # -- selection ---------------------------------------------------------
    def set_selection(self, app: Application) -> None:
        with self._write() as db:
            if not db.execute("SELECT 1 FROM applications WHERE name = ?",
                              (app.name,)).fetchone():
                raise app_missing(app.name)
            check_selection_models(app, lambda name: self._has_model(db, name))
            db.execute("UPDATE applications SET linked_model = ? WHERE name = ?",
                       (app.linked_model, app.name))
            db.execute("INSERT OR REPLACE INTO app_selections (name, record) VALUES (?, ?)",
                       (app.name, json.dumps(selection_record(app))))
            self._bump(db)
        self._changed()

    # -- change tracking ---------------------------------------------------
    def advance_revision(self, at_least: int) -> int:
        with self._write() as db:
            current = int(db.execute("SELECT value FROM meta WHERE key = 'revision'")
                          .fetchone()[0])
            if current >= at_least:
                return current
            db.execute("UPDATE meta SET value = ? WHERE key = 'revision'", (at_least,))
        self._changed()
        return at_least

    def revision(self) -> int:
        rows = self._query("SELECT value FROM meta WHERE key = 'revision'")
        return int(rows[0][0]) if rows else 0

    def snapshot(self) -> Snapshot:
        with self._read() as db:
            rev = int(db.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()[0])
            apps = [_app(r) for r in db.execute(f"SELECT {_APP_READ} FROM applications")]
            models = [_model(r) for r in
                      db.execute(f"SELECT {_MODEL_COLS} FROM models ORDER BY name, seq")]
            current = dict(db.execute("SELECT name, version FROM current_versions").fetchall())
        return Snapshot(revision=rev, applications={a.name: a for a in apps},
                        models={(m.name, m.version): m for m in models},
                        current_versions=current)

    def ping(self) -> None:
        self.revision()

    def close(self) -> None:
        """Stop watching and close every thread's connection."""
        super().close()
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for _thread, conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()


def _app(row: tuple[Any, ...]) -> Application:
    return app_from_record(dict(zip([*_APP_COLS.split(", "), "selection"], row, strict=True)))


def _model(row: tuple[Any, ...]) -> ModelVersion:
    d = dict(zip(_MODEL_COLS.split(", "), row, strict=True))
    d["labels"] = json.loads(d["labels"])
    return model_from_record(d)


@hookimpl
def register_state_stores(register: Callable[[str, Callable[..., Any]], None]) -> None:
    register("sqlite", SqliteStateStore)
