"""What the SQLite store keeps beside the configuration: replica records,
query frontends' served revisions and selection-policy states.  None of it
moves the configuration revision, so no watcher wakes up for it."""

from __future__ import annotations

import json
import sqlite3
from contextlib import AbstractContextManager
from typing import Any

from ..models import FrontendRecord, Replica
from .base import StateUpdate, replica_from_record

_REPLICA_COLS = ("model_name, model_version, replica_id, frontend, input_type, connected, "
                 "last_seen")


class SqliteRecords:
    """Mixin of :class:`~clipper_core.stores.sqlite.SqliteStateStore`."""

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:  # pragma: no cover
        raise NotImplementedError

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError  # pragma: no cover

    # -- selection-policy states ---------------------------------------------
    def policy_states(self, app_name: str) -> dict[str, dict[str, Any]]:
        rows = self._query("SELECT key, state FROM policy_states WHERE app = ?", (app_name,))
        return {key: json.loads(state) for key, state in rows}

    def update_policy_state(self, app_name: str, key: str,
                            update: StateUpdate) -> dict[str, Any]:
        # Not a configuration change: no revision bump, no watcher wakes up.
        with self._write() as db:
            row = db.execute("SELECT state FROM policy_states WHERE app = ? AND key = ?",
                             (app_name, key)).fetchone()
            new = update(json.loads(row[0]) if row else None)
            db.execute("INSERT OR REPLACE INTO policy_states (app, key, state) VALUES (?, ?, ?)",
                       (app_name, key, json.dumps(new)))
        return new

    # -- replicas ----------------------------------------------------------
    def put_replica(self, replica: Replica) -> None:
        with self._write() as db:
            db.execute(f"INSERT OR REPLACE INTO replicas ({_REPLICA_COLS}) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (replica.model_name, replica.model_version, replica.replica_id,
                        replica.frontend, int(replica.input_type), int(replica.connected),
                        replica.last_seen))

    def delete_replica(self, model_name: str, model_version: str, replica_id: str,
                       frontend: str = "") -> None:
        with self._write() as db:
            db.execute("DELETE FROM replicas WHERE model_name = ? AND model_version = ? "
                       "AND replica_id = ? AND frontend = ?",
                       (model_name, model_version, replica_id, frontend))

    def list_replicas(self) -> list[Replica]:
        rows = self._query(f"SELECT {_REPLICA_COLS} FROM replicas "
                           "ORDER BY model_name, model_version, replica_id, frontend")
        return [replica_from_record(dict(zip(_REPLICA_COLS.split(", "), r, strict=True)))
                for r in rows]

    # -- query frontends ----------------------------------------------------
    def put_frontend(self, record: FrontendRecord) -> None:
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO frontends (frontend_id, revision, last_seen) "
                       "VALUES (?, ?, ?)",
                       (record.frontend_id, record.revision, record.last_seen))

    def delete_frontend(self, frontend_id: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM frontends WHERE frontend_id = ?", (frontend_id,))

    def list_frontends(self) -> list[FrontendRecord]:
        rows = self._query("SELECT frontend_id, revision, last_seen FROM frontends "
                           "ORDER BY frontend_id")
        return [FrontendRecord(frontend_id=f, revision=int(r), last_seen=float(t))
                for f, r, t in rows]

