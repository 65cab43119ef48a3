"""The fake API server put together: :class:`FakeKubernetes` owns the store,
the verbs, the kubelet, the service network and the controller loop, and
serves them over HTTP on a local port."""

from __future__ import annotations

import http.server
import os
import threading
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clipper_core.testing.process_pods import ImageSpec, ImageTable

from .apiserver import ApiServer
from .kubelet import Kubelet, PodRunner
from .objects import create_object, finish_namespace, record_event
from .resources import NODE_EXTERNAL_IP, NODE_INTERNAL_IP, NODE_NAME, Obj, Resource
from .routes import handler_for
from .services import ServiceNetwork
from .store import Store
from .workloads import DeploymentController, collect_garbage

__all__ = ["FakeKubernetes"]


class FakeKubernetes:
    """The fake API server, its controllers and its pods.  See the package docstring.

    :param images: image name -> :class:`ImageSpec` (or an :class:`ImageTable`).
    :param workdir: where pod logs go.
    :param k8s_version: schema version to validate against (default: the
        newest ``kubernetes-validate`` knows).
    :param time_scale: factor applied to probe delays and grace periods.
    """

    #: the port the API is served on (set by :meth:`start`)
    port: int

    def __init__(self, images: Mapping[str, ImageSpec] | ImageTable, *,
                 workdir: str | os.PathLike[str], k8s_version: str | None = None,
                 validate: bool = True, time_scale: float = 0.1,
                 probe_interval: float = 0.2, restart_backoff: float = 0.5) -> None:
        import kubernetes_validate

        self.images = images if isinstance(images, ImageTable) else ImageTable(images)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.k8s_version = k8s_version or kubernetes_validate.latest_version()
        self.time_scale = time_scale
        self.probe_interval = probe_interval
        self.restart_backoff = restart_backoff
        self.store = Store()
        self._stopping = threading.Event()
        self.kubelet = Kubelet(self)
        self.services = ServiceNetwork(self.store, self.kubelet)
        self.api = ApiServer(self.store, self.services, self.kubelet,
                             k8s_version=self.k8s_version, validate=validate,
                             stopping=self._stopping)
        self.deployments = DeploymentController(self.store, self.kubelet)
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        for ns in ("default", "kube-system", "kube-public"):
            create_object(self.store, "namespaces", "", {
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        create_object(self.store, "nodes", "", {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE_NAME, "labels": {"kubernetes.io/hostname": NODE_NAME}},
            "spec": {},
            "status": {"addresses": [{"type": "InternalIP", "address": NODE_INTERNAL_IP},
                                     {"type": "ExternalIP", "address": NODE_EXTERNAL_IP},
                                     {"type": "Hostname", "address": NODE_NAME}],
                       "conditions": [{"type": "Ready", "status": "True",
                                       "reason": "KubeletReady"}]}})

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> FakeKubernetes:
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_for(self.api))
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        for target, name in ((self._httpd.serve_forever, "fake-k8s-http"),
                             (self._controllers, "fake-k8s-controllers")):
            t = threading.Thread(target=target, daemon=True, name=name)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        """Stop every pod process, forwarder and the HTTP server."""
        self._stopping.set()
        with self.store.cond:
            self.store.cond.notify_all()
        self.kubelet.stop_all()
        self.services.close()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        for t in self._threads:
            t.join(5)

    def __enter__(self) -> FakeKubernetes:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- for tests ---------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` talking to this server."""
        import kubernetes

        config = kubernetes.client.Configuration()
        config.host = self.url
        return kubernetes.client.ApiClient(config)

    @property
    def runners(self) -> dict[tuple[str, str], PodRunner]:
        """(namespace, pod name) -> the runner of that pod's containers."""
        return self.kubelet.runners

    def pod_pids(self) -> list[int]:
        """Pids of every running container process."""
        return self.kubelet.pod_pids()

    @property
    def received(self) -> list[tuple[str, str, Obj]]:
        """Every (verb, path, body) received with a body, in order: the bodies as sent."""
        return self.api.received

    @property
    def forbidden(self) -> set[tuple[str, str]]:
        """(verb, resource) pairs the caller may not use, e.g. ("get", "namespaces")."""
        return self.api.forbidden

    def forbid(self, verb: str, resource: str) -> None:
        """Deny ``verb`` on ``resource`` with a 403 (see :meth:`ApiServer.forbid`)."""
        self.api.forbid(verb, resource)

    def validate_body(self, res: Resource, body: Obj, *, name: str | None = None,
                      kind: str | None = None, api_version: str | None = None) -> None:
        """422 unless ``body`` is a valid ``res`` (schema + API server rules)."""
        self.api.validate_body(res, body, name=name, kind=kind, api_version=api_version)

    # -- what the kubelet asks of the cluster (kubelet.Cluster) -------------------
    def record_event(self, involved: Obj, reason: str, message: str, type_: str = "Normal",
                     component: str = "kubelet") -> None:
        """Write (or bump the count of) an Event about ``involved``."""
        record_event(self.store, involved, reason, message, type_, component)

    def resolve_services(self, text: str, ns: str) -> str:
        return self.services.resolve_services(text, ns)

    def resolve_clipper_frontends(self, env: dict[str, str], ns: str) -> None:
        self.services.resolve_clipper_frontends(env, ns)

    # -- controllers -----------------------------------------------------------
    def _controllers(self) -> None:
        while not self._stopping.is_set():
            try:
                self._reconcile()
            except Exception:  # noqa: BLE001 - a controller keeps going, like the real ones
                traceback.print_exc()
            self._stopping.wait(0.1)

    def _reconcile(self) -> None:
        """One pass of every controller: namespaces, deployments, garbage
        collection, the kubelet, the service network."""
        for ns_obj in self.store.list("namespaces"):
            if "deletionTimestamp" in ns_obj["metadata"]:
                finish_namespace(self.store, ns_obj["metadata"]["name"])
        self.deployments.reconcile_all()
        collect_garbage(self.store)
        self.kubelet.sync()
        self.services.sync()
