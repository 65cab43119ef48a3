"""The contract every :class:`~clipper_core.interfaces.StateStore` must meet.

Subclass :class:`StateStoreContract` in a backend's tests and provide a
``store_url`` fixture that returns a URL of a fresh, empty store::

    class TestMyStore(StateStoreContract):
        @pytest.fixture
        def store_url(self, tmp_path):
            return f"mystore://{tmp_path}/state"

``store`` and ``second_store`` (another object on the same URL, standing in
for another process) are opened with :func:`clipper_core.plugins.open_store`;
override them to build stores differently.  :class:`RedisServer` runs a
throw-away ``redis-server`` for backends that need one.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from ..errors import ConflictError, NotFoundError
from ..interfaces import StateStore
from ..models import Application, InputType, ModelVersion, Replica, Snapshot
from ..plugins import open_store

#: How long a watcher may take to report a change (the Protocol says 1 s).
WATCH_DEADLINE = 1.0


def make_app(name: str = "app", *, input_type: str = "doubles", slo: int = 100000,
             linked_model: str | None = None) -> Application:
    app = Application.create(name, input_type, "default", slo)
    return attrs.evolve(app, linked_model=linked_model)


def make_model(name: str = "m", version: str = "1", **kwargs: Any) -> ModelVersion:
    kwargs.setdefault("input_type", "doubles")
    kwargs.setdefault("image", f"registry.local/{name}:{version}")
    return ModelVersion.create(name, version, **kwargs)


def make_replica(model: str = "m", version: str = "1", replica_id: str = "0",
                 frontend: str = "", **kwargs: Any) -> Replica:
    return Replica(model_name=model, model_version=version, replica_id=replica_id,
                   input_type=kwargs.pop("input_type", InputType.DOUBLES), frontend=frontend,
                   **kwargs)


class Recorder:
    """A watch callback that remembers the revisions it was called with."""

    def __init__(self) -> None:
        self.revisions: list[int] = []
        self._cond = threading.Condition()

    def __call__(self, revision: int) -> None:
        with self._cond:
            self.revisions.append(revision)
            self._cond.notify_all()

    def wait_for(self, revision: int, timeout: float = WATCH_DEADLINE) -> bool:
        """True once called with ``revision`` or later, within ``timeout``."""
        with self._cond:
            return self._cond.wait_for(
                lambda: any(r >= revision for r in self.revisions), timeout)


class StateStoreContract:
    """Tests every method of the StateStore Protocol; see the module docstring."""

    #: Set False for a backend whose objects never share state (no "other process").
    shares_state: bool = True

    @pytest.fixture
    def store_url(self) -> str:
        raise NotImplementedError("a StateStoreContract subclass must provide store_url")

    @pytest.fixture
    def store(self, store_url: str) -> Iterator[StateStore]:
        s = open_store(store_url)
        yield s
        s.close()

    @pytest.fixture
    def second_store(self, store_url: str, store: StateStore) -> Iterator[StateStore]:
        if not self.shares_state:
            pytest.skip("this store's objects do not share state")
        s = open_store(store_url)
        yield s
        s.close()

    # -- basics -------------------------------------------------------------
    def test_implements_protocol(self, store: StateStore, store_url: str) -> None:
        assert isinstance(store, StateStore)
        assert store.url == store_url

    def test_new_store_is_empty(self, store: StateStore) -> None:
        assert store.list_applications() == []
        assert store.list_models() == []
        assert store.list_replicas() == []
        snap = store.snapshot()
        assert (snap.applications, snap.models, snap.current_versions) == ({}, {}, {})
        assert snap.revision == store.revision()

    def test_ping(self, store: StateStore) -> None:
        store.ping()  # raises StoreUnavailableError if the store cannot be reached

    # -- applications -------------------------------------------------------
    def test_add_and_get_application(self, store: StateStore) -> None:
        app = make_app("app-1", input_type="strings", slo=2500)
        store.add_application(app)
        assert store.get_application("app-1") == app
        assert store.get_application("nope") is None
        store.add_application(make_app("app-0"))
        assert [a.name for a in store.list_applications()] == ["app-0", "app-1"]

    def test_duplicate_application_conflicts(self, store: StateStore) -> None:
        store.add_application(make_app("dup", slo=1000))
        rev = store.revision()
        with pytest.raises(ConflictError, match="dup"):
            store.add_application(make_app("dup", slo=9999))
        assert store.get_application("dup").latency_slo_micros == 1000  # type: ignore[union-attr]
        assert store.revision() == rev

    def test_delete_application(self, store: StateStore) -> None:
        store.add_model(make_model("m"))
        store.add_application(make_app("a"))
        store.set_link("a", "m")
        store.delete_application("a")
        assert store.get_application("a") is None
        assert store.list_applications() == []
        store.add_application(make_app("a"))  # the link went with the app
        assert store.get_application("a").linked_model is None  # type: ignore[union-attr]

    def test_delete_unknown_application(self, store: StateStore) -> None:
        rev = store.revision()
        with pytest.raises(NotFoundError, match="nope"):
            store.delete_application("nope")
        assert store.revision() == rev

    def test_add_application_with_link(self, store: StateStore) -> None:
        """The link is stored as given (checking it is the caller's job), so a
        copy of a store keeps links to models whose versions were deleted."""
        store.add_model(make_model("m"))
        store.add_application(make_app("a", linked_model="m"))
        store.add_application(make_app("b", linked_model="gone"))
        assert store.get_application("a").linked_model == "m"  # type: ignore[union-attr]
        assert store.get_application("b").linked_model == "gone"  # type: ignore[union-attr]

    # -- models -------------------------------------------------------------
    def test_add_model_round_trips_every_field(self, store: StateStore) -> None:
        models = [
            make_model("m", "1", labels=["a", "b"], batch_size=8, input_type="ints"),
            make_model("m", "2", image=None, batching_policy="delayed", input_type="bytes"),
            make_model("n", "v-3", input_type="strings"),
            make_model("o", "1", input_type="floats"),
        ]
        for m in models:
            store.add_model(m)
        for m in models:
            assert store.get_model(m.name, m.version) == m
        assert store.get_model("m", "9") is None
        assert store.get_model("zz", "1") is None
        assert store.list_models() == models

    def test_versions_listed_in_registration_order(self, store: StateStore) -> None:
        for v in ("10", "2", "b", "a"):
            store.add_model(make_model("m", v))
        store.add_model(make_model("a", "1"))
        assert [(m.name, m.version) for m in store.list_models()] == [
            ("a", "1"), ("m", "10"), ("m", "2"), ("m", "b"), ("m", "a")]

    def test_add_model_makes_current(self, store: StateStore) -> None:
        assert store.get_current_version("m") is None
        store.add_model(make_model("m", "1"))
        assert store.get_current_version("m") == "1"
        store.add_model(make_model("m", "2"))
        assert store.get_current_version("m") == "2"
        store.add_model(make_model("m", "3"), make_current=False)
        assert store.get_current_version("m") == "2"
        store.add_model(make_model("n", "1"), make_current=False)
        assert store.get_current_version("n") is None
        assert store.get_model("n", "1") is not None

    def test_duplicate_model_conflicts_and_changes_nothing(self, store: StateStore) -> None:
        store.add_model(make_model("m", "1", batch_size=4))
        store.add_model(make_model("m", "2"))
        before = store.snapshot()
        with pytest.raises(ConflictError, match="m"):
            store.add_model(make_model("m", "1", batch_size=16))
        after = store.snapshot()
        assert after == before
        assert after.current_versions["m"] == "2"
        assert store.get_model("m", "1").batch_size == 4  # type: ignore[union-attr]

    def test_set_current_version(self, store: StateStore) -> None:
        store.add_model(make_model("m", "1"))
        store.add_model(make_model("m", "2"))
        store.set_current_version("m", "1")
        assert store.get_current_version("m") == "1"
        rev = store.revision()
        with pytest.raises(NotFoundError, match="No model with name"):
            store.set_current_version("m", "7")
        with pytest.raises(NotFoundError):
            store.set_current_version("zz", "1")
        assert store.get_current_version("m") == "1"
        assert store.get_current_version("zz") is None
        assert store.revision() == rev

    def test_delete_current_version_clears_current(self, store: StateStore) -> None:
        store.add_model(make_model("m", "1"))
        store.add_model(make_model("m", "2"))
        store.delete_model_version("m", "2")
        assert store.get_model("m", "2") is None
        assert store.get_current_version("m") is None
        assert "m" not in store.snapshot().current_versions
        assert [m.version for m in store.list_models()] == ["1"]

    def test_delete_other_version_keeps_current(self, store: StateStore) -> None:
        store.add_model(make_model("m", "1"))
        store.add_model(make_model("m", "2"))
        store.delete_model_version("m", "1")
        assert store.get_current_version("m") == "2"
        # a deleted version can be registered again
        store.add_model(make_model("m", "1"), make_current=False)
        assert store.get_model("m", "1") is not None

    def test_delete_unknown_version(self, store: StateStore) -> None:
        store.add_model(make_model("m", "1"))
        rev = store.revision()
        with pytest.raises(NotFoundError, match="m"):
            store.delete_model_version("m", "2")
        with pytest.raises(NotFoundError):
            store.delete_model_version("zz", "1")
        assert store.revision() == rev

    def test_deleting_last_version_forgets_model(self, store: StateStore) -> None:
        store.add_model(make_model("m", "1"))
        store.add_application(make_app("a"))
        store.delete_model_version("m", "1")
        with pytest.raises(NotFoundError, match="No model with name"):
            store.set_link("a", "m")

    # -- links ---------------------------------------------------------------
    def test_set_link_and_unlink(self, store: StateStore) -> None:
        store.add_model(make_model("m", "1"))
        store.add_application(make_app("a"))
        store.set_link("a", "m")
        assert store.get_application("a").linked_model == "m"  # type: ignore[union-attr]
        assert store.list_applications()[0].linked_model == "m"
        store.set_link("a", None)
        assert store.get_application("a").linked_model is None  # type: ignore[union-attr]

    def test_link_to_unknown_model(self, store: StateStore) -> None:
        store.add_application(make_app("a"))
        rev = store.revision()
        with pytest.raises(NotFoundError, match="No model with name"):
            store.set_link("a", "ghost")
        assert store.get_application("a").linked_model is None  # type: ignore[union-attr]
        assert store.revision() == rev

    def test_link_unknown_application(self, store: StateStore) -> None:
        store.add_model(make_model("m"))
        with pytest.raises(NotFoundError, match="ghost"):
            store.set_link("ghost", "m")
        with pytest.raises(NotFoundError, match="ghost"):
            store.set_link("ghost", None)

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


class RedisServer:
    """A throw-away ``redis-server`` on a free port, persisting to ``directory``
    with an append-only file, so it can be stopped and restarted with its data.

    ``tls=True`` serves TLS only, with a certificate for 127.0.0.1 signed by a
    throw-away CA (``ca_file``; made with the ``openssl`` command);
    ``password`` sets ``requirepass``.
    """

    def __init__(self, directory: Path, port: int | None = None, *, tls: bool = False,
                 password: str | None = None) -> None:
        self.directory = directory
        self.port = port or _free_port()
        self.tls = tls
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = directory / "redis.log"
        self.ca_file = directory / "ca.pem"

    @property
    def url(self) -> str:
        """``redis://`` (or ``rediss://`` with the CA) URL of database 0."""
        auth = f":{self.password}@" if self.password else ""
        if self.tls:
            return (f"rediss://{auth}127.0.0.1:{self.port}/0"
                    f"?ssl_ca_certs={urllib.parse.quote(str(self.ca_file))}")
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def _make_certificates(self) -> list[str]:
        exe = shutil.which("openssl")
        if exe is None:
            pytest.fail("the openssl command is needed for a TLS redis-server")
        d = self.directory
        if not (d / "server.pem").exists():
            (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
            ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
            for cmd in (
                ["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                 "-subj", "/CN=clipper-test-ca"],
                ["req", *ec, "-keyout", "server.key", "-out", "server.csr",
                 "-subj", "/CN=127.0.0.1"],
                ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext"],
            ):
                subprocess.run([exe, *cmd], cwd=d, check=True, capture_output=True)
        return ["--port", "0", "--tls-port", str(self.port),
                "--tls-cert-file", str(d / "server.pem"), "--tls-key-file", str(d / "server.key"),
                "--tls-ca-cert-file", str(d / "ca.pem"), "--tls-auth-clients", "no"]

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and return when it accepts connections."""
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server is not installed (apt-get install redis-server)")
        self.directory.mkdir(parents=True, exist_ok=True)
        listen = self._make_certificates() if self.tls else ["--port", str(self.port)]
        auth = ["--requirepass", self.password] if self.password else []
        self.proc = subprocess.Popen(
            [exe, *listen, *auth, "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--dir", str(self.directory), "--logfile", str(self.log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: "
                                   f"{self.log.read_text() if self.log.exists() else ''}")
            if self._answers():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not start in {timeout}s")

    def _answers(self) -> bool:
        """True when the server replies to PING (an auth error is a reply too)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw:
                conn: socket.socket = raw
                if self.tls:
                    ctx = ssl.create_default_context(cafile=str(self.ca_file))
                    conn = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
                conn.sendall(b"PING\r\n")
                reply = conn.recv(64)
                return reply.startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def stop(self) -> None:
        """Shut down gracefully (the AOF is flushed), killing it if it hangs."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
