"""The admin service's rules under concurrency, and its guards.

Two service objects, each with its own store object on one store URL, stand
for two management processes.  A store whose reads are slowed down widens
the gap between a rule's check and its write, so a missing guard shows.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clipper_core.admin.guards import guard_for
from clipper_core.admin.service import AdminService
from clipper_core.admin.wire import AddApp, AddModel, AddModelLinks
from clipper_core.errors import ClipperException, ConflictError
from clipper_core.plugins import open_store


class SlowReads:
    """A store whose application reads take 50 ms (as over a slow network)."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def get_application(self, name: str) -> Any:
        app = self._store.get_application(name)
        time.sleep(0.05)
        return app

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def race_links(url: str, *, guarded: bool = True) -> list[str]:
    """Two services link one app to different models at once; the winners."""
    stores = [open_store(url), open_store(url)]
    try:
        services = [AdminService(SlowReads(s), guard=guard_for(s) if guarded else None)
                    for s in stores]
        if not guarded:
            import contextlib

            for service in services:
                service.guard = contextlib.nullcontext
        services[0].add_app(AddApp(name="app", input_type="doubles", default_output="-1",
                                   latency_slo_micros=1000))
        for name in ("m1", "m2"):
            services[0].add_model(AddModel(model_name=name, model_version="1",
                                           input_type="doubles"))
        winners: list[str] = []
        barrier = threading.Barrier(2)

        def link(service: AdminService, model: str) -> None:
            barrier.wait()
            try:
                service.add_model_links(AddModelLinks(app_name="app", model_names=(model,)))
                winners.append(model)
            except ConflictError:
                pass
        threads = [threading.Thread(target=link, args=(s, m))
                   for s, m in zip(services, ("m1", "m2"), strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        linked = stores[0].get_application("app").linked_model
        assert linked in winners
        return winners
    finally:
        for s in stores:
            s.close()


def test_without_a_guard_the_race_is_real(tmp_path: Path) -> None:
    """The harness can fail: with no guard both links 'succeed'."""
    assert sorted(race_links(f"sqlite:///{tmp_path / 'state.db'}", guarded=False)) == [
        "m1", "m2"]


def test_sqlite_guard_holds_across_store_objects(tmp_path: Path) -> None:
    for round_ in range(3):
        assert len(race_links(f"sqlite:///{tmp_path / f'state{round_}.db'}")) == 1
    assert (tmp_path / "state0.db.admin-lock").exists()


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    from clipper_core.testing.redis_server import RedisServer

    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.mark.redis
def test_redis_guard_holds_across_store_objects(redis_url: str) -> None:
    assert len(race_links(redis_url)) == 1
    import redis

    client = redis.Redis.from_url(redis_url)
    assert client.exists("clipper:admin-lock") == 0  # released


@pytest.mark.redis
def test_redis_guard_gives_up_on_a_held_lock(redis_url: str, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    import redis

    from clipper_core.admin import guards

    monkeypatch.setattr(guards, "WAIT_S", 0.2)
    store = open_store(redis_url)
    try:
        redis.Redis.from_url(redis_url).set("clipper:admin-lock", "someone-else", px=5000)
        with pytest.raises(ClipperException, match="Timed out waiting for the admin lock"):
            with guard_for(store)():
                pass
    finally:
        store.close()


def test_a_store_can_offer_its_own_lock() -> None:
    import contextlib

    taken: list[str] = []

    class OwnLock:
        url = "custom://x"

        @contextlib.contextmanager
        def admin_lock(self) -> Iterator[None]:
            taken.append("lock")
            yield

    with guard_for(OwnLock())():  # type: ignore[arg-type]
        pass
    assert taken == ["lock"]
