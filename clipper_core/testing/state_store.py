"""The contract every :class:`~clipper_core.interfaces.StateStore` must meet.

Subclass :class:`StateStoreContract` in a backend's tests and provide a
``store_url`` fixture that returns a URL of a fresh, empty store::

    class TestMyStore(StateStoreContract):
        @pytest.fixture
        def store_url(self, tmp_path):
            return f"mystore://{tmp_path}/state"

``store`` and ``second_store`` (another object on the same URL, standing in
for another process) are opened with :func:`clipper_core.plugins.open_store`;
override them to build stores differently.  The tests of revisions,
snapshots, replicas and watchers are in
:mod:`clipper_core.testing.state_store_changes`, those of the query frontend
records in :mod:`clipper_core.testing.state_store_frontends`; the helpers (``make_app``,
``Recorder``...) in :mod:`clipper_core.testing.values`.
:class:`~clipper_core.testing.redis_server.RedisServer` runs a throw-away
``redis-server`` for backends that need one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..errors import ConflictError, NotFoundError
from ..interfaces import StateStore
from ..plugins import open_store
from .redis_server import RedisServer
from .state_store_changes import StateStoreChangesContract
from .state_store_frontends import StateStoreFrontendsContract
from .values import WATCH_DEADLINE, Recorder, make_app, make_model, make_replica

__all__ = ["WATCH_DEADLINE", "Recorder", "RedisServer", "StateStoreContract", "make_app",
           "make_model", "make_replica"]


class StateStoreContract(StateStoreChangesContract, StateStoreFrontendsContract):
    """Tests every method of the StateStore Protocol; see the module docstring."""

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
