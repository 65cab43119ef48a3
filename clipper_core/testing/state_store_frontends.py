"""The query frontend records of the state store contract.

Each query frontend writes a :class:`~clipper_core.models.FrontendRecord`
(the configuration revision it serves, and when it last said so); the admin
service reads them to wait until every live frontend serves a write
(read-your-writes).  :class:`StateStoreFrontendsContract` is a mixin of
:class:`clipper_core.testing.state_store.StateStoreContract`, which provides
its ``store`` and ``second_store`` fixtures; subclass that one, not this.
"""

from __future__ import annotations

from ..interfaces import StateStore
from ..models import FrontendRecord
from .values import make_model


def _record(frontend_id: str, revision: int, last_seen: float = 100.5) -> FrontendRecord:
    return FrontendRecord(frontend_id=frontend_id, revision=revision, last_seen=last_seen)


class StateStoreFrontendsContract:
    """Frontend records: put, replace, delete, list, shared, no revision bump."""

    def test_new_store_has_no_frontends(self, store: StateStore) -> None:
        assert store.list_frontends() == []

    def test_frontend_records_round_trip_in_id_order(self, store: StateStore) -> None:
        b, a = _record("fe-b", 7, 1700000000.25), _record("fe-a", 3)
        store.put_frontend(b)
        store.put_frontend(a)
        assert store.list_frontends() == [a, b]

    def test_put_frontend_replaces_its_record(self, store: StateStore) -> None:
        store.put_frontend(_record("fe", 1, 10.0))
        store.put_frontend(_record("fe", 5, 20.0))
        assert store.list_frontends() == [_record("fe", 5, 20.0)]

    def test_delete_frontend(self, store: StateStore) -> None:
        store.put_frontend(_record("fe-a", 1))
        store.put_frontend(_record("fe-b", 1))
        store.delete_frontend("fe-a")
        assert store.list_frontends() == [_record("fe-b", 1)]
        store.delete_frontend("fe-a")  # absent: no error
        store.delete_frontend("never")
        assert store.list_frontends() == [_record("fe-b", 1)]

    def test_frontend_records_do_not_bump_revision(self, store: StateStore) -> None:
        store.add_model(make_model("m"))
        rev = store.revision()
        store.put_frontend(_record("fe", rev))
        store.list_frontends()
        store.delete_frontend("fe")
        assert store.revision() == rev
        assert store.snapshot().revision == rev

    def test_frontend_records_are_not_configuration(self, store: StateStore) -> None:
        store.put_frontend(_record("fe", 0))
        snap = store.snapshot()
        assert (snap.applications, snap.models, snap.current_versions) == ({}, {}, {})
        assert store.list_replicas() == []

    def test_second_store_sees_frontend_records(self, store: StateStore,
                                                second_store: StateStore) -> None:
        second_store.put_frontend(_record("fe-other", 4, 55.5))
        assert store.list_frontends() == [_record("fe-other", 4, 55.5)]
        store.delete_frontend("fe-other")
        assert second_store.list_frontends() == []
