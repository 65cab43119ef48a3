"""Test support for clipper-k8s: a fake Kubernetes API server that runs pods
as local processes (:class:`FakeKubernetes`), and what an image means
locally (:class:`ImageSpec`, :class:`ImageTable`).

Test support, not product code: nothing in the plugin imports it.

No cluster can run where the tests run, so the Kubernetes container manager
is tested against this: an HTTP server in a thread that speaks the real REST
paths, verbs, status codes and ``Status`` bodies of the kinds the manager
uses, with real controllers in miniature:

- **API**: ``/api/v1`` (namespaces, nodes, pods incl. ``/log``, services incl.
  ``/proxy``, endpoints, events, serviceaccounts, secrets), ``/apis/apps/v1``
  (deployments incl. ``/scale`` and ``/status``),
  ``/apis/rbac.authorization.k8s.io/v1`` (roles, rolebindings).  GET (get,
  list, ``?watch=true`` streams of ADDED/MODIFIED/DELETED, label and field
  selectors), POST (404 for a missing namespace, 409 AlreadyExists), PUT (409
  Conflict on a stale ``resourceVersion``), PATCH (JSON patch, merge patch;
  strategic merge patch is treated as a merge patch), DELETE (also on a
  collection), one global ``resourceVersion`` counter like etcd's.
- **Validation**: every create/replace/patch body is validated against the
  real OpenAPI schemas with ``kubernetes-validate`` (strict: unknown fields
  are errors) plus the name, label and selector rules the real API server
  enforces; invalid bodies get a 422 ``Invalid`` Status.  Every body received
  is kept in :attr:`FakeKubernetes.received`.
- **RBAC, in part**: :meth:`FakeKubernetes.forbid` denies a verb on a
  resource with the real 403 Status; there is no authentication.
- **Not modelled**:
  ReplicaSet objects, Endpoints maintenance (stored as sent), list paging
  (``limit``/``continue`` are ignored), server-side apply, admission, resource
  limits, scheduling (one node, ``fake-node``).
- **Deployment controller**: keeps ``spec.replicas`` pods per Deployment
  (named ``<deployment>-<template hash>-<5 chars>``, owner references, pods
  of an old template replaced), deletes owned pods with the Deployment
  (foreground or background), writes ``status`` and ``ScalingReplicaSet``
  events.  There are no ReplicaSet objects.
- **Kubelet**: each pod container runs as a local process
  (:mod:`clipper_core.testing.process_pods`).  The image table the test provides
  says what an image is; an unknown image never pulls (``ErrImagePull`` then
  ``ImagePullBackOff``, with ``Failed`` events).  ``python`` in a command is
  this interpreter.  Each declared container port gets its own local port
  (``--port``-style arguments and ``*PORT`` variables naming it are rewritten).
  Readiness and liveness probes (httpGet, tcpSocket) run against the local
  ports; a failed liveness probe or an exit restarts the container
  (``restartCount``, ``CrashLoopBackOff``).  Pod status has phase, conditions
  and container statuses; events as a real kubelet writes them (Scheduled,
  Pulled, Created, Started, Unhealthy, BackOff, Killing).  Time is compressed
  by ``time_scale`` (probe delays, grace periods).
- **Networking**: every ClusterIP service port is a local TCP forwarder (like
  kube-proxy) to its ready pods; NodePorts listen on the node's addresses
  (InternalIP 127.0.0.1, ExternalIP 127.0.0.2) at a real port in
  30000-32767; a LoadBalancer gets an ingress IP in 127.0.0.0/8 listening on
  the service port.  "DNS": when a container starts, ``<service>:<port>``
  (short or fully qualified) in its env and args becomes the forwarder's
  ``127.0.0.1:<port>``.  Because one name cannot resolve to several local
  ports, a model container whose ``CLIPPER_IP`` names a headless service gets
  ``CLIPPER_FRONTENDS`` listing every ready pod behind it.  The API server's
  service proxy (``/api/v1/namespaces/NS/services/NAME:PORT/proxy/...``) works
  like ``kubectl proxy`` with it.

The modules, from the wire inwards:

- ``server``: :class:`FakeKubernetes`, which puts the parts together and runs
  the controller loop.
- ``routes``: HTTP routing (REST paths, ``Status`` bodies, watch streams).
- ``apiserver``: the verbs (create with defaults, replace, patch, delete,
  ``/scale``, ``/log``, watches) and RBAC denials.
- ``validation``: schemas plus the API server's own rules; ``patches``:
  merge and JSON patches; ``selectors``: label and field selectors.
- ``store``: objects, the global ``resourceVersion``, the watch history;
  ``objects``: server-set metadata, Events, graceful deletion, namespaces.
- ``workloads``: Deployments and their controller, garbage collection.
- ``kubelet``: pods run as local processes, probes (``probes``), the
  processes' env and argv (``pod_env``), pod status (``pod_status``).
- ``services``: ClusterIP/NodePort/LoadBalancer forwarders (``forwarders``),
  endpoints, "DNS" and the service proxy.
- ``resources``: the kinds served, ``Status`` errors, the node.

Usage::

    with FakeKubernetes({"clipper/core:0.4.0": ImageSpec.python()}, workdir=tmp) as kube:
        api = kubernetes.client.CoreV1Api(kube.api_client())
"""

from __future__ import annotations

from clipper_core.testing.process_pods import ImageSpec, ImageTable

from .server import FakeKubernetes

__all__ = ["FakeKubernetes", "ImageSpec", "ImageTable"]
