"""clipper_k8s.api: client configuration and the mapping of the Kubernetes
client's errors (real ones, answered by the fake API server) to clipper-core's."""

from __future__ import annotations

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
    from clipper_core.errors import PluginError

    def no_docker(kind: str, name: str, pm: object = None) -> None:
        raise PluginError(f"Unknown model registry {name!r}. Installed: directory")

    monkeypatch.setattr("clipper_core.plugins.get_backend", no_docker)
    cm = KubernetesContainerManager(api_host="http://127.0.0.1:9")
    with pytest.raises(BuildError, match="pip install clipper-docker"):
        cm.build_model("m", "1", str(tmp_path), "default")


def test_build_model_uses_the_docker_registry_backend_by_name(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[tuple[object, ...]] = []

    class Builder:
        def __init__(self, **options: object) -> None:
            calls.append(("init", options))

        def build_model(self, *args: object) -> str:
            calls.append(("build", *args))
            return "reg.test/m:1"

    class Backend:
        plugin = "fake"
        factory = Builder

    monkeypatch.setattr("clipper_core.plugins.get_backend", lambda kind, name, pm=None: (
        Backend if (kind, name) == ("registries", "docker") else None))
    cm = KubernetesContainerManager(api_host="http://127.0.0.1:9",
                                    container_registry="reg.test")
    assert cm.build_model("m", "1", str(tmp_path), "default") == "reg.test/m:1"
    assert calls == [("init", {"container_registry": "reg.test"}),
                     ("build", "m", "1", str(tmp_path), "default", "reg.test", None)]


def test_the_plugin_never_imports_clipper_docker() -> None:
    import clipper_k8s

    root = Path(clipper_k8s.__file__).parent
    for path in root.rglob("*.py"):
        assert "clipper_docker" not in path.read_text(), path


def test_clippers_parameters_in_clippers_order() -> None:
    from clipper_core.launch.compat import reset_warnings

    cm = KubernetesContainerManager("pos", "127.0.0.1:8001", "10.0.0.5", 6380, True, "ns1",
                                    {"management": "LoadBalancer", "query": "NodePort"}, True,
                                    api_host="http://127.0.0.1:9")
    assert (cm.cluster_name, cm.kubernetes_proxy_addr, cm.namespace) == (
        "pos", "127.0.0.1:8001", "ns1")
    assert (cm.spec.redis_ip, cm.spec.redis_port, cm.use_internal_ip) == ("10.0.0.5", 6380, True)
    assert cm.create_namespace_if_not_exists
    assert (cm.spec.mgmt_service_type, cm.spec.query_service_type) == ("LoadBalancer",
                                                                       "NodePort")
    assert KubernetesContainerManager(api_host="http://x").cluster_name == "default-cluster"
    reset_warnings()
    with pytest.warns(UserWarning, match="metric"):
        KubernetesContainerManager(service_types={"metric": "LoadBalancer"}, api_host="http://x")
    with pytest.raises(ValidationError, match="service_types"):
        KubernetesContainerManager(service_types={"nope": "NodePort"}, api_host="http://x")
    with pytest.raises(ValidationError, match="service type"):
        KubernetesContainerManager(service_types={"query": "ExternalName"}, api_host="http://x")


def test_entry_point_offers_the_manager() -> None:
    from clipper_core.interfaces import ContainerManager
    from clipper_core.plugins import build_plugin_manager, get_backend

    backend = get_backend("container_managers", "k8s", build_plugin_manager(only=["k8s"]))
    assert backend.plugin == "k8s"
    cm = backend.factory(cluster_name="ep", api_host="http://127.0.0.1:9")
    assert isinstance(cm, KubernetesContainerManager)
    assert isinstance(cm, ContainerManager)
    assert cm.cluster_name == "ep"
