"""What a backend must do: one typed Protocol per extension point.

Hooks (``hookspecs.py``) *discover* backends by name; these Protocols say how
they *behave*.  Each has a contract test suite in :mod:`clipper_core.testing`
that a backend's own tests subclass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from .models import (
    Application,
    FrontendRecord,
    InputType,
    ModelVersion,
    Replica,
    ReplicaStatus,
    Snapshot,
)

Unsubscribe = Callable[[], None]


@runtime_checkable
class StateStore(Protocol):
    """Where a cluster's configuration lives: apps, models, links, replicas.

    Every write is atomic (a reader sees all of it or none of it) and bumps
    :meth:`revision`.  Reads never block on a writer for long.  When the
    store cannot be reached, methods raise
    :class:`~clipper_core.errors.StoreUnavailableError` and write nothing.

    Built from a URL by its plugin factory, e.g. ``sqlite:///path/state.db``,
    ``memory://``, ``redis://host:6379/0?prefix=c1``.
    """

    url: str

    # -- applications ------------------------------------------------------
    def add_application(self, app: Application) -> None:
        """Store ``app``; ConflictError if the name exists."""

    def delete_application(self, name: str) -> None:
        """Remove the app and its link; NotFoundError if absent."""

    def get_application(self, name: str) -> Application | None: ...

    def list_applications(self) -> list[Application]: ...

    # -- models ------------------------------------------------------------
    def add_model(self, model: ModelVersion, *, make_current: bool = True) -> None:
        """Store a version (and make it current, atomically); ConflictError if it exists."""

    def delete_model_version(self, name: str, version: str) -> None:
        """Remove one version; NotFoundError if absent.  If it was current, the
        model has no current version afterwards."""

    def get_model(self, name: str, version: str) -> ModelVersion | None: ...

    def list_models(self) -> list[ModelVersion]: ...

    def get_current_version(self, name: str) -> str | None: ...

    def set_current_version(self, name: str, version: str) -> None:
        """NotFoundError unless the version is registered."""

    # -- links -------------------------------------------------------------
    def set_link(self, app_name: str, model_name: str | None) -> None:
        """Link ``app_name`` to ``model_name`` (None unlinks).  NotFoundError if
        either is unknown; the caller checks input types and prior links."""

    # -- model selection -----------------------------------------------------
    def set_selection(self, app: Application) -> None:
        """Store ``app``'s linked models (``linked_model`` the primary, then
        ``other_models``) and its selection policy, parameters and confidence
        threshold.  NotFoundError if the app or one of the models is unknown.
        A configuration change: the revision moves."""

    def policy_states(self, app_name: str) -> dict[str, dict[str, Any]]:
        """Every stored selection-policy state of the app, by key (``""`` for
        the app's own, ``"uid:<n>"`` per user); {} if none."""

    def update_policy_state(self, app_name: str, key: str,
                            update: Callable[[dict[str, Any] | None], dict[str, Any]]
                            ) -> dict[str, Any]:
        """Replace one policy state with ``update(current or None)``, atomically
        against other writers (``update`` may run more than once); return it.
        Not a configuration change: the revision does not move.  Deleting the
        app deletes its states."""

    # -- replicas (written by query frontends) -----------------------------
    def put_replica(self, replica: Replica) -> None: ...

    def delete_replica(self, model_name: str, model_version: str, replica_id: str,
                       frontend: str = "") -> None: ...

    def list_replicas(self) -> list[Replica]: ...

    # -- query frontends (written by query frontends) ----------------------
    def put_frontend(self, record: FrontendRecord) -> None:
        """Store (or replace) the record of ``record.frontend_id``.  Not a
        configuration change: the revision stays."""

    def delete_frontend(self, frontend_id: str) -> None:
        """Remove the record of ``frontend_id``; nothing happens if there is none."""

    def list_frontends(self) -> list[FrontendRecord]:
        """Every frontend record, live or expired, ordered by frontend id."""

    # -- change tracking ---------------------------------------------------
    def revision(self) -> int:
        """A number that grows with every configuration change (not replicas)."""

    def advance_revision(self, at_least: int) -> int:
        """Raise the revision to ``at_least`` if it is lower (a change watchers
        see) and return it.  A restore from a backup taken at revision R calls
        it with R + 1, so query frontends that served R take the restored
        configuration as newer, not as a store that went back in time."""

    def snapshot(self) -> Snapshot:
        """Apps, models and current versions at one revision."""

    def watch(self, callback: Callable[[int], None]) -> Unsubscribe:
        """Call ``callback(revision)`` (from any thread) within a second of a
        change, until the returned function is called."""

    def ping(self) -> None:
        """Return if the store is reachable, else raise StoreUnavailableError."""

    def close(self) -> None: ...


@runtime_checkable
class ContainerManager(Protocol):
    """Starts and stops a cluster's frontends and model replicas.

    ``ClipperConnection`` drives one of these; the admin API is the same
    whichever manager it is.  Managers find what they started by label (or
    the local equivalent), so a new process calling :meth:`connect` sees the
    same cluster.  Errors are clipper-core errors (ContainerError and
    subclasses), never an SDK's.
    """

    cluster_name: str

    def start_clipper(self, query_frontend_image: str | None, mgmt_frontend_image: str | None,
                      cache_size: int, num_frontend_replicas: int = 1) -> None:
        """Start the state store (if owned), the management frontend and the
        query frontends; return when they answer, else raise ClusterStartError."""

    def connect(self) -> None:
        """Find a running cluster; raise ClipperException if there is none."""

    def get_admin_addr(self) -> str:
        """``host:port`` of the management frontend."""

    def get_query_addr(self) -> str:
        """``host:port`` where clients send queries."""

    def get_metric_addr(self) -> str: ...

    def get_admin_token(self) -> str | None:
        """Bearer token protecting ``/admin/*``, or None."""

    def build_model(self, name: str, version: str, model_data_path: str, base_image: str,
                    container_registry: str | None = None,
                    pkgs_to_install: list[str] | None = None) -> str:
        """Build the runnable form of a model; return its reference (image tag
        or artifact path).  Works without a running cluster."""

    def deploy_model(self, name: str, version: str, input_type: InputType, image: str,
                     num_replicas: int = 1) -> None:
        """Start ``num_replicas`` replicas of ``image`` for name:version."""

    def get_num_replicas(self, name: str, version: str) -> int: ...

    def set_num_replicas(self, name: str, version: str, input_type: InputType, image: str,
                         num_replicas: int) -> None: ...

    def list_replicas(self) -> list[ReplicaStatus]:
        """Every model replica this manager runs for the cluster."""

    def get_logs(self, logging_dir: str) -> list[str]:
        """Write one log file per process/container into ``logging_dir``; return paths."""

    def stop_models(self, models: dict[str, list[str]]) -> None:
        """Stop every replica of each ``name -> [versions]``."""

    def stop_all_model_containers(self) -> None: ...

    def stop_all(self, graceful: bool = True) -> None:
        """Stop everything the cluster started; leave nothing behind."""


@runtime_checkable
class ModelRegistry(Protocol):
    """Stores the built form of a model and hands it to a container manager:
    an image registry for Docker, a directory for local processes."""

    def publish(self, name: str, version: str, artifact: str) -> str:
        """Store ``artifact`` (image tag or directory) as name:version and
        return the reference a manager deploys."""

    def exists(self, reference: str) -> bool: ...


@runtime_checkable
class BatchingPolicy(Protocol):
    """Decides how large a batch a replica takes and whether to wait for more.

    One instance per model version per query frontend, built by the plugin's
    factory ``factory(model: ModelVersion, **options)``.  Called only from the
    frontend's event loop, so it needs no locking; keep every method cheap:
    they run once per batch on the hot path.
    """

    def max_batch_size(self) -> int:
        """Upper bound for the next batch (>= 1)."""

    def batch_delay(self, queued: int) -> float:
        """Seconds to keep waiting for a fuller batch when ``queued`` inputs are
        waiting (0.0 = send now)."""

    def on_batch_done(self, size: int, latency_s: float, slo_s: float) -> None:
        """Feedback after a batch of ``size`` came back in ``latency_s``."""

    def describe(self) -> dict[str, Any]:
        """Current state for ``/metrics`` (e.g. the current maximum)."""


@runtime_checkable
class SelectionPolicy(Protocol):
    """Chooses and combines an application's models, and learns from feedback.

    Clipper's shape (paper, section 5): ``select`` -> models, ``combine`` ->
    (output, confidence), ``observe`` -> new state.  Built by the plugin's
    factory ``factory(models, params)`` once per application per process
    (query frontends, management frontend).  The *state* is a JSON-able dict
    the policy never stores itself: the query frontend keeps it in the state
    store (per application, or per ``uid`` with ``per_uid: true``) and passes
    the copy it holds.  ``select``, ``shadows`` and ``combine`` run on the
    query frontend's event loop for every query: keep them cheap; ``observe``
    runs in a worker thread for each feedback.
    """

    def init_state(self) -> dict[str, Any]:
        """The state before any feedback."""

    def select(self, state: Mapping[str, Any], query: Any) -> list[str]:
        """The linked models whose answers the query waits for (at least one)."""

    def shadows(self, state: Mapping[str, Any], query: Any) -> list[str]:
        """Models that also get the input but are never waited for."""

    def combine(self, state: Mapping[str, Any], query: Any,
                outputs: Mapping[str, Any]) -> tuple[Any, float]:
        """One answer and its confidence in [0, 1] from the models that
        answered in time (``outputs``: model name -> output, never empty)."""

    def observe(self, state: Mapping[str, Any], query: Any, label: float,
                outputs: Mapping[str, Any]) -> dict[str, Any]:
        """The new state after feedback ``label`` for ``query``, given the
        outputs of the models ``select`` chose for it."""

    def weights(self, state: Mapping[str, Any]) -> dict[str, float]:
        """Each model's current weight or selection share (for metrics)."""
