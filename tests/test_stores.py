"""The built-in state stores: the shared contract plus what each backend adds
(SQLite across processes and restarts; Redis across restarts, outages and
prefixes; copying between stores)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, free_port, wait_until

from clipper_core.errors import ConflictError, StoreUnavailableError, ValidationError
from clipper_core.plugins import open_store
from clipper_core.stores.memory import MemoryStateStore
from clipper_core.stores.migrate import copy_state
from clipper_core.stores.redis import RedisStateStore, parse_redis_url
from clipper_core.stores.sqlite import SqliteStateStore
from clipper_core.testing.redis_server import RedisServer
from clipper_core.testing.state_store import StateStoreContract
from clipper_core.testing.values import Recorder, make_app, make_model, make_replica

# ---------------------------------------------------------------------------
# memory
# ---------------------------------------------------------------------------


class TestMemoryStore(StateStoreContract):
    @pytest.fixture
    def store_url(self) -> str:
        return f"memory://test-{uuid.uuid4().hex}"


def test_plain_memory_url_is_private() -> None:
    a, b = open_store("memory://"), open_store("memory://")
    assert isinstance(a, MemoryStateStore)
    a.add_application(make_app("a"))
    assert b.list_applications() == []


# ---------------------------------------------------------------------------
# SQLite
# ---------------------------------------------------------------------------


class TestSqliteStore(StateStoreContract):
    @pytest.fixture
    def store_url(self, sqlite_url: str) -> str:
        return sqlite_url


def test_sqlite_state_survives_reopening(sqlite_url: str) -> None:
    s = open_store(sqlite_url)
    assert isinstance(s, SqliteStateStore)
    s.add_model(make_model("m", "1"))
    s.add_model(make_model("m", "2"), make_current=False)
    s.add_application(make_app("a", linked_model="m"))
    s.put_replica(make_replica())
    before, rev = s.snapshot(), s.revision()
    s.close()
    again = open_store(sqlite_url)
    try:
        assert again.snapshot() == before
        assert again.revision() == rev
        assert again.list_replicas() == [make_replica()]
    finally:
        again.close()


def test_sqlite_uses_wal_and_creates_directories(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "state.db"
    s = open_store(f"sqlite:///{path}")
    s.add_application(make_app("a"))
    s.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_bad_urls(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="names no file"):
        open_store("sqlite://")
    with pytest.raises(ValidationError, match="timeout"):
        open_store(f"sqlite:///{tmp_path}/s.db?timeout=soon")
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreUnavailableError, match="SQLite"):
        open_store(f"sqlite:///{blocker}/state.db")


def test_sqlite_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not an SQLite database file at all" * 100)
    with pytest.raises(StoreUnavailableError, match="not a database"):
        open_store(f"sqlite:///{path}")


def test_sqlite_closed_store_raises(sqlite_url: str) -> None:
    s = open_store(sqlite_url)
    s.close()
    with pytest.raises(StoreUnavailableError, match="closed"):
        s.list_models()


def _run_writer(sqlite_url: str, code: str) -> subprocess.Popen[bytes]:
    script = textwrap.dedent("""
        import sys
        from clipper_core.plugins import open_store
        from clipper_core.testing.values import make_app, make_model, make_replica
        store = open_store(sys.argv[1])
    """) + textwrap.dedent(code)
    return subprocess.Popen([sys.executable, "-c", script, sqlite_url], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_sqlite_watch_sees_another_process(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    rec = Recorder()
    stop = store.watch(rec)
    try:
        proc = _run_writer(sqlite_url, """
            store.add_model(make_model("m", "1"))
            print(store.revision(), flush=True)
        """)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()
        written_at = time.monotonic()
        rev = int(out.decode().strip())
        assert rec.wait_for(rev, timeout=1.0), rec.revisions
        assert time.monotonic() - written_at < 1.0
        assert store.get_current_version("m") == "1"
    finally:
        stop()
        store.close()


def test_sqlite_several_processes_write_at_once(sqlite_url: str) -> None:
    """Concurrent writers in separate processes: no lost write, no 'locked'."""
    store = open_store(sqlite_url)
    try:
        procs = [_run_writer(sqlite_url, f"""
            for i in range(15):
                store.add_model(make_model("m{w}", str(i)))
                store.put_replica(make_replica("m{w}", str(i)))
        """) for w in range(3)]
        # and this process writes at the same time
        for i in range(15):
            store.add_application(make_app(f"a{i}"))
        for p in procs:
            _, err = p.communicate(timeout=60)
            assert p.returncode == 0, err.decode()
        assert len(store.list_models()) == 45
        assert len(store.list_replicas()) == 45
        assert len(store.list_applications()) == 15
        assert store.revision() == 60
        assert store.snapshot().current_versions == {f"m{w}": "14" for w in range(3)}
    finally:
        store.close()


# ---------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the contract tests (each test gets its own prefix)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, which it may stop and restart."""
    server = RedisServer(tmp_path / "redis", free_port())
    server.start()
    yield server
    server.stop()


def _prefixed(server: RedisServer, prefix: str | None = None) -> str:
    return f"{server.url}?prefix={prefix or 't-' + uuid.uuid4().hex[:12]}"


@pytest.mark.redis
class TestRedisStore(StateStoreContract):
    @pytest.fixture
    def store_url(self, redis_server: RedisServer) -> str:
        return _prefixed(redis_server)


def test_redis_url_options() -> None:
    opts = parse_redis_url("rediss://user:p%40ss@redis.example:6380/3?prefix=c1"
                           "&ssl_cert_reqs=none&timeout=0.5")
    assert opts["host"] == "redis.example" and opts["port"] == 6380 and opts["db"] == 3
    assert opts["username"] == "user" and opts["password"] == "p@ss"
    assert opts["ssl"] is True and opts["ssl_cert_reqs"] == "none"
    assert opts["prefix"] == "c1" and opts["socket_timeout"] == 0.5
    plain = parse_redis_url("redis://localhost")
    assert (plain["port"], plain["db"], plain["prefix"], plain.get("ssl")) == (
        6379, 0, "clipper", None)
    with pytest.raises(ValidationError, match="colour") as info:
        parse_redis_url("redis://:secret@localhost/0?colour=blue")
    assert "secret" not in str(info.value)
    with pytest.raises(ValidationError, match="ssl_cert_reqs"):
        parse_redis_url("rediss://localhost/0?ssl_cert_reqs=maybe")


def test_redis_schemes_are_registered() -> None:
    from clipper_core.plugins import backends

    found = backends("state_stores")
    assert {"memory", "sqlite", "redis", "rediss"} <= set(found)
    assert found["rediss"].factory is RedisStateStore


@pytest.mark.redis
def test_redis_prefixes_do_not_see_each_other(redis_server: RedisServer) -> None:
    a = open_store(_prefixed(redis_server, "cluster-a"))
    b = open_store(_prefixed(redis_server, "cluster-b"))
    rec = Recorder()
    stop = b.watch(rec)
    try:
        a.add_model(make_model("m"))
        a.add_application(make_app("a", linked_model="m"))
        a.put_replica(make_replica())
        time.sleep(0.5)
        assert rec.revisions == []
        assert b.list_applications() == [] and b.list_models() == []
        assert b.list_replicas() == [] and b.revision() == 0
        b.add_application(make_app("a"))  # no conflict with cluster-a's app
        assert a.get_application("a").linked_model == "m"  # type: ignore[union-attr]
    finally:
        stop()
        a.close()
        b.close()


@pytest.mark.redis
def test_redis_databases_are_separate(redis_server: RedisServer) -> None:
    base = f"redis://127.0.0.1:{redis_server.port}"
    db1, db2 = open_store(f"{base}/1?prefix=same"), open_store(f"{base}/2?prefix=same")
    rec = Recorder()
    stop = db2.watch(rec)
    try:
        db1.add_application(make_app("a"))
        time.sleep(0.4)
        assert rec.revisions == [] and db2.list_applications() == []
        db2.add_application(make_app("a"))
        assert rec.wait_for(1)
    finally:
        stop()
        db1.close()
        db2.close()


@pytest.mark.redis
def test_redis_restart_loses_nothing(own_redis: RedisServer) -> None:
    store = open_store(_prefixed(own_redis, "c1"))
    try:
        store.add_model(make_model("m", "1"))
        store.add_model(make_model("m", "2"), make_current=False)
        store.add_application(make_app("a", linked_model="m"))
        store.put_replica(make_replica())
        before, rev = store.snapshot(), store.revision()
        own_redis.restart()
        assert wait_until(lambda: store.snapshot(), timeout=5, what="redis back") == before
        assert store.revision() == rev
        assert store.list_replicas() == [make_replica()]
        # scripts are gone from the restarted server; writes must still work
        store.set_current_version("m", "2")
        assert store.get_current_version("m") == "2"
    finally:
        store.close()


@pytest.mark.redis
def test_redis_down_raises_and_recovers(own_redis: RedisServer) -> None:
    store = open_store(_prefixed(own_redis, "c1"))
    other = open_store(_prefixed(own_redis, "c1"))
    rec = Recorder()
    stop = store.watch(rec)
    try:
        store.add_model(make_model("m", "1"))
        before = store.snapshot()
        own_redis.stop()
        started = time.monotonic()
        calls = [
            lambda: store.ping(), lambda: store.revision(), lambda: store.snapshot(),
            lambda: store.list_applications(), lambda: store.get_application("a"),
            lambda: store.list_models(), lambda: store.get_model("m", "1"),
            lambda: store.get_current_version("m"), lambda: store.list_replicas(),
            lambda: store.add_application(make_app("a")),
            lambda: store.delete_application("a"),
            lambda: store.add_model(make_model("m", "2")),
            lambda: store.delete_model_version("m", "1"),
            lambda: store.set_current_version("m", "1"),
            lambda: store.set_link("a", "m"),
            lambda: store.put_replica(make_replica()),
            lambda: store.delete_replica("m", "1", "0"),
        ]
        for call in calls:
            with pytest.raises(StoreUnavailableError, match="Redis state store .* unavailable"):
                call()
        assert time.monotonic() - started < 10, "calls must fail fast while Redis is down"
        time.sleep(0.3)  # the watcher keeps running while Redis is down
        own_redis.start()
        # nothing was written while down
        assert wait_until(lambda: store.snapshot(), timeout=5, what="redis back") == before
        assert store.list_replicas() == []
        store.ping()
        # watch() resumed: a change made after the restart is reported
        other.add_application(make_app("a", linked_model="m"))
        assert rec.wait_for(other.revision(), timeout=2.0), rec.revisions
    finally:
        stop()
        store.close()
        other.close()


@pytest.mark.redis
def test_redis_unreachable_at_open(tmp_path: Path) -> None:
    """A store can be opened (and watched) before its Redis is up."""
    server = RedisServer(tmp_path / "redis", free_port())
    store = open_store(_prefixed(server, "c1"))
    rec = Recorder()
    stop = store.watch(rec)
    try:
        with pytest.raises(StoreUnavailableError, match=str(server.port)):
            store.ping()
        server.start()
        writer = open_store(_prefixed(server, "c1"))
        try:
            writer.add_application(make_app("a"))
            assert rec.wait_for(1, timeout=3.0), rec.revisions
        finally:
            writer.close()
    finally:
        stop()
        store.close()
        server.stop()


# ---------------------------------------------------------------------------
# copying between stores
# ---------------------------------------------------------------------------


def _fill(url: str) -> None:
    s = open_store(url)
    try:
        s.add_model(make_model("m", "1", labels=["x"]))
        s.add_model(make_model("m", "2", batch_size=4), make_current=False)
        s.add_model(make_model("n", "1"), make_current=False)
        s.add_application(make_app("a", linked_model="m"))
        s.add_application(make_app("b"))
        s.put_replica(make_replica())
    finally:
        s.close()


@pytest.mark.redis
def test_copy_state_sqlite_to_redis(sqlite_url: str, redis_server: RedisServer) -> None:
    _fill(sqlite_url)
    dst_url = _prefixed(redis_server)
    summary = copy_state(sqlite_url, dst_url)
    assert (summary.applications, summary.models, summary.current_versions, summary.links) == (
        2, 3, 1, 1)
    src, dst = open_store(sqlite_url), open_store(dst_url)
    try:
        s, d = src.snapshot(), dst.snapshot()
        assert (d.applications, d.models, d.current_versions) == (
            s.applications, s.models, s.current_versions)
        assert dst.list_models() == src.list_models()
        assert dst.list_replicas() == []
        # copying again would duplicate: refused before anything is written
        rev = dst.revision()
        with pytest.raises(ConflictError, match="application a"):
            copy_state(sqlite_url, dst_url)
        assert dst.revision() == rev
    finally:
        src.close()
        dst.close()


def test_copy_state_memory_to_sqlite(sqlite_url: str) -> None:
    src_url = f"memory://copy-{uuid.uuid4().hex}"
    keep = open_store(src_url)  # keeps the named memory store alive
    _fill(src_url)
    copy_state(src_url, sqlite_url)
    dst = open_store(sqlite_url)
    try:
        assert dst.snapshot().applications == keep.snapshot().applications
        assert dst.snapshot().models == keep.snapshot().models
    finally:
        dst.close()
        keep.close()


@pytest.mark.redis
def test_rediss_with_password(tmp_path: Path) -> None:
    """TLS (``rediss://``, CA from the URL) and a password from the URL."""
    server = RedisServer(tmp_path / "redis", free_port(), tls=True, password="s3cret")
    server.start()
    try:
        url = server.url + "&prefix=tls"
        assert url.startswith("rediss://:s3cret@")
        store, other = open_store(url), open_store(url)
        rec = Recorder()
        stop = store.watch(rec)
        try:
            store.ping()
            other.add_model(make_model("m"))
            assert rec.wait_for(other.revision()), rec.revisions
            assert store.get_current_version("m") == "1"
        finally:
            stop()
            store.close()
            other.close()
        wrong = open_store(url.replace("s3cret", "wrong"))
        with pytest.raises(StoreUnavailableError) as info:
            wrong.list_models()
        assert "wrong" not in str(info.value) and "s3cret" not in str(info.value)
        wrong.close()
        plain = open_store(f"redis://:s3cret@127.0.0.1:{server.port}/0?prefix=tls")
        with pytest.raises(StoreUnavailableError):
            plain.ping()
        plain.close()
    finally:
        server.stop()


def test_sqlite_closes_connections_of_finished_threads(sqlite_url: str) -> None:
    import threading

    import psutil

    store = open_store(sqlite_url)
    path = sqlite_url.removeprefix("sqlite://")

    def open_handles() -> int:
        return sum(1 for f in psutil.Process().open_files() if f.path == path)

    try:
        for _ in range(10):
            t = threading.Thread(target=store.list_models)
            t.start()
            t.join()
        store.list_models()
        assert open_handles() <= 2
    finally:
        store.close()
    assert open_handles() == 0
