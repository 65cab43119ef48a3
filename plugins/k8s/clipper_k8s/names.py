"""Names and labels of every object the Kubernetes manager creates.

Objects are found by label, never by guessing names, so a name shortened to
fit Kubernetes' limits is still found by a new manager instance.
"""

from __future__ import annotations

import hashlib

from clipper_core.models import validate_name

#: Label keys.  Values are DNS-1123 labels (cluster, model name and version).
CLUSTER = "clipper.ai/cluster"
ROLE = "clipper.ai/role"
MODEL_NAME = "clipper.ai/model-name"
MODEL_VERSION = "clipper.ai/model-version"
MANAGED_BY = "app.kubernetes.io/managed-by"
#: On a namespace the manager created (so ``stop_all`` may delete it).
CREATED_BY = "clipper.ai/created-by-cluster"

ROLE_REDIS = "redis"
ROLE_MGMT = "management-frontend"
ROLE_QUERY = "query-frontend"
ROLE_MODEL = "model"

#: Longest Kubernetes object name we create (DNS-1123 label).
MAX_NAME = 63


def object_name(*parts: str) -> str:
    """Join ``parts`` with '-'; longer than 63 characters, keep a prefix and
    append a hash of the full name, so distinct inputs stay distinct."""
    full = "-".join(parts)
    if len(full) <= MAX_NAME:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:10]
    prefix = full[: MAX_NAME - len(digest) - 1].rstrip("-")
    return f"{prefix}-{digest}"


def redis(cluster: str) -> str:
    return object_name("redis-at", cluster)


def mgmt(cluster: str) -> str:
    return object_name("mgmt-frontend-at", cluster)


def query(cluster: str) -> str:
    return object_name("query-frontend-at", cluster)


def query_rpc(cluster: str) -> str:
    """The headless service model replicas resolve to every query frontend pod."""
    return object_name("query-rpc-at", cluster)


def admin_secret(cluster: str) -> str:
    return object_name("admin-token-at", cluster)


def model(cluster: str, name: str, version: str) -> str:
    return object_name("model", name, version, "at", cluster)


def model_secret(cluster: str, name: str, version: str) -> str:
    """The Secret holding the CURVE key of the replicas of name:version."""
    return object_name("rpc-key", name, version, "at", cluster)


def labels(cluster: str, role: str, **extra: str) -> dict[str, str]:
    """The labels of an object of ``role`` in ``cluster``."""
    out = {MANAGED_BY: "clipper", CLUSTER: cluster, ROLE: role}
    out.update(extra)
    return out


def model_labels(cluster: str, name: str, version: str) -> dict[str, str]:
    return labels(cluster, ROLE_MODEL, **{MODEL_NAME: name, MODEL_VERSION: version})


def selector(values: dict[str, str]) -> str:
    """A label selector string matching every label in ``values``."""
    return ",".join(f"{k}={v}" for k, v in sorted(values.items()) if k != MANAGED_BY)


def cluster_name(value: object) -> str:
    """Validate a cluster name (it is a label value and part of object names)."""
    return validate_name("cluster name", value)
