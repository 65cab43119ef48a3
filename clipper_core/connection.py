"""``ClipperConnection``: Clipper's admin Python API.

It drives a container manager (any :class:`~clipper_core.interfaces.ContainerManager`,
or its plugin name such as ``"local_process"``) for processes and containers,
and the management frontend's ``/admin/*`` REST API for configuration.
The methods, their arguments and their defaults are Clipper's.

Every method except :meth:`~ClipperConnection.build_model`,
:meth:`~ClipperConnection.stop_all_model_containers`,
:meth:`~ClipperConnection.stop_all` and
:meth:`~ClipperConnection.test_predict_function` raises
:class:`~clipper_core.errors.UnconnectedException` before
:meth:`~ClipperConnection.connect` or :meth:`~ClipperConnection.start_clipper`.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import httpx

from .errors import (
    KINDS,
    ClipperException,
    ConflictError,
    NotFoundError,
    UnconnectedException,
    ValidationError,
)
from .models import Application, InputType, ModelVersion, validate_name

log = logging.getLogger("clipper.connection")

DEFAULT_CACHE_SIZE = 32 * 1024 * 1024

F = TypeVar("F", bound=Callable[..., Any])


def _connected(method: F) -> F:
    """Raise UnconnectedException unless ``connect()`` succeeded."""

    @functools.wraps(method)
    def wrapper(self: ClipperConnection, *args: Any, **kwargs: Any) -> Any:
        if not self.connected:
            raise UnconnectedException()
        return method(self, *args, **kwargs)
    return wrapper  # type: ignore[return-value]


def _count(kind: str, value: object, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(f"Invalid {kind} {value!r}: must be an integer >= {minimum}",
                              argument=kind, value=value)
    return value


def _names(kind: str, values: object) -> list[str]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValidationError(f"{kind}s must be a list of names, got {values!r}",
                              argument=kind, value=values)
    return [validate_name(kind, v) for v in values]


class ClipperConnection:
    """Start, connect to and manage a Clipper cluster.

    :param container_manager: a ContainerManager, or the name of an installed
        one (``"local_process"``, ``"docker"``, ``"k8s"``, ``"nomad"``), built
        with ``manager_options``.
    :param timeout: seconds to wait for each management REST call.
    """

    def __init__(self, container_manager: Any, *, timeout: float = 30.0,
                 **manager_options: Any) -> None:
        if isinstance(container_manager, str):
            from .plugins import get_container_manager

            container_manager = get_container_manager(container_manager, **manager_options)
        elif manager_options:
            raise ValidationError("manager options are only accepted with a manager name")
        self.cm = container_manager
        self.connected = False
        self.timeout = timeout
        self._client: httpx.Client | None = None
        self._admin_addr: str | None = None

    def __repr__(self) -> str:
        state = f"connected to {self._admin_addr}" if self.connected else "not connected"
        return f"<ClipperConnection {type(self.cm).__name__} {state}>"

    # -- cluster lifecycle -------------------------------------------------

    def start_clipper(self, query_frontend_image: str | None = None,
                      mgmt_frontend_image: str | None = None,
                      cache_size: int = DEFAULT_CACHE_SIZE,
                      num_frontend_replicas: int = 1) -> None:
        """Start a new cluster with the container manager and connect to it.

        Images are used by the image-based managers; ``None`` picks theirs.
        Raises ClusterStartError (a ClipperException) when it cannot start.
        """
        _count("cache_size", cache_size, 0)
        _count("num_frontend_replicas", num_frontend_replicas, 1)
        self.cm.start_clipper(query_frontend_image, mgmt_frontend_image, cache_size,
                              num_frontend_replicas)
        self.connect()
        log.info("Clipper is running")

    def connect(self) -> None:
        """Connect to a running cluster (found by the container manager).

        Raises ClipperException when the management frontend does not answer.
        """
        self.cm.connect()
        addr = self.cm.get_admin_addr()
        token = self.cm.get_admin_token()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = httpx.Client(base_url=f"http://{addr}", headers=headers,
                              timeout=self.timeout)
        try:
            self._request(client, "GET", "ping")
        except BaseException:
            client.close()
            raise
        if self._client is not None:
            self._client.close()
        self._client, self._admin_addr = client, addr
        self.connected = True
        log.info("Successfully connected to Clipper cluster at %s", addr)

    def close(self) -> None:
        """Forget the connection (the cluster keeps running)."""
        if self._client is not None:
            self._client.close()
        self._client = None
        self.connected = False

    # -- the management REST API -------------------------------------------

    def _request(self, client: httpx.Client, method: str, path: str,
                 body: dict[str, Any] | None = None) -> Any:
        url = f"/admin/{path}"
        try:
            resp = client.request(method, url, json=body)
        except httpx.HTTPError as exc:
            raise ClipperException(
                f"Management frontend at {client.base_url} did not answer {url}: "
                f"{type(exc).__name__}: {exc}", url=str(client.base_url)) from exc
        if resp.status_code >= 400:
            kind, cause = "clipper_error", resp.text
            try:
                err = resp.json()
                kind, cause = str(err.get("error", kind)), str(err.get("cause", cause))
            except ValueError:
                pass
            cls = KINDS.get(kind, ClipperException)
            if cls is UnconnectedException:
                raise UnconnectedException(cause)
            raise cls(cause, status=resp.status_code)
        return resp.json()

    def _admin(self, path: str, **body: Any) -> Any:
        assert self._client is not None
        return self._request(self._client, "POST", path, body)

    # -- applications ------------------------------------------------------

    @_connected
    def register_application(self, name: str, input_type: str, default_output: str,
                             slo_micros: int) -> None:
        """Register an application: the endpoint ``POST /{name}/predict``.

        Fails when an application ``name`` exists or an argument is invalid.
        """
        app = Application.create(name, input_type, default_output, slo_micros)
        self._admin("add_app", name=app.name, input_type=app.input_type.label,
                    default_output=app.default_output,
                    latency_slo_micros=app.latency_slo_micros)
        log.info("Application %s was successfully registered", app.name)

    @_connected
    def delete_application(self, name: str) -> None:
        """Delete application ``name`` (and its link)."""
        self._admin("delete_app", name=validate_name("application name", name))
        log.info("Application %s was successfully deleted", name)

    @_connected
    def unregister_application(self, name: str) -> None:
        """Clipper's other name for :meth:`delete_application`."""
        self.delete_application(name)

    @_connected
    def link_model_to_app(self, app_name: str, model_name: str) -> None:
        """Route ``app_name``'s queries to ``model_name``'s current version.

        Both must be registered with the same input type, and the app must
        not be linked to another model.
        """
        self._admin("add_model_links", app_name=validate_name("application name", app_name),
                    model_names=[validate_name("model name", model_name)])
        log.info("Model %s is now linked to application %s", model_name, app_name)

    @_connected
    def unlink_model_from_app(self, app_name: str, model_name: str) -> None:
        """Remove the link between ``app_name`` and ``model_name``."""
        self._admin("delete_model_links",
                    app_name=validate_name("application name", app_name),
                    model_names=[validate_name("model name", model_name)])
        log.info("Model %s is now removed from application %s", model_name, app_name)

    @_connected
    def get_all_apps(self, verbose: bool = False) -> list[Any]:
        """Names of all applications, or their info dicts when ``verbose``."""
        return self._admin("get_all_applications", verbose=bool(verbose))

    @_connected
    def get_app_info(self, name: str) -> dict[str, Any] | None:
        """The application's info dict, or None if there is none called ``name``."""
        return self._admin("get_application", name=validate_name("application name", name))

    @_connected
    def get_linked_models(self, app_name: str) -> list[str] | None:
        """Names of the models linked to ``app_name``; None when there are none."""
        names = self._admin("get_linked_models",
                            app_name=validate_name("application name", app_name))
        return names or None

    # -- models ------------------------------------------------------------

    def build_model(self, name: str, version: Any, model_data_path: str, base_image: str,
                    container_registry: str | None = None,
                    pkgs_to_install: list[str] | None = None) -> str:
        """Build the runnable form of a model with the container manager and
        return its reference (image tag or artifact path).  Needs no connection."""
        name = validate_name("model name", name)
        version = validate_name("model version", version)
        if not os.path.isdir(model_data_path):
            raise ValidationError(f"model_data_path {model_data_path!r} is not a directory",
                                  argument="model_data_path", value=model_data_path)
        if pkgs_to_install is not None and (
                isinstance(pkgs_to_install, str)
                or not all(isinstance(p, str) for p in pkgs_to_install)):
            raise ValidationError("pkgs_to_install must be a list of strings",
                                  argument="pkgs_to_install", value=pkgs_to_install)
        return self.cm.build_model(name, version, model_data_path, base_image,
                                   container_registry, pkgs_to_install)

    @_connected
    def build_and_deploy_model(self, name: str, version: Any, input_type: str,
                               model_data_path: str, base_image: str,
                               labels: list[str] | None = None,
                               container_registry: str | None = None, num_replicas: int = 1,
                               batch_size: int = -1,
                               pkgs_to_install: list[str] | None = None) -> None:
        """:meth:`build_model`, then :meth:`deploy_model` of the result."""
        ModelVersion.create(name, version, input_type, labels=labels, batch_size=batch_size)
        _count("num_replicas", num_replicas)
        self._refuse_existing(validate_name("model name", name),
                              validate_name("model version", version))
        image = self.build_model(name, version, model_data_path, base_image,
                                 container_registry, pkgs_to_install)
        self.deploy_model(name, version, input_type, image, labels, num_replicas, batch_size)

    def _refuse_existing(self, name: str, version: str) -> None:
        if self._admin("get_model", model_name=name, model_version=version) is not None:
            raise ConflictError(f"Model with name '{name}' and version '{version}' "
                                "already exists", name=name, version=version)

    @_connected
    def deploy_model(self, name: str, version: Any, input_type: str, image: str,
                     labels: list[str] | None = None, num_replicas: int = 1,
                     batch_size: int = -1, batching_policy: str | None = None) -> None:
        """Start ``num_replicas`` replicas of ``image`` and register the model
        version (which becomes the current version)."""
        if not isinstance(image, str) or not image:
            raise ValidationError("image must be a non-empty string", argument="image",
                                  value=image)
        model = ModelVersion.create(name, version, input_type, image=image, labels=labels,
                                    batch_size=batch_size, batching_policy=batching_policy)
        _count("num_replicas", num_replicas)
        self._refuse_existing(model.name, model.version)
        self.cm.deploy_model(model.name, model.version, model.input_type, image, num_replicas)
        self._register(model)
        from .plugins import notify

        notify("clipper_model_deployed", model=model, num_replicas=num_replicas)
        log.info("Done deploying model %s:%s", model.name, model.version)

    @_connected
    def register_model(self, name: str, version: Any, input_type: str,
                       image: str | None = None, labels: list[str] | None = None,
                       batch_size: int = -1, batching_policy: str | None = None) -> None:
        """Register a model version without starting anything; it becomes the
        current version.  A model without ``image`` is "containerless"."""
        self._register(ModelVersion.create(name, version, input_type, image=image,
                                           labels=labels, batch_size=batch_size,
                                           batching_policy=batching_policy))

    def _register(self, model: ModelVersion) -> None:
        body: dict[str, Any] = {
            "model_name": model.name, "model_version": model.version,
            "input_type": model.input_type.label, "labels": list(model.labels),
            "container_name": model.image, "batch_size": model.batch_size}
        if model.batching_policy:
            body["batching_policy"] = model.batching_policy
        self._admin("add_model", **body)
        log.info("Successfully registered model %s:%s", model.name, model.version)

    @_connected
    def delete_versioned_model(self, name: str, version: Any) -> None:
        """Unregister one version of a model (its replicas are not stopped)."""
        self._admin("delete_versioned_model", model_name=validate_name("model name", name),
                    model_version=validate_name("model version", version))

    @_connected
    def get_current_model_version(self, name: str) -> str:
        """The current version of model ``name``; ClipperException if none."""
        name = validate_name("model name", name)
        for info in self._admin("get_all_models", verbose=True):
            if info["model_name"] == name and info["is_current_version"]:
                return str(info["model_version"])
        raise NotFoundError(f"No versions of model {name} registered with Clipper",
                            name=name)

    @_connected
    def set_model_version(self, name: str, version: Any,
                          num_replicas: int | None = None) -> None:
        """Make ``version`` (already registered) the current version; with
        ``num_replicas``, first scale that version to that many replicas."""
        name = validate_name("model name", name)
        version = validate_name("model version", version)
        if num_replicas is not None:
            _count("num_replicas", num_replicas)
            self.set_num_replicas(name, num_replicas, version)
        self._admin("set_model_version", model_name=name, model_version=version)
        log.info("Model %s is now on version %s", name, version)

    @_connected
    def get_all_models(self, verbose: bool = False) -> list[Any]:
        """``"name:version"`` of every model version, or info dicts when ``verbose``."""
        return self._admin("get_all_models", verbose=bool(verbose))

    @_connected
    def get_model_info(self, name: str, version: Any) -> dict[str, Any] | None:
        """The model version's info dict, or None if it is not registered."""
        return self._admin("get_model", model_name=validate_name("model name", name),
                           model_version=validate_name("model version", version))

    # -- replicas ----------------------------------------------------------

    def _version_or_current(self, name: str, version: Any) -> tuple[str, str]:
        name = validate_name("model name", name)
        if version is None:
            return name, self.get_current_model_version(name)
        return name, validate_name("model version", version)

    @_connected
    def get_num_replicas(self, name: str, version: Any = None) -> int:
        """How many replicas of the version (default: current) the manager runs."""
        name, version = self._version_or_current(name, version)
        return self.cm.get_num_replicas(name, version)

    @_connected
    def set_num_replicas(self, name: str, num_replicas: int, version: Any = None) -> None:
        """Start or stop replicas of the version (default: current) until
        ``num_replicas`` run.  Fails for a containerless model."""
        name, version = self._version_or_current(name, version)
        _count("num_replicas", num_replicas)
        info = self.get_model_info(name, version)
        if info is None:
            raise NotFoundError(f"No model with name '{name}' and version '{version}' exists",
                                name=name, version=version)
        if not info.get("image"):
            raise ClipperException(
                f"Cannot resize the replica set for containerless model {name}:{version}",
                name=name, version=version)
        self.cm.set_num_replicas(name, version, InputType.parse(info["input_type"]),
                                 info["image"], num_replicas)

    def _replicas(self) -> list[dict[str, Any]]:
        """The frontends' view (store) merged with the manager's (processes)."""
        merged: dict[tuple[str, str, str], dict[str, Any]] = {}
        for info in self._admin("get_all_containers", verbose=True):
            key = (info["model_name"], str(info["model_version"]),
                   str(info["model_replica_id"]))
            merged[key] = {**info, "status": None, "restarts": 0, "handle": ""}
        input_types: dict[tuple[str, str], str] = {}
        for status in self.cm.list_replicas():
            key = (status.model_name, status.model_version, status.replica_id)
            extra = {k: v for k, v in status.to_wire().items()
                     if k in ("status", "restarts", "handle")}
            if key in merged:
                merged[key].update(extra)
                continue
            mv = (status.model_name, status.model_version)
            if mv not in input_types:
                info = self.get_model_info(*mv)
                input_types[mv] = info["input_type"] if info else ""
            merged[key] = {"model_name": status.model_name,
                           "model_version": status.model_version,
                           "model_replica_id": status.replica_id,
                           "input_type": input_types[mv], "connected": False,
                           "is_connected": False, **extra}
        return [merged[k] for k in sorted(merged)]

    @_connected
    def get_all_model_replicas(self, verbose: bool = False) -> list[Any]:
        """Every model replica known to a frontend or run by the manager:
        ``"name:version:replica_id"`` strings, or info dicts when ``verbose``
        (with ``connected`` from the frontends and ``status``/``restarts``
        from the manager)."""
        replicas = self._replicas()
        if verbose:
            return replicas
        return [f"{r['model_name']}:{r['model_version']}:{r['model_replica_id']}"
                for r in replicas]

    @_connected
    def get_model_replica_info(self, name: str, version: Any,
                               replica_id: Any) -> dict[str, Any] | None:
        """The replica's info dict, or None if no frontend or manager knows it."""
        key = (validate_name("model name", name), validate_name("model version", version),
               str(replica_id))
        for info in self._replicas():
            if (info["model_name"], str(info["model_version"]),
                    str(info["model_replica_id"])) == key:
                return info
        return None

    # -- stopping ----------------------------------------------------------

    def _registered_versions(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for info in self._admin("get_all_models", verbose=True):
            out.setdefault(info["model_name"], []).append(info)
        return out

    @_connected
    def stop_models(self, model_names: list[str]) -> None:
        """Stop every replica of every version of each model (they stay registered)."""
        names = _names("model name", model_names)
        registered = self._registered_versions()
        self.cm.stop_models({n: [str(i["model_version"]) for i in registered.get(n, [])]
                             for n in names})

    @_connected
    def stop_versioned_models(self, model_versions_dict: dict[str, list[Any]]) -> None:
        """Stop every replica of the listed ``{name: [versions]}`` (current ones too)."""
        if not isinstance(model_versions_dict, dict):
            raise ValidationError("model_versions_dict must be a dict of name -> versions",
                                  argument="model_versions_dict", value=model_versions_dict)
        models = {validate_name("model name", n): _names("model version", vs)
                  for n, vs in model_versions_dict.items()}
        self.cm.stop_models(models)

    @_connected
    def stop_inactive_model_versions(self, model_names: list[str]) -> None:
        """Stop the replicas of every version but the current one of each model."""
        names = _names("model name", model_names)
        registered = self._registered_versions()
        self.cm.stop_models({n: [str(i["model_version"]) for i in registered.get(n, [])
                                 if not i["is_current_version"]] for n in names})

    def stop_all_model_containers(self) -> None:
        """Stop every model replica the manager started; needs no connection."""
        self.cm.stop_all_model_containers()

    def stop_all(self, graceful: bool = True) -> None:
        """Stop everything the cluster started (frontends, store it owns,
        replicas); needs no connection.  Disconnects."""
        self.close()
        self.cm.stop_all(graceful)

    # -- addresses, logs, metrics ------------------------------------------

    @_connected
    def get_query_addr(self) -> str:
        """``host:port`` where clients send ``POST /{app}/predict``."""
        return self.cm.get_query_addr()

    @_connected
    def get_metric_addr(self) -> str:
        """``host:port`` of the metrics endpoint."""
        return self.cm.get_metric_addr()

    @_connected
    def get_admin_addr(self) -> str:
        """``host:port`` of the management frontend."""
        return self.cm.get_admin_addr()

    @_connected
    def get_clipper_logs(self, logging_dir: str = "clipper_logs/") -> list[str]:
        """Write the logs of every process of the cluster into ``logging_dir``
        (created if missing) and return the file paths."""
        path = os.path.abspath(os.path.expanduser(logging_dir))
        os.makedirs(path, exist_ok=True)
        return self.cm.get_logs(path)

    @_connected
    def inspect_instance(self) -> dict[str, Any]:
        """The query frontend's metrics (``GET /metrics``) as a dict."""
        url = f"http://{self.cm.get_query_addr()}/metrics"
        try:
            resp = httpx.get(url, timeout=self.timeout)
            resp.raise_for_status()
            return resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ClipperException(f"Could not read metrics from {url}: {exc}",
                                   url=url) from exc

    # -- local checks ------------------------------------------------------

    def test_predict_function(self, query: Any, func: Callable[[list[Any]], Any],
                              input_type: str) -> list[Any]:
        """Run ``func`` after a cloudpickle round trip on the inputs of
        ``query`` (``{"input": x}`` or ``{"input_batch": [...]}``, decoded
        as the query frontend does: bytes are base64) and return its outputs.

        Needs no connection.  Raises ClipperException when the query does not
        match ``input_type`` or ``func`` does not return one output per input.
        """
        import cloudpickle

        from .rpc import decode_inputs, encode_input

        kind = InputType.parse(input_type)
        queries = query if isinstance(query, list) else [query]
        inputs: list[Any] = []
        for q in queries:
            if not isinstance(q, dict) or not ({"input", "input_batch"} & q.keys()):
                raise ValidationError(
                    "query must be {'input': x} or {'input_batch': [x, ...]} "
                    "(or a list of them)", argument="query", value=q)
            if "input" in q:
                inputs.append(q["input"])
            else:
                batch = q["input_batch"]
                if not isinstance(batch, list):
                    raise ValidationError("input_batch must be a list", argument="query")
                inputs.extend(batch)
        inputs = decode_inputs(kind, [encode_input(kind, x) for x in inputs])
        reloaded = cloudpickle.loads(cloudpickle.dumps(func))
        outputs = reloaded(inputs)
        try:
            outputs = list(outputs)
        except TypeError:
            raise ClipperException(
                f"The predict function returned {type(outputs).__name__}, not a list "
                "with one output per input") from None
        if len(outputs) != len(inputs):
            raise ClipperException(
                f"The predict function returned {len(outputs)} outputs for {len(inputs)} "
                "inputs; it must return one output per input")
        return outputs
