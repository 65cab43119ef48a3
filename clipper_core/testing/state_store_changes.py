"""The change-tracking half of the state store contract: revisions,
snapshots, replicas and ``watch()``.

:class:`StateStoreChangesContract` is a mixin of
:class:`clipper_core.testing.state_store.StateStoreContract`, which provides
its ``store`` and ``second_store`` fixtures; subclass that one, not this.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import attrs

from ..errors import ConflictError
from ..interfaces import StateStore
from ..models import InputType, Snapshot
from ..plugins import open_store
from .values import WATCH_DEADLINE, Recorder, make_app, make_model, make_replica


class StateStoreChangesContract:
    """Revisions, snapshots, replicas and watchers of a StateStore."""

    #: Set False for a backend whose objects never share state (no "other process").
    shares_state: bool = True

    # -- revision and snapshot ---------------------------------------------
    def test_every_config_write_bumps_revision(self, store: StateStore) -> None:
        writes: list[Callable[[], None]] = [
            lambda: store.add_model(make_model("m", "1")),
            lambda: store.add_model(make_model("m", "2"), make_current=False),
            lambda: store.set_current_version("m", "2"),
            lambda: store.add_application(make_app("a")),
            lambda: store.set_link("a", "m"),
            lambda: store.set_link("a", None),
            lambda: store.delete_model_version("m", "1"),
            lambda: store.delete_application("a"),
        ]
        rev = store.revision()
        for write in writes:
            write()
            new = store.revision()
            assert new > rev
            rev = new

    def test_advance_revision_only_raises_it_and_wakes_watchers(
            self, store: StateStore) -> None:
        store.add_model(make_model("m"))
        rev = store.revision()
        assert store.advance_revision(rev) == rev           # not lower: unchanged
        assert store.revision() == rev
        seen = Recorder()
        unwatch = store.watch(seen)
        try:
            assert store.advance_revision(rev + 100) == rev + 100
            assert store.revision() == rev + 100 == store.snapshot().revision
            assert seen.wait_for(rev + 100)
        finally:
            unwatch()
        store.add_application(make_app("a"))                # writes go on from there
        assert store.revision() > rev + 100

    def test_reads_and_replicas_do_not_bump_revision(self, store: StateStore) -> None:
        store.add_model(make_model("m"))
        rev = store.revision()
        store.list_models()
        store.snapshot()
        store.put_replica(make_replica())
        store.put_replica(make_replica(connected=False))
        store.delete_replica("m", "1", "0")
        assert store.revision() == rev

    def test_snapshot_contents(self, store: StateStore) -> None:
        m1, m2, n1 = make_model("m", "1"), make_model("m", "2"), make_model("n", "1")
        store.add_model(m1)
        store.add_model(m2, make_current=False)
        store.add_model(n1)
        store.add_application(make_app("a"))
        store.add_application(make_app("b"))
        store.set_link("a", "m")
        snap = store.snapshot()
        assert isinstance(snap, Snapshot)
        assert snap.revision == store.revision()
        assert snap.models == {("m", "1"): m1, ("m", "2"): m2, ("n", "1"): n1}
        assert snap.current_versions == {"m": "1", "n": "1"}
        assert set(snap.applications) == {"a", "b"}
        assert snap.applications["a"].linked_model == "m"
        assert snap.linked_version(snap.applications["a"]) == m1
        assert snap.linked_version(snap.applications["b"]) is None

    def test_snapshot_is_consistent_under_writes(self, store: StateStore) -> None:
        """Each add_model(make_current) is seen whole: the current version is
        always the newest registered one and the revision matches the count."""
        store.add_model(make_model("m", "0"))
        base_rev, count = store.revision(), 40
        errors: list[BaseException] = []

        def writer() -> None:
            try:
                for i in range(1, count + 1):
                    store.add_model(make_model("m", str(i)))
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)

        thread = threading.Thread(target=writer)
        thread.start()
        seen = 0
        while thread.is_alive() or seen == 0:
            snap = store.snapshot()
            n = len(snap.models) - 1
            assert snap.revision - base_rev == n
            assert snap.current_versions["m"] == str(n)
            assert ("m", snap.current_versions["m"]) in snap.models
            seen += 1
        thread.join()
        assert not errors
        assert store.get_current_version("m") == str(count)

    def test_concurrent_duplicate_adds_one_wins(self, store: StateStore,
                                                 store_url: str) -> None:
        stores = [store] + ([open_store(store_url) for _ in range(3)] if self.shares_state
                            else [store] * 3)
        results: list[str] = []
        lock = threading.Lock()
        barrier = threading.Barrier(len(stores))

        def add(s: StateStore) -> None:
            barrier.wait()
            try:
                s.add_application(make_app("race"))
                outcome = "ok"
            except ConflictError:
                outcome = "conflict"
            with lock:
                results.append(outcome)

        threads = [threading.Thread(target=add, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if self.shares_state:
            for s in stores[1:]:
                s.close()
        assert sorted(results) == ["conflict"] * (len(stores) - 1) + ["ok"]

    # -- replicas ------------------------------------------------------------
    def test_replicas(self, store: StateStore) -> None:
        r0 = make_replica("m", "1", "0", last_seen=12.5)
        r1 = make_replica("m", "1", "1", frontend="fe-a", input_type=InputType.STRINGS)
        r1b = make_replica("m", "1", "1", frontend="fe-b")
        store.put_replica(r0)
        store.put_replica(r1)
        store.put_replica(r1b)
        assert sorted(store.list_replicas(), key=repr) == sorted([r0, r1, r1b], key=repr)
        # the same key replaces
        r0_down = attrs.evolve(r0, connected=False, last_seen=99.0)
        store.put_replica(r0_down)
        assert sorted(store.list_replicas(), key=repr) == sorted([r0_down, r1, r1b], key=repr)
        store.delete_replica("m", "1", "1", "fe-a")
        assert sorted(store.list_replicas(), key=repr) == sorted([r0_down, r1b], key=repr)
        store.delete_replica("m", "1", "0")
        store.delete_replica("m", "1", "0")  # absent: no error
        assert store.list_replicas() == [r1b]

    # -- watch ---------------------------------------------------------------
    def test_watch_reports_own_writes(self, store: StateStore) -> None:
        rec = Recorder()
        stop = store.watch(rec)
        try:
            store.add_model(make_model("m"))
            assert rec.wait_for(store.revision()), rec.revisions
            store.add_application(make_app("a"))
            assert rec.wait_for(store.revision()), rec.revisions
        finally:
            stop()

    def test_watch_reports_another_process(self, store: StateStore,
                                           second_store: StateStore) -> None:
        rec = Recorder()
        stop = store.watch(rec)
        try:
            time.sleep(0.05)
            second_store.add_model(make_model("m"))
            started = time.monotonic()
            assert rec.wait_for(second_store.revision()), rec.revisions
            assert time.monotonic() - started < WATCH_DEADLINE
            assert store.get_current_version("m") == "1"
        finally:
            stop()

    def test_second_store_sees_writes(self, store: StateStore,
                                      second_store: StateStore) -> None:
        store.add_model(make_model("m"))
        store.add_application(make_app("a", linked_model="m"))
        assert second_store.snapshot() == store.snapshot()
        second_store.put_replica(make_replica())
        assert store.list_replicas() == [make_replica()]

    def test_unsubscribe_stops_callbacks(self, store: StateStore) -> None:
        kept, dropped = Recorder(), Recorder()
        stop_kept = store.watch(kept)
        stop_dropped = store.watch(dropped)
        stop_dropped()
        try:
            store.add_model(make_model("m"))
            assert kept.wait_for(store.revision())
            time.sleep(0.3)
            assert dropped.revisions == []
        finally:
            stop_kept()

    def test_failing_callback_does_not_stop_others(self, store: StateStore) -> None:
        def bad(revision: int) -> None:
            raise RuntimeError("callback failed on purpose")

        rec = Recorder()
        stops = [store.watch(bad), store.watch(rec)]
        try:
            store.add_model(make_model("m", "1"))
            assert rec.wait_for(store.revision())
            store.add_model(make_model("m", "2"))
            assert rec.wait_for(store.revision())
        finally:
            for stop in stops:
                stop()

    def test_no_callback_without_change(self, store: StateStore) -> None:
        store.add_model(make_model("m"))
        rec = Recorder()
        stop = store.watch(rec)
        try:
            store.put_replica(make_replica())
            time.sleep(0.5)
            assert rec.revisions == []
        finally:
            stop()
