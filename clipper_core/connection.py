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

import logging
import os
from collections.abc import Callable
from typing import Any

import httpx

from .admin.backup_api import BackupAPI
from .admin.client import AdminClient, base_url, tls_context
from .admin.inputs import check_base_image, check_image_reference, check_requirements
from .admin.local import check_predict_function
from .admin.replica_api import ReplicaAPI, count_arg
from .admin.replica_api import requires_connection as _connected
from .admin.selection_api import SelectionAPI
from .admin.service import new_application
from .admin.wire import (
    AddApp,
    AddModel,
    AddModelLinks,
    DeleteApp,
    DeleteModelLinks,
    DeleteVersionedModel,
    GetAllApplications,
    GetAllModels,
    GetApplication,
    GetLinkedModels,
    GetModel,
    SetModelVersion,
    render,
)
from .errors import ClipperException, ConflictError, ValidationError
from .launch.compat import ignored_parameter
from .models import ModelVersion, validate_name

log = logging.getLogger("clipper.connection")

#: Clipper's default prediction cache: 32 MiB.
DEFAULT_CACHE_SIZE = 32 * 1024 * 1024

_START = "ClipperConnection.start_clipper"
#: A CA bundle to verify the cluster's HTTPS frontends with.
CA_BUNDLE_ENV = "CLIPPER_CA_BUNDLE"


class ClipperConnection(ReplicaAPI, SelectionAPI, BackupAPI):
    """Start, connect to and manage a Clipper cluster.

    :param container_manager: a ContainerManager, or the name of an installed
        one (``"local_process"``, ``"docker"``, ``"k8s"``, ``"nomad"``), built
        with ``manager_options``.
    :param timeout: seconds to wait for each management REST call.
    :param ca_bundle: CA certificates of a cluster whose frontends serve
        HTTPS (``CLIPPER_CA_BUNDLE``); given, the connection speaks HTTPS to
        the management and query frontends and verifies them against it.
        The admin token comes from the container manager (``connect()``).
    """

    def __init__(self, container_manager: Any, *, timeout: float = 30.0,
                 ca_bundle: str | None = None, **manager_options: Any) -> None:
        if isinstance(container_manager, str):
            from .plugins import get_container_manager

            container_manager = get_container_manager(container_manager, **manager_options)
        elif manager_options:
            raise ValidationError("manager options are only accepted with a manager name")
        self.cm = container_manager
        self.connected = False
        self.timeout = timeout
        self.ca_bundle = ca_bundle or os.environ.get(CA_BUNDLE_ENV) or None
        self._client: AdminClient | None = None

    def __repr__(self) -> str:
        state = (f"connected to {self._client.addr}" if self.connected and self._client
                 else "not connected")
        return f"<ClipperConnection {type(self.cm).__name__} {state}>"

    # -- cluster lifecycle -------------------------------------------------

    def start_clipper(self, query_frontend_image: str | None = None,
                      mgmt_frontend_image: str | None = None,
                      frontend_exporter_image: str | None = None,
                      cache_size: int = DEFAULT_CACHE_SIZE,
                      qf_http_thread_pool_size: int = 1,
                      qf_http_timeout_request: int = 5,
                      qf_http_timeout_content: int = 300,
                      num_frontend_replicas: int = 1) -> None:
        """Start a new cluster with the container manager and connect to it.

        The parameters and their order are Clipper's.  Images are used by the
        image-based managers; ``None`` picks theirs.  Accepted but ignored
        (each warns once when given a value other than Clipper's default):
        ``frontend_exporter_image`` (the query frontend serves its metrics
        itself), ``qf_http_thread_pool_size`` (one event loop serves HTTP),
        ``qf_http_timeout_request`` and ``qf_http_timeout_content`` (the
        application's ``slo_micros`` bounds every request).  Raises
        ClusterStartError (a ClipperException) when it cannot start.
        """
        if isinstance(frontend_exporter_image, int) and not isinstance(
                frontend_exporter_image, bool) and cache_size == DEFAULT_CACHE_SIZE:
            # clipper-core 0.4.0 took cache_size third; Clipper takes it fourth.
            cache_size, frontend_exporter_image = frontend_exporter_image, None
        for name, value, default, reason in (
                ("frontend_exporter_image", frontend_exporter_image, None,
                 "the query frontend serves its metrics itself (GET /metrics)"),
                ("qf_http_thread_pool_size", qf_http_thread_pool_size, 1,
                 "one event loop per query frontend serves HTTP; scale with "
                 "num_frontend_replicas"),
                ("qf_http_timeout_request", qf_http_timeout_request, 5,
                 "each application's slo_micros bounds its requests"),
                ("qf_http_timeout_content", qf_http_timeout_content, 300,
                 "each application's slo_micros bounds its requests")):
            ignored_parameter(_START, name, value, default, reason)
        count_arg("cache_size", cache_size, 0)
        count_arg("num_frontend_replicas", num_frontend_replicas, 1)
        self.cm.start_clipper(query_frontend_image, mgmt_frontend_image, cache_size,
                              num_frontend_replicas)
        self.connect()
        log.info("Clipper is running")

    def connect(self) -> None:
        """Connect to a running cluster (found by the container manager).

        Raises ClipperException when the management frontend does not answer.
        """
        self.cm.connect()
        client = AdminClient(self.cm.get_admin_addr(), token=self.cm.get_admin_token(),
                             timeout=self.timeout, verify=self.ca_bundle or True)
        try:
            client.ping()
        except BaseException:
            client.close()
            raise
        if self._client is not None:
            self._client.close()
        self._client = client
        self.connected = True
        log.info("Successfully connected to Clipper cluster at %s", client.addr)

    def close(self) -> None:
        """Forget the connection (the cluster keeps running)."""
        if self._client is not None:
            self._client.close()
        self._client = None
        self.connected = False

    # -- applications ------------------------------------------------------

    @_connected
    def register_application(self, name: str, input_type: str, default_output: str,
                             slo_micros: int, selection_policy: str | None = None,
                             policy_params: dict[str, Any] | None = None,
                             confidence_threshold: float | None = None) -> None:
        """Register an application: the endpoint ``POST /{name}/predict``.

        ``selection_policy`` (default ``single``: one linked model, Clipper's
        behaviour) chooses among several linked models, with its
        ``policy_params``; below ``confidence_threshold`` an ensemble answers
        with the default output.  Fails when an application ``name`` exists
        or an argument is invalid.
        """
        app = new_application(name, input_type, default_output, slo_micros)
        self._call(AddApp(name=app.name, input_type=app.input_type.label,
                          default_output=app.default_output,
                          latency_slo_micros=app.latency_slo_micros,
                          selection_policy=selection_policy, policy_params=policy_params,
                          confidence_threshold=confidence_threshold))
        log.info("Application %s was successfully registered", app.name)

    @_connected
    def delete_application(self, name: str) -> None:
        """Delete application ``name`` (and its link)."""
        self._call(DeleteApp(name=name))
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
        self._call(AddModelLinks(app_name=app_name, model_names=(model_name,)))
        log.info("Model %s is now linked to application %s", model_name, app_name)

    @_connected
    def unlink_model_from_app(self, app_name: str, model_name: str) -> None:
        """Remove the link between ``app_name`` and ``model_name``."""
        self._call(DeleteModelLinks(app_name=app_name, model_names=(model_name,)))
        log.info("Model %s is now removed from application %s", model_name, app_name)

    @_connected
    def get_all_apps(self, verbose: bool = False) -> list[Any]:
        """Names of all applications, or their info dicts when ``verbose``."""
        return render(self._call(GetAllApplications(verbose=bool(verbose))))  # type: ignore[no-any-return]

    @_connected
    def get_app_info(self, name: str) -> dict[str, Any] | None:
        """The application's info dict, or None if there is none called ``name``."""
        app = self._call(GetApplication(name=name))
        return self._app_info(app) if app is not None else None

    @_connected
    def get_linked_models(self, app_name: str) -> list[str]:
        """Names of the models linked to ``app_name`` (``[]`` when none)."""
        return self._call(GetLinkedModels(app_name=app_name))

    # -- models ------------------------------------------------------------

    def build_model(self, name: str, version: Any, model_data_path: str, base_image: str,
                    container_registry: str | None = None,
                    pkgs_to_install: list[str] | None = None) -> str:
        """Build the runnable form of a model with the container manager and
        return its reference (image tag or artifact path).  Needs no connection."""
        name = validate_name("model name", name)
        version = validate_name("model version", version)
        check_base_image(base_image)
        if not os.path.isdir(model_data_path):
            raise ValidationError(f"model_data_path {model_data_path!r} is not a directory",
                                  argument="model_data_path", value=model_data_path)
        pkgs_to_install = check_requirements(pkgs_to_install)
        return str(self.cm.build_model(name, version, model_data_path, base_image,
                                       container_registry, pkgs_to_install))

    @_connected
    def build_and_deploy_model(self, name: str, version: Any, input_type: str,
                               model_data_path: str, base_image: str,
                               labels: list[str] | None = None,
                               container_registry: str | None = None, num_replicas: int = 1,
                               batch_size: int = -1,
                               pkgs_to_install: list[str] | None = None) -> None:
        """:meth:`build_model`, then :meth:`deploy_model` of the result."""
        model = ModelVersion.create(name, version, input_type, labels=labels,
                                    batch_size=batch_size)
        count_arg("num_replicas", num_replicas)
        self._refuse_existing(model)
        image = self.build_model(name, version, model_data_path, base_image,
                                 container_registry, pkgs_to_install)
        self.deploy_model(name, version, input_type, image, labels, num_replicas, batch_size)

    def _refuse_existing(self, model: ModelVersion) -> None:
        if self._call(GetModel(model_name=model.name, model_version=model.version)) is not None:
            raise ConflictError(f"Model with name '{model.name}' and version "
                                f"'{model.version}' already exists",
                                name=model.name, version=model.version)

    @_connected
    def deploy_model(self, name: str, version: Any, input_type: str, image: str,
                     labels: list[str] | None = None, num_replicas: int = 1,
                     batch_size: int = -1, batching_policy: str | None = None) -> None:
        """Start ``num_replicas`` replicas of ``image`` and register the model
        version (which becomes the current version)."""
        check_image_reference(image)
        model = ModelVersion.create(name, version, input_type, image=image, labels=labels,
                                    batch_size=batch_size, batching_policy=batching_policy)
        count_arg("num_replicas", num_replicas)
        self._refuse_existing(model)
        self.cm.deploy_model(model.name, model.version, model.input_type, image, num_replicas)
        self._register(model)
        self._await_connected(model.name, model.version, num_replicas)
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
        self._call(AddModel(model_name=model.name, model_version=model.version,
                            input_type=model.input_type.label, image=model.image,
                            labels=model.labels, batch_size=model.batch_size,
                            batching_policy=model.batching_policy))
        log.info("Successfully registered model %s:%s", model.name, model.version)

    @_connected
    def delete_versioned_model(self, name: str, version: Any) -> None:
        """Unregister one version of a model (its replicas are not stopped)."""
        self._call(DeleteVersionedModel(model_name=name, model_version=str(version)))

    @_connected
    def set_model_version(self, name: str, version: Any,
                          num_replicas: int | None = None) -> None:
        """Make ``version`` (already registered) the current version; with
        ``num_replicas``, first scale that version to that many replicas."""
        version = str(version)
        if num_replicas is not None:
            count_arg("num_replicas", num_replicas)
            self.set_num_replicas(name, num_replicas, version)
        self._call(SetModelVersion(model_name=name, model_version=version))
        log.info("Model %s is now on version %s", name, version)

    @_connected
    def get_all_models(self, verbose: bool = False) -> list[Any]:
        """``"name:version"`` of every model version, or info dicts when ``verbose``."""
        return render(self._call(GetAllModels(verbose=bool(verbose))))  # type: ignore[no-any-return]

    @_connected
    def get_model_info(self, name: str, version: Any) -> dict[str, Any] | None:
        """The model version's info dict, or None if it is not registered."""
        info = self._call(GetModel(model_name=name, model_version=str(version)))
        return info.to_wire() if info is not None else None

    def stop_all(self, graceful: bool = True) -> None:
        """Stop everything the cluster started (frontends, store it owns,
        replicas); needs no connection.  Disconnects."""
        self.close()
        self.cm.stop_all(graceful)

    # -- addresses, logs, metrics ------------------------------------------

    @_connected
    def get_query_addr(self) -> str:
        """``host:port`` where clients send ``POST /{app}/predict``."""
        return str(self.cm.get_query_addr())

    @_connected
    def get_metric_addr(self) -> str:
        """``host:port`` of the metrics endpoint."""
        return str(self.cm.get_metric_addr())

    @_connected
    def get_admin_addr(self) -> str:
        """``host:port`` of the management frontend."""
        return str(self.cm.get_admin_addr())

    @_connected
    def get_clipper_logs(self, logging_dir: str = "clipper_logs/") -> list[str]:
        """Write the logs of every process of the cluster into ``logging_dir``
        (created if missing) and return the file paths."""
        path = os.path.abspath(os.path.expanduser(logging_dir))
        os.makedirs(path, exist_ok=True)
        return list(self.cm.get_logs(path))

    @_connected
    def inspect_instance(self) -> dict[str, Any]:
        """The query frontend's metrics (``GET /metrics``) as a dict."""
        url = f"{base_url(self.cm.get_query_addr(), https=bool(self.ca_bundle))}/metrics"
        try:
            resp = httpx.get(url, timeout=self.timeout,
                             verify=tls_context(self.ca_bundle or True))
            resp.raise_for_status()
            data: dict[str, Any] = resp.json()
            return data
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
        return check_predict_function(query, func, input_type)
