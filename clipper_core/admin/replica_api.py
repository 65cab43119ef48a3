"""The replica and stop methods of ``ClipperConnection``, and what every
admin method shares: the connection check, the call, argument checks.

:class:`ReplicaAPI` is a base class of
:class:`~clipper_core.connection.ClipperConnection`; it needs the
connection's container manager (``cm``) and admin client (``_client``).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from ..errors import ClipperException, NotFoundError, UnconnectedException, ValidationError
from ..models import InputType
from .client import AdminClient
from .replicas import ReplicaView, merge_replicas
from .wire import (
    DeleteVersionedModel,
    GetAllContainers,
    GetAllModels,
    GetModel,
    ModelInfo,
    Request,
)

log = logging.getLogger("clipper.connection")

#: how long ``deploy_model`` waits for a new version's replicas to connect
DEPLOY_CONNECT_TIMEOUT_S = 30.0

F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R")


def requires_connection(method: F) -> F:
    """Raise UnconnectedException unless ``connect()`` succeeded."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.connected:
            raise UnconnectedException()
        return method(self, *args, **kwargs)
    return wrapper  # type: ignore[return-value]


def count_arg(kind: str, value: object, minimum: int = 0) -> int:
    """``value`` if it is an int >= ``minimum`` (not a bool), else ValidationError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(f"Invalid {kind} {value!r}: must be an integer >= {minimum}",
                              argument=kind, value=value)
    return value


def list_arg(kind: str, values: object) -> list[str]:
    """``values`` as a list of strings (names or versions; not validated)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValidationError(f"{kind}s must be a list, got {values!r}", argument=kind,
                              value=values)
    return [str(v) for v in values]


class ReplicaAPI:
    """Replicas, stopping, and the calls every admin method makes."""

    cm: Any
    connected: bool
    _client: AdminClient | None

    def _call(self, request: Request[R]) -> R:
        if self._client is None:
            raise UnconnectedException()
        return self._client.call(request)

    def _model_infos(self) -> list[ModelInfo]:
        return self._call(GetAllModels(verbose=True))

    @requires_connection
    def get_current_model_version(self, name: str) -> str:
        """The current version of model ``name``; NotFoundError if none."""
        for info in self._model_infos():
            if info.model.name == name and info.is_current_version:
                return info.model.version
        raise NotFoundError(f"No versions of model {name} registered with Clipper",
                            name=name)

    # -- replicas ----------------------------------------------------------

    def _version_or_current(self, name: str, version: Any) -> str:
        return self.get_current_model_version(name) if version is None else str(version)

    @requires_connection
    def get_num_replicas(self, name: str, version: Any = None) -> int:
        """How many replicas of the version (default: current) the manager runs."""
        return int(self.cm.get_num_replicas(name, self._version_or_current(name, version)))

    @requires_connection
    def set_num_replicas(self, name: str, num_replicas: int, version: Any = None) -> None:
        """Start or stop replicas of the version (default: current) until
        ``num_replicas`` run.  Fails for a containerless model."""
        version = self._version_or_current(name, version)
        count_arg("num_replicas", num_replicas)
        info = self._call(GetModel(model_name=name, model_version=version))
        if info is None:
            raise NotFoundError(f"No model with name '{name}' and version '{version}' exists",
                                name=name, version=version)
        if not info.model.image:
            raise ClipperException(
                f"Cannot resize the replica set for containerless model {name}:{version}",
                name=name, version=version)
        self.cm.set_num_replicas(name, version, info.model.input_type, info.model.image,
                                 num_replicas)

    def _await_connected(self, name: str, version: str, count: int,
                         timeout: float = DEPLOY_CONNECT_TIMEOUT_S) -> bool:
        """After a deploy: until ``count`` replicas of name:version are
        connected to the query frontends, ``timeout`` seconds at most.

        The manager starts the replicas before the version is registered
        (Clipper's order), and with CURVE the frontends admit a replica's key
        only once its version is registered, so the wait is here, after the
        registration.  A timeout is logged, not raised: the replicas go on
        trying, and ``get_all_model_replicas`` shows them.
        """
        deadline = time.monotonic() + timeout
        while True:
            records = self._call(GetAllContainers(verbose=True))
            live = {r.replica_id for r in records
                    if (r.model_name, r.model_version) == (name, version) and r.connected}
            if len(live) >= count:
                return True
            if time.monotonic() >= deadline:
                log.warning("%d of %d replicas of %s:%s connected within %.0f s", len(live),
                            count, name, version, timeout)
                return False
            time.sleep(0.1)

    def _replicas(self) -> list[ReplicaView]:
        """The frontends' view (store) merged with the manager's (processes)."""
        records = self._call(GetAllContainers(verbose=True))
        statuses = list(self.cm.list_replicas())
        known = {(r.model_name, r.model_version, r.replica_id) for r in records}
        input_types: dict[tuple[str, str], InputType] = {}
        if any((s.model_name, s.model_version, s.replica_id) not in known for s in statuses):
            input_types = {(i.model.name, i.model.version): i.model.input_type
                           for i in self._model_infos()}
        return merge_replicas(records, statuses, input_types=input_types)

    @requires_connection
    def get_all_model_replicas(self, verbose: bool = False) -> list[Any]:
        """Every model replica known to a frontend or run by the manager:
        ``"name:version:replica_id"`` strings, or info dicts when ``verbose``
        (with ``connected`` from the frontends and ``status``/``restarts``
        from the manager)."""
        views = self._replicas()
        if verbose:
            return [v.to_wire() for v in views]
        return [":".join(v.key) for v in views]

    @requires_connection
    def get_model_replica_info(self, name: str, version: Any,
                               replica_id: Any) -> dict[str, Any] | None:
        """The replica's info dict, or None if no frontend or manager knows it."""
        key = (name, str(version), str(replica_id))
        return next((v.to_wire() for v in self._replicas() if v.key == key), None)

    # -- stopping ----------------------------------------------------------

    def _stop_and_unregister(self, models: dict[str, list[str]]) -> None:
        """Stop the replicas of each ``name -> [versions]``, then unregister
        those versions, as Clipper does (one unregistered meanwhile is skipped)."""
        self.cm.stop_models(models)
        self._unregister(models)

    def _unregister(self, models: dict[str, list[str]]) -> None:
        """Unregister each ``name -> [versions]`` (one unregistered meanwhile is skipped)."""
        for name, versions in models.items():
            for version in versions:
                try:
                    self._call(DeleteVersionedModel(model_name=name, model_version=version))
                except NotFoundError:
                    continue
        log.info("Stopped and unregistered %s", models)

    @requires_connection
    def stop_models(self, model_names: list[str]) -> None:
        """Stop every replica of every version of each model and unregister
        those versions."""
        names = set(list_arg("model name", model_names))
        models: dict[str, list[str]] = {}
        for info in self._model_infos():
            if info.model.name in names:
                models.setdefault(info.model.name, []).append(info.model.version)
        self._stop_and_unregister(models)

    @requires_connection
    def stop_versioned_models(self, model_versions_dict: dict[str, list[Any]]) -> None:
        """Stop every replica of the listed ``{name: [versions]}`` (current
        ones too) and unregister those versions."""
        if not isinstance(model_versions_dict, dict):
            raise ValidationError("model_versions_dict must be a dict of name -> versions",
                                  argument="model_versions_dict", value=model_versions_dict)
        self._stop_and_unregister({str(n): list_arg("model version", vs)
                                   for n, vs in model_versions_dict.items()})

    @requires_connection
    def stop_inactive_model_versions(self, model_names: list[str]) -> None:
        """Stop the replicas of every version but the current one of each
        model and unregister those versions."""
        names = set(list_arg("model name", model_names))
        models: dict[str, list[str]] = {}
        for info in self._model_infos():
            if info.model.name in names and not info.is_current_version:
                models.setdefault(info.model.name, []).append(info.model.version)
        self._stop_and_unregister(models)

    def stop_all_model_containers(self) -> None:
        """Stop every model replica the manager started and, when connected,
        unregister every model version, as Clipper does.

        Unlike Clipper it needs no connection: unconnected (a crashed
        management frontend or store), it only stops the replicas, as the
        cleanup call of last resort.
        """
        versions: dict[str, list[str]] = {}
        if self.connected:
            for info in self._model_infos():
                versions.setdefault(info.model.name, []).append(info.model.version)
        self.cm.stop_all_model_containers()
        if versions:
            self._unregister(versions)

