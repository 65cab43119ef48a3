"""RBAC for the Kubernetes manager: what a cluster admin applies once.

The manager needs, in its namespace: Deployments (and their scale), Services,
Pods and their logs, Events, Secrets (the admin token), and the service proxy
when ``kubernetes_proxy_addr`` is used.  Cluster-scoped reads (nodes, for
NodePort addresses) and namespace creation need a ClusterRole, produced only
with ``cluster_wide=True``.

``python -m clipper_k8s.rbac [--namespace NS] [--service-account NAME]
[--cluster-wide]`` prints the manifests as YAML (``| kubectl apply -f -``);
``rbac.yaml`` next to this module is the output for the defaults.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

DEFAULT_SERVICE_ACCOUNT = "clipper-manager"
_VERBS = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]


def rbac_manifests(namespace: str = "default",
                   service_account: str = DEFAULT_SERVICE_ACCOUNT,
                   cluster_wide: bool = False) -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding (plus ClusterRole and
    ClusterRoleBinding when ``cluster_wide``) letting ``service_account``
    run Clipper clusters in ``namespace``."""
    labels = {"app.kubernetes.io/managed-by": "clipper"}
    meta = {"namespace": namespace, "labels": labels}
    out: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": service_account, **meta}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": service_account, **meta},
         "rules": [
             {"apiGroups": [""], "resources": ["pods", "pods/log", "services", "endpoints",
                                               "events", "secrets"], "verbs": list(_VERBS)},
             {"apiGroups": [""], "resources": ["services/proxy"],
              "verbs": ["get", "create", "update", "patch", "delete"]},
             {"apiGroups": ["apps"], "resources": ["deployments", "deployments/scale"],
              "verbs": list(_VERBS)}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": service_account, **meta},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                     "name": service_account},
         "subjects": [{"kind": "ServiceAccount", "name": service_account,
                       "namespace": namespace}]},
    ]
    if cluster_wide:
        name = f"{service_account}-{namespace}"
        out += [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": name, "labels": labels},
             "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]},
                       {"apiGroups": [""], "resources": ["namespaces"],
                        "verbs": ["get", "list", "create", "delete"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": name, "labels": labels},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                         "name": name},
             "subjects": [{"kind": "ServiceAccount", "name": service_account,
                           "namespace": namespace}]},
        ]
    return out


def rbac_yaml(namespace: str = "default", service_account: str = DEFAULT_SERVICE_ACCOUNT,
              cluster_wide: bool = False) -> str:
    """:func:`rbac_manifests` as one multi-document YAML string."""
    import yaml

    return yaml.safe_dump_all(rbac_manifests(namespace, service_account, cluster_wide),
                              sort_keys=False, explicit_start=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clipper_k8s.rbac",
                                     description="Print the RBAC manifests the Clipper "
                                     "Kubernetes manager needs, as YAML for kubectl apply.")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--service-account", default=DEFAULT_SERVICE_ACCOUNT)
    parser.add_argument("--cluster-wide", action="store_true",
                        help="also a ClusterRole to read nodes (NodePort addresses) and "
                        "create namespaces")
    args = parser.parse_args(argv)
    sys.stdout.write(rbac_yaml(args.namespace, args.service_account, args.cluster_wide))
    return 0


if __name__ == "__main__":
    sys.exit(main())
