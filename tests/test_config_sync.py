"""The frontend's configuration sync: a store that comes back with an older
configuration (restarted without its data) does not wipe the one served."""

from __future__ import annotations

import asyncio
from typing import Any

from clipper_core.models import Application, Snapshot
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
