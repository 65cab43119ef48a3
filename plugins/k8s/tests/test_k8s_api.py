"""clipper_k8s.api: client configuration and the mapping of the Kubernetes
client's errors (real ones, answered by the fake API server) to clipper-core's."""

from __future__ import annotations

import sys
from pathlib import Path

import kubernetes
import pytest
from clipper_k8s.api import api_errors, build_api_client
from clipper_k8s.manager import KubernetesContainerManager

from clipper_core.errors import (
    BuildError,
    ClusterStartError,
    ConflictError,
    ContainerError,
    NotFoundError,
    ValidationError,
)

from .conftest import FakeKubernetes


def test_api_errors_map_statuses(tmp_path: Path) -> None:
    with FakeKubernetes({}, workdir=tmp_path) as kube:
        core = kubernetes.client.CoreV1Api(kube.api_client())
        with pytest.raises(NotFoundError, match='reading it failed: services "nope" not found'):
            with api_errors("reading it"):
                core.read_namespaced_service("nope", "default")
        svc = {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}
        core.create_namespaced_service("default", svc)
        with pytest.raises(ConflictError, match="already exists"):
            with api_errors("creating it"):
                core.create_namespaced_service("default", svc)
        with pytest.raises(ValidationError, match="is invalid"):
            with api_errors("creating it"):
                core.create_namespaced_service("default", {**svc, "metadata": {"name": "S_1"}})
        core.create_namespace({"metadata": {"name": "going"}})
        core.create_namespaced_service("going", svc)
        core.delete_namespace("going")
        with pytest.raises(ClusterStartError, match="being terminated.*RBAC"):
            with api_errors("creating it", ClusterStartError):
                core.create_namespaced_service("going", svc)


def test_build_api_client_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    given = object()
    assert build_api_client(api_client=given) is given
    client = build_api_client(api_host="http://127.0.0.1:9/")
    assert client.configuration.host == "http://127.0.0.1:9"
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("""\
apiVersion: v1
kind: Config
clusters:
- name: c1
  cluster: {server: "https://10.1.2.3:6443", insecure-skip-tls-verify: true}
users:
- name: u1
  user: {token: abc}
contexts:
- name: ctx1
  context: {cluster: c1, user: u1}
current-context: ctx1
""")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    client = build_api_client(kubeconfig=str(kubeconfig), context="ctx1")
    assert client.configuration.host == "https://10.1.2.3:6443"
    with pytest.raises(ContainerError, match="Cannot configure the Kubernetes client"):
        build_api_client(kubeconfig=str(tmp_path / "missing"))
    with pytest.raises(ContainerError, match="in-cluster service account"):
        build_api_client(in_cluster=True)


def test_build_model_without_docker_plugin_is_a_build_error(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "clipper_docker.manager", None)
    cm = KubernetesContainerManager(api_host="http://127.0.0.1:9")
    with pytest.raises(BuildError, match="clipper-docker plugin"):
        cm.build_model("m", "1", str(tmp_path), "default")


def test_entry_point_offers_the_manager() -> None:
    from clipper_core.interfaces import ContainerManager
    from clipper_core.plugins import build_plugin_manager, get_backend

    backend = get_backend("container_managers", "k8s", build_plugin_manager(only=["k8s"]))
    assert backend.plugin == "k8s"
    cm = backend.factory(cluster_name="ep", api_host="http://127.0.0.1:9")
    assert isinstance(cm, KubernetesContainerManager)
    assert isinstance(cm, ContainerManager)
    assert cm.cluster_name == "ep"
