"""The frontend's configuration sync: a store that comes back with an older
configuration (restarted without its data) does not wipe the one served."""

from __future__ import annotations

import asyncio
from typing import Any

from clipper_core.admin.backup import export_configuration, import_configuration
from clipper_core.models import Application, ModelVersion, Snapshot
from clipper_core.plugins import open_store
from clipper_frontends.query.sync import ConfigSync


class _Store:
    """Just what ConfigSync reads: a snapshot and its revision."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def snapshot(self) -> Snapshot:
        return self.snap

    def revision(self) -> int:
        return self.snap.revision

    def watch(self, callback: Any) -> Any:
        return lambda: None


def _snapshot(revision: int, apps: int) -> Snapshot:
    return Snapshot(revision=revision, applications={
        f"a{i}": Application.create(f"a{i}", "doubles", "0", 100000) for i in range(apps)},
        models={}, current_versions={})


def test_an_older_configuration_is_refused_and_readiness_says_why() -> None:
    applied: list[Snapshot] = []

    async def run() -> None:
        store = _Store(_snapshot(7, 3))
        sync = ConfigSync(store, applied.append)  # type: ignore[arg-type]
        await sync.start()
        assert sync.readiness()[0]
        store.snap = _snapshot(0, 0)          # Redis came back empty
        await sync.reload()
        ready, body = sync.readiness()
        assert not ready and "went back from configuration revision 7 to 0" in body["error"]
        assert sync.snapshot is not None and len(sync.snapshot.applications) == 3
        store.snap = _snapshot(9, 4)          # restored (at a newer revision)
        await sync.reload()
        assert sync.readiness()[0] and len(sync.snapshot.applications) == 4
        sync.stop()

    asyncio.run(run())
    assert [s.revision for s in applied] == [7, 9]


def test_a_restored_backup_is_taken_as_newer() -> None:
    """Redis restarted empty, then restored from the management frontend's
    backup: the frontend serves the restored configuration again."""
    lost = open_store("memory://")
    for i in range(3):
        lost.add_model(ModelVersion.create(f"m{i}", "1", "doubles"))
        lost.add_application(Application.create(f"a{i}", "doubles", "0", 100000))
        lost.set_link(f"a{i}", f"m{i}")
    for _ in range(20):                      # a history: many more writes than a restore
        lost.add_application(Application.create("tmp", "doubles", "0", 100000))
        lost.delete_application("tmp")
    backup = export_configuration(lost)
    fresh = open_store("memory://")

    async def run() -> None:
        sync = ConfigSync(lost, lambda snap: None)
        await sync.start()
        sync.store = fresh                   # the store came back empty
        await sync.reload()
        assert not sync.readiness()[0]
        import_configuration(fresh, backup)  # fewer writes than the lost store had
        await sync.reload()
        assert sync.readiness()[0]
        assert sync.snapshot is not None and sorted(sync.snapshot.applications) == [
            "a0", "a1", "a2"]
        sync.stop()

    try:
        asyncio.run(run())
    finally:
        lost.close()
        fresh.close()
