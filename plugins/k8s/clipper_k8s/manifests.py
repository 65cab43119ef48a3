"""The manifests (plain JSON dicts) of every object the manager creates.

Pure functions of the cluster's settings, so tests validate exactly what is
sent against the real Kubernetes schemas.  What each program runs (its
arguments, environment and secrets) comes from :mod:`clipper_core.launch`;
the project's frontend images have the programs as their ENTRYPOINT, so
containers only pass ``args``.  Secrets come from a Secret object (one key
per :class:`clipper_core.launch.Secret`, named by its ``file_name``), never
from ``args``: the cluster's Secret holds the admin token, the Redis password
and the CURVE server key pair and replica seed; each model version's replica
key pair has its own Secret (:func:`model_secret`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from clipper_core import curve, launch

from . import names

Manifest = dict[str, Any]

QUERY_PORT = launch.QUERY_PORT
MGMT_PORT = launch.MANAGEMENT_PORT
RPC_PORT = launch.RPC_PORT
REDIS_PORT = 6379

SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
#: The key of the cluster's Secret holding the server's public CURVE key
#: (no secret, but replicas read it from there, so manifests need no value).
RPC_SERVER_KEY = "rpc_server_key"
#: Stands for the cluster's keys where only their names matter (the values
#: are in the Secret).
_KEYS_IN_SECRET = curve.ClusterKeys(curve.KeyPair("in-secret", "in-secret"), "in-secret")

#: Resource requests per role (cpu, memory).
DEFAULT_REQUESTS: dict[str, dict[str, str]] = {
    names.ROLE_REDIS: {"cpu": "100m", "memory": "128Mi"},
    names.ROLE_MGMT: {"cpu": "100m", "memory": "128Mi"},
    names.ROLE_QUERY: {"cpu": "250m", "memory": "256Mi"},
    names.ROLE_MODEL: {"cpu": "100m", "memory": "256Mi"},
}


@attrs.frozen(kw_only=True)
class ClusterSpec:
    """What a cluster's manifests depend on."""

    cluster: str
    namespace: str = "default"
    #: External Redis host; None = the manager runs Redis.
    redis_ip: str | None = None
    redis_port: int = REDIS_PORT
    redis_image: str = "redis:7"
    #: Type of the query and management services.
    service_type: str = "NodePort"
    #: Per-service overrides (Clipper's ``service_types``); None = ``service_type``.
    mgmt_service_type: str | None = None
    query_service_type: str | None = None
    service_account: str | None = None
    image_pull_policy: str = "IfNotPresent"
    requests: dict[str, dict[str, str]] = attrs.field(factory=lambda: dict(DEFAULT_REQUESTS))
    #: Seconds a model replica must run before it counts as available.
    min_ready_seconds: int = 2
    #: Name of the Secret holding the cluster's secrets (admin token, Redis
    #: password); None = no Secret.
    admin_secret: str | None = None
    #: Whether the management frontend requires the admin token (in the Secret).
    admin_token: bool = True
    #: Whether replicas authenticate with CURVE keys (in the Secret; False:
    #: ``--rpc-auth none``, plain RPC v3 for Clipper's model containers).
    rpc_keys: bool = True

    @property
    def has_rpc_keys(self) -> bool:
        """CURVE on: keys wanted and a Secret to hold them."""
        return self.rpc_keys and self.admin_secret is not None

    @property
    def redis_host(self) -> str:
        return self.redis_ip or names.redis(self.cluster)

    @property
    def store_url(self) -> str:
        """The state store URL every frontend gets."""
        return f"redis://{self.redis_host}:{self.redis_port}/0?prefix={self.cluster}"

    def labels(self, role: str, **extra: str) -> dict[str, str]:
        return names.labels(self.cluster, role, **extra)


def _metadata(spec: ClusterSpec, name: str, labels: dict[str, str]) -> Manifest:
    return {"name": name, "namespace": spec.namespace, "labels": dict(labels)}


def _deployment(spec: ClusterSpec, name: str, labels: dict[str, str], container: Manifest,
                replicas: int, grace: int = 10) -> Manifest:
    pod_spec: Manifest = {"containers": [container], "terminationGracePeriodSeconds": grace,
                          "restartPolicy": "Always"}
    if spec.service_account:
        pod_spec["serviceAccountName"] = spec.service_account
    selector = {k: v for k, v in labels.items() if k != names.MANAGED_BY}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": _metadata(spec, name, labels),
            "spec": {"replicas": replicas, "selector": {"matchLabels": selector},
                     "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec}}}


def _container(spec: ClusterSpec, role: str, name: str, image: str, **fields: Any) -> Manifest:
    return {"name": name, "image": image, "imagePullPolicy": spec.image_pull_policy,
            "resources": {"requests": dict(spec.requests[role])}, **fields}


def _http_probe(path: str, port: str, *, delay: int, period: int, failures: int) -> Manifest:
    return {"httpGet": {"path": path, "port": port}, "initialDelaySeconds": delay,
            "periodSeconds": period, "timeoutSeconds": 2, "failureThreshold": failures}


def _tcp_probe(port: str, *, delay: int, period: int, failures: int) -> Manifest:
    return {"tcpSocket": {"port": port}, "initialDelaySeconds": delay,
            "periodSeconds": period, "timeoutSeconds": 2, "failureThreshold": failures}


def _service(spec: ClusterSpec, name: str, role: str, ports: list[Manifest],
             type_: str = "ClusterIP", headless: bool = False) -> Manifest:
    selector = {k: v for k, v in spec.labels(role).items() if k != names.MANAGED_BY}
    body: Manifest = {"selector": selector, "ports": ports}
    if headless:
        body["clusterIP"] = "None"
    else:
        body["type"] = type_
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": _metadata(spec, name, spec.labels(role)), "spec": body}


# -- Redis -------------------------------------------------------------------


def redis_deployment(spec: ClusterSpec) -> Manifest:
    """The cluster's state store: Redis with its append-only file on a volume
    (it survives a container restart), protected mode, and the password of
    the cluster's Secret (:class:`clipper_core.launch.RedisServer`)."""
    # the append-only file goes to the working directory, the volume's mount
    server = launch.RedisServer(port=REDIS_PORT, data_dir=".")
    env = [{"name": s.env, "valueFrom": {"secretKeyRef": {
        "name": spec.admin_secret, "key": s.file_name}}}
        for s in _secrets(spec).for_role(launch.ROLE_STORE)]
    container = _container(
        spec, names.ROLE_REDIS, "redis", spec.redis_image, args=server.command(), env=env,
        ports=[{"name": "redis", "containerPort": REDIS_PORT}],
        volumeMounts=[{"name": "redis-data", "mountPath": launch.REDIS_DATA_DIR}],
        workingDir=launch.REDIS_DATA_DIR,
        readinessProbe=_tcp_probe("redis", delay=1, period=2, failures=3),
        livenessProbe=_tcp_probe("redis", delay=5, period=10, failures=3))
    body = _deployment(spec, names.redis(spec.cluster), spec.labels(names.ROLE_REDIS),
                       container, 1)
    body["spec"]["template"]["spec"]["volumes"] = [{"name": "redis-data", "emptyDir": {}}]
    return body


def redis_service(spec: ClusterSpec) -> Manifest:
    return _service(spec, names.redis(spec.cluster), names.ROLE_REDIS,
                    [{"name": "redis", "port": spec.redis_port, "targetPort": "redis"}])


# -- frontends -------------------------------------------------------------------


def _secret_env(spec: ClusterSpec, process: launch.ProcessSpec) -> list[Manifest]:
    """The process's secrets as environment variables read from the Secret."""
    return [{"name": secret.env, "valueFrom": {"secretKeyRef": {
        "name": spec.admin_secret, "key": secret.file_name}}} for secret in process.secrets]


def _secrets(spec: ClusterSpec) -> launch.ClusterSecrets:
    """Which secrets exist (their values live in the Secret, not here)."""
    return launch.ClusterSecrets(
        admin_token="in-secret" if spec.admin_secret and spec.admin_token else None,
        store_password="in-secret" if spec.admin_secret and spec.redis_ip is None else None,
        rpc_keys=_KEYS_IN_SECRET if spec.has_rpc_keys else None)


def mgmt_deployment(spec: ClusterSpec, image: str) -> Manifest:
    """The management frontend (one replica)."""
    process = launch.management_process(store_url=spec.store_url, port=MGMT_PORT,
                                        secrets=_secrets(spec))
    assert process.ready is not None
    if process.ready.needs_token:  # the probe cannot send the token: probe the socket
        readiness = _tcp_probe("mgmt", delay=1, period=2, failures=3)
    else:
        readiness = _http_probe(process.ready.path, "mgmt", delay=1, period=2, failures=3)
    container = _container(
        spec, names.ROLE_MGMT, "management-frontend", image, args=list(process.args),
        ports=[{"name": "mgmt", "containerPort": MGMT_PORT}],
        readinessProbe=readiness,
        livenessProbe=_tcp_probe("mgmt", delay=10, period=10, failures=3))
    env = [{"name": k, "value": v} for k, v in process.env.items()] + _secret_env(spec, process)
    if env:
        container["env"] = env
    return _deployment(spec, names.mgmt(spec.cluster), spec.labels(names.ROLE_MGMT),
                       container, 1)


def mgmt_service(spec: ClusterSpec) -> Manifest:
    return _service(spec, names.mgmt(spec.cluster), names.ROLE_MGMT,
                    [{"name": "mgmt", "port": MGMT_PORT, "targetPort": "mgmt"}],
                    type_=spec.mgmt_service_type or spec.service_type)


def query_deployment(spec: ClusterSpec, image: str, cache_size: int, replicas: int) -> Manifest:
    """``replicas`` query frontends; each is its own frontend id (the pod name)."""
    process = launch.query_process(store_url=spec.store_url, frontend_id="$(POD_NAME)",
                                   port=QUERY_PORT, rpc_port=RPC_PORT, cache_size=cache_size,
                                   secrets=_secrets(spec))
    container = _container(
        spec, names.ROLE_QUERY, "query-frontend", image, args=list(process.args),
        env=[{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
             *_secret_env(spec, process)],
        ports=[{"name": "http", "containerPort": QUERY_PORT},
               {"name": "rpc", "containerPort": RPC_PORT}],
        readinessProbe=_http_probe("/healthz", "http", delay=1, period=2, failures=3),
        livenessProbe=_http_probe("/healthz", "http", delay=10, period=10, failures=3))
    return _deployment(spec, names.query(spec.cluster), spec.labels(names.ROLE_QUERY),
                       container, replicas)


def query_service(spec: ClusterSpec) -> Manifest:
    """Where clients send queries (and read ``/metrics``)."""
    return _service(spec, names.query(spec.cluster), names.ROLE_QUERY,
                    [{"name": "http", "port": QUERY_PORT, "targetPort": "http"}],
                    type_=spec.query_service_type or spec.service_type)


def query_rpc_service(spec: ClusterSpec) -> Manifest:
    """Headless: the name resolves to every query frontend pod, and each model
    replica connects to all of them."""
    return _service(spec, names.query_rpc(spec.cluster), names.ROLE_QUERY,
                    [{"name": "rpc", "port": RPC_PORT, "targetPort": "rpc"}], headless=True)


# -- models --------------------------------------------------------------------


def model_deployment(spec: ClusterSpec, name: str, version: str, input_type: str, image: str,
                     replicas: int) -> Manifest:
    """``replicas`` replicas of one model version; each replica's id is its pod
    name.  With CURVE keys, the server's public key comes from the cluster's
    Secret and the version's key pair from its own (:func:`model_secret`)."""
    labels = names.model_labels(spec.cluster, name, version)
    process = launch.replica_process(
        name=name, version=version, input_type=input_type, model_path=None,
        frontends=launch.RpcTargets(host=names.query_rpc(spec.cluster), port=RPC_PORT))
    env: list[Manifest] = [{"name": k, "value": v} for k, v in process.env.items()]
    env.append({"name": "CLIPPER_REPLICA_ID",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    if spec.has_rpc_keys:
        env.append(_key_ref(curve.SERVER_KEY_ENV, spec.admin_secret, RPC_SERVER_KEY))
        env += [_key_ref(s.env, names.model_secret(spec.cluster, name, version), s.file_name)
                for s in _secrets(spec).for_replica(name, version)]
    container = _container(spec, names.ROLE_MODEL, "model", image, env=env)
    body = _deployment(spec, names.model(spec.cluster, name, version), labels, container,
                       replicas)
    if spec.min_ready_seconds:
        body["spec"]["minReadySeconds"] = spec.min_ready_seconds
    return body


# -- namespace, secret ----------------------------------------------------------


def _key_ref(env: str, secret: str | None, key: str) -> Manifest:
    return {"name": env, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def namespace(name: str, cluster: str) -> Manifest:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {names.MANAGED_BY: "clipper",
                                                  names.CREATED_BY: cluster}}}


def admin_secret(spec: ClusterSpec, token: str | None, store_password: str | None = None,
                 rpc_keys: curve.ClusterKeys | None = None) -> Manifest:
    """The cluster's Secret: the admin token, the Redis password and the CURVE
    keys (the server's key pair and the replica seed), one key each."""
    assert spec.admin_secret is not None
    values = launch.ClusterSecrets(admin_token=token, store_password=store_password,
                                   rpc_keys=rpc_keys)
    data = {s.file_name: s.value for role in (launch.ROLE_MANAGEMENT, launch.ROLE_STORE,
                                              launch.ROLE_QUERY)
            for s in values.for_role(role)}
    if rpc_keys is not None:
        data[RPC_SERVER_KEY] = rpc_keys.server.public
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": _metadata(spec, spec.admin_secret, spec.labels(names.ROLE_MGMT)),
            "stringData": data}


def model_secret(spec: ClusterSpec, name: str, version: str,
                 keys: curve.ClusterKeys) -> Manifest:
    """The Secret of name:version's replicas: their key pair's secret half,
    derived from the cluster's ``keys``."""
    values = launch.ClusterSecrets(rpc_keys=keys)
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": _metadata(spec, names.model_secret(spec.cluster, name, version),
                                  names.model_labels(spec.cluster, name, version)),
            "stringData": {s.file_name: s.value for s in values.for_replica(name, version)}}


def rpc_keys_from_secret(data: Mapping[str, str]) -> curve.ClusterKeys | None:
    """The cluster's keys in its Secret's decoded ``data`` (None: it has none)."""
    return launch.keys_from_env({s.env: data.get(s.file_name, "") for s in
                                 launch.ClusterSecrets(rpc_keys=_KEYS_IN_SECRET)
                                 .for_role(launch.ROLE_QUERY)})


def cluster_manifests(spec: ClusterSpec, query_image: str, mgmt_image: str, cache_size: int,
                      num_frontend_replicas: int) -> list[Manifest]:
    """Everything ``start_clipper`` creates, in creation order (without the
    admin Secret, whose value is secret)."""
    out = []
    if spec.redis_ip is None:
        out += [redis_deployment(spec), redis_service(spec)]
    out += [mgmt_deployment(spec, mgmt_image), mgmt_service(spec),
            query_deployment(spec, query_image, cache_size, num_frontend_replicas),
            query_service(spec), query_rpc_service(spec)]
    return out
