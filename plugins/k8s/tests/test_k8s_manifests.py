"""Every manifest the manager creates, validated against the real Kubernetes
schemas (kubernetes-validate, strict) for current versions, and the naming
and RBAC helpers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from clipper_k8s import manifests, names
from clipper_k8s.manager import (
    MGMT_FRONTEND_IMAGE,
    QUERY_FRONTEND_IMAGE,
    KubernetesContainerManager,
)
from clipper_k8s.rbac import rbac_manifests, rbac_yaml

from clipper_core.errors import ValidationError

from .conftest import FakeKubernetes

#: An older supported release and the newest the validator knows.
VERSIONS = sorted({"1.30.0", kubernetes_validate.latest_version()})

SPECS = {
    "defaults": manifests.ClusterSpec(cluster="default"),
    "external-redis-lb": manifests.ClusterSpec(cluster="prod-1", namespace="serving",
                                               redis_ip="10.0.0.5", redis_port=6380,
                                               service_type="LoadBalancer"),
    "token-proxy": manifests.ClusterSpec(cluster="c" * 63, service_type="ClusterIP",
                                         service_account="clipper-manager",
                                         admin_secret=names.admin_secret("c" * 63),
                                         min_ready_seconds=0),
}


def all_manifests(spec: manifests.ClusterSpec) -> list[dict[str, Any]]:
    out = manifests.cluster_manifests(spec, QUERY_FRONTEND_IMAGE, MGMT_FRONTEND_IMAGE,
                                      33554432, 3)
    out.append(manifests.model_deployment(spec, "m" * 63, "v" * 63, "doubles",
                                          "registry.example.com:5000/team/model:1", 2))
    out.append(manifests.model_deployment(spec, "sum", "1", "strings", "sum:1", 0))
    out.append(manifests.namespace(spec.namespace, spec.cluster))
    if spec.admin_secret:
        out.append(manifests.admin_secret(spec, "s3cret"))
    return out


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_every_manifest_is_valid(spec_name: str, version: str) -> None:
    for body in all_manifests(SPECS[spec_name]):
        kubernetes_validate.validate(body, version, strict=True)


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_manifests_pass_the_api_servers_own_rules(spec_name: str, tmp_path: Path) -> None:
    """Names, labels, selectors, ports: what the API server checks beyond the schema
    (the fake applies the same rules to every body it receives)."""
    from clipper_k8s.testing.resources import BY_PLURAL as _BY_PLURAL

    kube = FakeKubernetes({}, workdir=tmp_path)  # not started: only its validation
    plural = {"Deployment": "deployments", "Service": "services", "Secret": "secrets",
              "Namespace": "namespaces"}
    for body in all_manifests(SPECS[spec_name]):
        kube.validate_body(_BY_PLURAL[plural[body["kind"]]], body)
        assert len(body["metadata"]["name"]) <= 63


def test_invalid_manifests_are_caught() -> None:
    """The validation is not vacuous: a wrong field or a broken selector fails."""
    body = manifests.query_deployment(SPECS["defaults"], QUERY_FRONTEND_IMAGE, 1, 1)
    body["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pathh"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(body, VERSIONS[-1], strict=True)
    svc = manifests.query_service(SPECS["defaults"])
    svc["spec"]["ports"][0]["port"] = "1337"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(svc, VERSIONS[-1], strict=True)


def test_store_url_and_commands() -> None:
    spec = SPECS["defaults"]
    assert spec.store_url == "redis://redis-at-default:6379/0?prefix=default"
    assert SPECS["external-redis-lb"].store_url == "redis://10.0.0.5:6380/0?prefix=prod-1"
    query = manifests.query_deployment(spec, QUERY_FRONTEND_IMAGE, 1024, 2)
    container = query["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["--store", spec.store_url, "--host", "0.0.0.0", "--port",
                                 "1337", "--rpc-host", "0.0.0.0", "--rpc-port", "7000",
                                 "--cache-size", "1024", "--frontend-id", "$(POD_NAME)",
                                 "--rpc-auth", "none"]  # no Secret to hold RPC keys
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]
    assert query["spec"]["replicas"] == 2
    mgmt = manifests.mgmt_deployment(spec, MGMT_FRONTEND_IMAGE)
    probe = mgmt["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert probe["httpGet"]["path"] == "/admin/ping"
    rpc = manifests.query_rpc_service(spec)
    assert rpc["spec"]["clusterIP"] == "None"
    model = manifests.model_deployment(spec, "sum", "2", "doubles", "sum:2", 3)
    env = {e["name"]: e.get("value", e.get("valueFrom"))
           for e in model["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CLIPPER_IP"] == rpc["metadata"]["name"]
    assert env["CLIPPER_PORT"] == "7000"
    assert env["CLIPPER_MODEL_NAME"] == "sum" and env["CLIPPER_MODEL_VERSION"] == "2"
    assert env["CLIPPER_REPLICA_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    for body in (query, mgmt, rpc, model):
        assert body["metadata"]["labels"][names.CLUSTER] == "default"


def test_object_names_fit_and_stay_distinct() -> None:
    short = names.model("c", "sum", "1")
    assert short == "model-sum-1-at-c"
    a = names.model("cluster", "m" * 63, "v" * 63)
    b = names.model("cluster", "m" * 63, "v" * 62 + "w")
    assert a != b
    for name in (a, b, names.query_rpc("x" * 63), names.mgmt("y" * 63)):
        assert len(name) <= 63
        assert name[0].isalpha() and name[-1].isalnum()


def test_manager_rejects_bad_options() -> None:
    with pytest.raises(ValidationError, match="cluster name"):
        KubernetesContainerManager(cluster_name="Bad_Name")
    with pytest.raises(ValidationError, match="service_type"):
        KubernetesContainerManager(service_type="Ingress")
    with pytest.raises(ValidationError, match="kubernetes_proxy_addr"):
        KubernetesContainerManager(service_type="ClusterIP")


def test_importing_the_plugin_does_not_import_the_client() -> None:
    code = ("import sys, clipper_k8s, clipper_k8s.manager; "
            "assert 'kubernetes' not in sys.modules, 'kubernetes imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- RBAC -------------------------------------------------------------------------


@pytest.mark.parametrize("cluster_wide", [False, True])
def test_rbac_manifests_are_valid(cluster_wide: bool) -> None:
    docs = rbac_manifests("serving", "clipper-sa", cluster_wide)
    kinds = [d["kind"] for d in docs]
    assert kinds[:3] == ["ServiceAccount", "Role", "RoleBinding"]
    assert ("ClusterRole" in kinds) == cluster_wide
    for version in VERSIONS:
        for doc in docs:
            kubernetes_validate.validate(doc, version, strict=True)
    role = docs[1]
    granted = {(g, r) for rule in role["rules"] for g in rule["apiGroups"]
               for r in rule["resources"]}
    for needed in (("apps", "deployments"), ("apps", "deployments/scale"), ("", "pods"),
                   ("", "pods/log"), ("", "services"), ("", "events"), ("", "secrets")):
        assert needed in granted


def test_rbac_file_and_command_match_the_function() -> None:
    shipped = Path(__file__).resolve().parents[1] / "clipper_k8s" / "rbac.yaml"
    assert shipped.read_text() == rbac_yaml()
    out = subprocess.run([sys.executable, "-m", "clipper_k8s.rbac", "--namespace", "serving",
                          "--cluster-wide"], check=True, capture_output=True, text=True).stdout
    assert list(yaml.safe_load_all(out)) == rbac_manifests("serving", cluster_wide=True)


def test_rbac_applies_to_the_api_server(tmp_path: Path) -> None:
    """The namespaced RBAC objects are accepted by the (fake) API server."""
    import kubernetes

    with FakeKubernetes({}, workdir=tmp_path) as kube:
        api = kube.api_client()
        core = kubernetes.client.CoreV1Api(api)
        rbac = kubernetes.client.RbacAuthorizationV1Api(api)
        sa, role, binding = rbac_manifests("default")
        core.create_namespaced_service_account("default", sa)
        rbac.create_namespaced_role("default", role)
        rbac.create_namespaced_role_binding("default", binding)
        assert rbac.read_namespaced_role_binding(binding["metadata"]["name"],
                                                 "default").role_ref.name == role["metadata"][
                                                     "name"]
