"""KubernetesContainerManager on the fake API server: what the contract suite
does not cover (several frontends, NodePort/LoadBalancer addresses, admin
token, namespaces, error paths, cleanup, validation of every body sent)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
from clipper_k8s import names
from clipper_k8s.manager import KubernetesContainerManager

from clipper_core.connection import ClipperConnection
from clipper_core.errors import ClipperException, ClusterStartError, ContainerError
from clipper_core.testing.container_manager import wait_for

from .conftest import (
    MODEL_IMAGE,
    FakeKubernetes,
    ImageSpec,
    base_images,
    manager_options,
    model_dir,
    validate_received,
)

pytestmark = pytest.mark.redis

CRASH_IMAGE = "registry.test/crash:1"

#: Kinds (plural, namespaced) the manager may create.
KINDS = (("deployments", True), ("services", True), ("pods", True), ("secrets", True),
         ("namespaces", False))


def cluster_objects(kube: FakeKubernetes, cluster: str) -> list[str]:
    """Every object of any kind labelled with ``cluster``."""
    out = []
    for plural, _ in KINDS:
        for obj in kube.store.list(plural):
            labels = obj["metadata"].get("labels") or {}
            if labels.get(names.CLUSTER) == cluster or labels.get(names.CREATED_BY) == cluster:
                out.append(f"{plural}/{obj['metadata']['name']}")
    return out


def predict(addr: str, app: str, x: list[float]) -> dict[str, Any]:
    resp = httpx.post(f"http://{addr}/{app}/predict", json={"input": x}, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def answered(addr: str, app: str, x: list[float]) -> dict[str, Any] | None:
    resp = predict(addr, app, x)
    return None if resp["default"] else resp


def test_two_frontends_nodeport_token_and_own_namespace(kube: FakeKubernetes) -> None:
    """Each model replica connects to every query frontend (headless service);
    NodePort addresses; an admin token from a Secret; a created namespace that
    stop_all removes with everything else."""
    cluster = "multi"
    options = manager_options(kube, cluster, kubernetes_proxy_addr=None, namespace="clipper-ns",
                              create_namespace_if_not_exists=True, admin_token=True)
    conn = ClipperConnection(KubernetesContainerManager(**options))
    try:
        conn.start_clipper(num_frontend_replicas=2)
        cm = conn.cm
        # NodePort on the node's ExternalIP by default, InternalIP on request
        query_addr = cm.get_query_addr()
        assert query_addr.startswith("127.0.0.2:")
        node_port = int(query_addr.rsplit(":", 1)[1])
        assert 30000 <= node_port <= 32767
        internal = KubernetesContainerManager(**{**options, "useInternalIP": True})
        internal.connect()
        assert internal.get_query_addr() == f"127.0.0.1:{node_port}"
        # the token lives in a Secret; a new manager reads it back
        token = cm.get_admin_token()
        assert token and internal.get_admin_token() == token
        resp = httpx.post(f"http://{cm.get_admin_addr()}/admin/get_all_applications",
                          json={}, timeout=10)
        assert resp.status_code == 401

        conn.deploy_model("m", "1", "doubles", MODEL_IMAGE, num_replicas=1)
        conn.register_application("app", "doubles", "none", 5_000_000)
        conn.link_model_to_app("app", "m")
        # ask each frontend pod directly: each has the one replica connected
        fronts = [r for (ns, _), r in kube.runners.items() if ns == "clipper-ns"
                  and r.pod["metadata"]["labels"].get(names.ROLE) == names.ROLE_QUERY]
        assert len(fronts) == 2
        for runner in fronts:
            addr = f"127.0.0.1:{runner.local_port('http')}"
            resp = wait_for(lambda a=addr: answered(a, "app", [1.0, 2.0]), 30,
                            f"an answer from frontend {runner.name}")
            assert resp["output"] == {"version": "1", "sum": 3.0}
        # and through the NodePort, whichever frontend answers
        for _ in range(4):
            assert predict(query_addr, "app", [2.0])["output"] == {"version": "1", "sum": 2.0}
        (replica,) = cm.list_replicas()
        assert (replica.model_name, replica.model_version, replica.status) == ("m", "1",
                                                                               "running")
    finally:
        conn.stop_all()
    assert cluster_objects(kube, cluster) == []
    assert kube.store.get("namespaces", "", "clipper-ns") is None
    wait_for(lambda: kube.pod_pids() == [], 10, "every pod process to end")
    assert validate_received(kube) >= 8


def test_load_balancer_and_external_redis(kube: FakeKubernetes, tmp_path: Path) -> None:
    """service_type=LoadBalancer gives the ingress address; redis_ip skips the
    in-cluster Redis and the frontends use the external one."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL,
                             cwd=tmp_path)
    try:
        options = manager_options(kube, "lb", kubernetes_proxy_addr=None,
                                  service_type="LoadBalancer", redis_ip="127.0.0.1",
                                  redis_port=port)
        conn = ClipperConnection(KubernetesContainerManager(**options))
        try:
            conn.start_clipper()
            assert not [d for d in kube.store.list("deployments")
                        if d["metadata"]["labels"].get(names.ROLE) == names.ROLE_REDIS]
            addr = conn.get_query_addr()
            host, _, lb_port = addr.rpartition(":")
            assert host.startswith("127.") and host not in ("127.0.0.1", "127.0.0.2")
            assert lb_port == "1337"
            assert httpx.get(f"http://{addr}/healthz", timeout=5).status_code == 200
            conn.register_application("lbapp", "doubles", "none", 1_000_000)
            import redis as redis_client

            keys = redis_client.Redis(port=port).keys("lb*")
            assert keys, "the frontends did not use the external Redis"
        finally:
            conn.stop_all()
    finally:
        redis.terminate()
        redis.wait(10)
    assert cluster_objects(kube, "lb") == []


def test_start_errors(kube: FakeKubernetes) -> None:
    # a namespace that does not exist
    with pytest.raises(ClusterStartError, match="Namespace 'nowhere' does not exist"):
        KubernetesContainerManager(**manager_options(kube, "a", namespace="nowhere")
                                   ).start_clipper()
    # no cluster to connect to
    with pytest.raises(ClipperException, match="No Clipper cluster named 'nobody'"):
        KubernetesContainerManager(**manager_options(kube, "nobody")).connect()
    # a frontend image that cannot be pulled: the error names the Deployment
    cm = KubernetesContainerManager(**manager_options(kube, "badfront", start_timeout=8.0))
    try:
        with pytest.raises(ClusterStartError) as info:
            cm.start_clipper(query_frontend_image="registry.test/no-such-frontend:0")
        assert "Deployment 'query-frontend-at-badfront'" in str(info.value)
        assert "Failed to pull image" in str(info.value)
        # a second start of a cluster whose objects exist is refused
        with pytest.raises(ClusterStartError, match="already runs"):
            cm.start_clipper()
    finally:
        cm.stop_all()
    assert cluster_objects(kube, "badfront") == []


def test_namespaced_rbac_only(kube: FakeKubernetes) -> None:
    """With only the namespaced Role (no cluster-scoped reads), a cluster
    starts and serves through the proxy; a missing rule is a clear error."""
    for verb in ("get", "list", "create", "delete"):
        kube.forbid(verb, "namespaces")
        kube.forbid(verb, "nodes")
    cm = KubernetesContainerManager(**manager_options(kube, "rbac"))
    try:
        cm.start_clipper()
        cm.deploy_model("m", "1", "doubles", MODEL_IMAGE, 1)
        assert httpx.get(f"http://{cm.get_query_addr()}/healthz", timeout=5).status_code == 200
        kube.forbid("patch", "deployments/scale")
        with pytest.raises(ContainerError) as info:
            cm.set_num_replicas("m", "1", "doubles", MODEL_IMAGE, 2)
        assert info.value.status == 403
        assert 'cannot patch resource "deployments/scale"' in str(info.value)
        assert "python -m clipper_k8s.rbac" in str(info.value)
    finally:
        kube.forbidden.clear()
        cm.stop_all()
    assert cluster_objects(kube, "rbac") == []


class TestOneCluster:
    """Model error paths and names on one cluster shared by the class."""

    @pytest.fixture(scope="class")
    def shared(self, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[tuple[FakeKubernetes, KubernetesContainerManager]]:
        tmp = tmp_path_factory.mktemp("k8s-one")
        images = base_images()
        images.add(MODEL_IMAGE, ImageSpec.model(model_dir(tmp)))
        # a model container that dies at once, like one whose model cannot load
        images.add(CRASH_IMAGE, ImageSpec(entrypoint=(
            "python", "-c", "import sys; sys.exit('this model cannot load')")))
        kube = FakeKubernetes(images, workdir=tmp / "kube").start()
        cm = KubernetesContainerManager(**manager_options(kube, "one"))
        try:
            cm.start_clipper()
            yield kube, cm
            cm.stop_all()
            assert cluster_objects(kube, "one") == []
        finally:
            kube.stop()
        assert kube.pod_pids() == []

    def test_model_never_ready_names_deployment_and_events(self, shared: Any) -> None:
        kube, cm = shared
        cm.deploy_timeout = 3.0
        with pytest.raises(ContainerError) as info:
            cm.deploy_model("ghost", "1", "doubles", "registry.test/missing:1", 1)
        text = str(info.value)
        assert "Deployment 'model-ghost-1-at-one'" in text
        assert "did not become ready" in text
        assert "ErrImagePull" in text or "ImagePullBackOff" in text
        assert 'Failed to pull image "registry.test/missing:1"' in text
        assert info.value.deployment == "model-ghost-1-at-one"
        # the failed deployment is still the cluster's, and stopping removes it
        assert cm.get_num_replicas("ghost", "1") == 1
        cm.deploy_timeout = 60.0
        cm.stop_models({"ghost": ["1"]})
        assert cm.get_num_replicas("ghost", "1") == 0

    def test_crashing_model_reports_restarts(self, shared: Any) -> None:
        """A replica whose process dies is restarted in its pod (restarts
        counted); a model that exits while loading never counts as available
        (minReadySeconds) and the error says why."""
        kube, cm = shared
        cm.deploy_timeout = 60.0
        cm.deploy_model("ok", "1", "doubles", MODEL_IMAGE, 1)

        def replica() -> Any:
            (found,) = [r for r in cm.list_replicas() if r.model_name == "ok"]
            return found
        assert replica().restarts == 0
        pid = kube.runners[("default", replica().handle)].containers[0].process.pid
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: replica().restarts == 1, 20, "the restart to be counted")
        wait_for(lambda: replica().status == "running", 20, "the replica to run")
        cm.deploy_timeout = 6.0
        spec = cm.spec
        cm.spec = attrs.evolve(spec, min_ready_seconds=3)
        try:
            with pytest.raises(ContainerError) as info:
                cm.deploy_model("bad", "1", "doubles", CRASH_IMAGE, 1)
        finally:
            cm.spec = spec
            cm.deploy_timeout = 60.0
        assert "model-bad-1-at-one" in str(info.value)
        assert "restarts" in str(info.value) or "CrashLoopBackOff" in str(info.value)
        cm.stop_models({"ok": ["1"], "bad": ["1"]})

    def test_long_names_are_shortened_and_found(self, shared: Any) -> None:
        kube, cm = shared
        name, version = "m" * 60, "v" * 60
        cm.deploy_model(name, version, "doubles", MODEL_IMAGE, 1)
        (dep,) = [d for d in kube.store.list("deployments")
                  if d["metadata"]["labels"].get(names.MODEL_NAME) == name]
        assert len(dep["metadata"]["name"]) <= 63
        assert dep["metadata"]["name"] == names.model("one", name, version)
        other = KubernetesContainerManager(**manager_options(kube, "one"))
        assert other.get_num_replicas(name, version) == 1
        other.set_num_replicas(name, version, "doubles", MODEL_IMAGE, 2)
        assert cm.get_num_replicas(name, version) == 2
        assert len([r for r in cm.list_replicas() if r.model_name == name]) == 2
        paths = cm.get_logs(str(kube.workdir / "logs"))
        assert len(paths) == len(kube.store.list("pods"))
        assert any(Path(p).read_text() for p in paths)
        cm.stop_all_model_containers()
        assert cm.list_replicas() == []


def test_unreachable_api_server_is_a_container_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cm = KubernetesContainerManager(cluster_name="x", api_host=f"http://127.0.0.1:{port}",
                                    progress=lambda _l: None)
    started = time.monotonic()
    with pytest.raises(ContainerError, match="cannot talk to the Kubernetes API server"):
        cm.connect()
    assert time.monotonic() - started < 30
