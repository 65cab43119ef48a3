"""Desired state restored on Kubernetes is the controllers' work: a deleted
pod of any Deployment (model replica, query frontend, management frontend)
is recreated by the fake API server's Deployment controller, and serving
comes back without the manager doing anything.

What the fake lacks: cluster DNS.  It resolves a replica's ``CLIPPER_IP``
(the query frontends' headless service) to local addresses once, when the
pod starts, where the runtime re-resolves the name every 10 s on a real
cluster; so a replica started before a query frontend pod was recreated
never finds the new one.  For that pod the test checks the recreation and
the frontend answering through its Service, not a model's answer."""

from __future__ import annotations

import itertools
import time
from typing import Any

import httpx
import pytest
from clipper_k8s.manager import KubernetesContainerManager

from clipper_core.connection import ClipperConnection
from clipper_core.errors import ClipperException
from clipper_core.testing.container_manager import wait_for

from .conftest import MODEL_IMAGE, FakeKubernetes, manager_options

pytestmark = pytest.mark.redis

_inputs = itertools.count(1)


def answered(conn: ClipperConnection) -> bool:
    """A new input (never cached) answered by the model itself."""
    x = float(next(_inputs))
    try:
        resp = httpx.post(f"http://{conn.get_query_addr()}/app/predict", json={"input": [x]},
                          timeout=3)
    except httpx.HTTPError:
        return False
    return resp.status_code == 200 and not resp.json()["default"]


def frontend_answers(conn: ClipperConnection) -> bool:
    try:
        return httpx.get(f"http://{conn.get_query_addr()}/healthz", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def admin_answers(conn: ClipperConnection) -> bool:
    try:
        return "app" in conn.get_all_apps()
    except ClipperException:
        return False


def pods(kube: FakeKubernetes, prefix: str) -> list[Any]:
    from kubernetes import client

    core = client.CoreV1Api(kube.api_client())
    return [p for p in core.list_namespaced_pod("default").items
            if p.metadata.name.startswith(prefix) and p.metadata.deletion_timestamp is None]


def test_deleted_pods_are_recreated_by_their_deployments(kube: FakeKubernetes) -> None:
    from kubernetes import client

    conn = ClipperConnection(KubernetesContainerManager(**manager_options(kube, "rec")))
    core = client.CoreV1Api(kube.api_client())
    try:
        conn.start_clipper()
        conn.deploy_model("m", "1", "doubles", MODEL_IMAGE, num_replicas=1)
        conn.register_application("app", "doubles", "none", 5_000_000)
        conn.link_model_to_app("app", "m")
        wait_for(lambda: answered(conn), 30, "the model to answer")
        for prefix, back in (("model-m-1", answered), ("mgmt-frontend", admin_answers),
                             ("query-frontend", frontend_answers)):
            (victim,) = pods(kube, prefix)
            core.delete_namespaced_pod(victim.metadata.name, "default",
                                       grace_period_seconds=0)
            start = time.monotonic()
            (new,) = wait_for(lambda p=prefix, v=victim: [
                x for x in pods(kube, p) if x.metadata.name != v.metadata.name], 30,
                f"a new {prefix} pod")
            wait_for(lambda b=back: b(conn), 30, f"serving after deleting {prefix}")
            print(f"deleted pod {victim.metadata.name}: {new.metadata.name} serving after "
                  f"{time.monotonic() - start:.1f}s")
        assert conn.get_num_replicas("m", "1") == 1
    finally:
        conn.stop_all()
