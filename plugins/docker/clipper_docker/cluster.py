"""What a running cluster looks like on the engine: labels, names, addresses.

Everything the manager starts carries ``clipper.cluster=<name>`` and a
``clipper.role``; the management container also carries the cluster's
layout (:class:`ClusterInfo`), so a manager in another process finds the
same cluster with :meth:`ClusterInfo.from_labels`.
"""

from __future__ import annotations

import attrs

from clipper_core.launch import RpcTargets, replica_id

CLUSTER = "clipper.cluster"
ROLE = "clipper.role"
OWNED = "clipper.owned"
MODEL_NAME = "clipper.model.name"
MODEL_VERSION = "clipper.model.version"
MODEL_REPLICA = "clipper.model.replica"
#: The replica id the runtime announces (``CLIPPER_REPLICA_ID``): unique per frontend.
MODEL_REPLICA_ID = "clipper.model.replica_id"
MODEL_INPUT_TYPE = "clipper.model.input_type"
MODEL_IMAGE = "clipper.model.image"
FRONTEND_ID = "clipper.frontend.id"

ROLE_REDIS = "redis"
ROLE_MANAGEMENT = "management"
ROLE_QUERY = "query"
ROLE_MODEL = "model"

#: Container states that count as a replica that exists (not stopped for good).
LIVE_STATES = ("created", "running", "restarting")

HOST_NETWORK = "host"
#: Clipper's default network name; created when missing (host networking
#: when the engine cannot create bridge networks).
DEFAULT_NETWORK = "clipper_network"

__all__ = ["ClusterInfo", "container_name", "network_name", "query_alias", "replica_id"]


def container_name(cluster: str, *parts: str) -> str:
    """``clipper-<cluster>-<part>-...``: a valid, readable container name."""
    return "-".join(("clipper", cluster, *parts))


def network_name(cluster: str) -> str:
    """The name of the network a cluster owns."""
    return f"clipper-{cluster}"


def query_alias(cluster: str) -> str:
    """The DNS name every query frontend of a cluster shares on its network,
    so a model replica resolving it connects to each one."""
    return f"clipper-{cluster}-query"


@attrs.frozen(kw_only=True)
class ClusterInfo:
    """Where a started cluster's parts listen.

    Ports are the same inside containers and on the engine's host (published
    1:1 on a bridge network, bound directly with host networking).
    """

    cluster: str
    #: Network name, or ``"host"``.
    network: str
    admin_port: int
    query_port: int
    rpc_port: int
    #: State store URL as the frontends reach it.
    store_url: str
    #: ``host:port`` RPC endpoints model replicas connect to.
    frontends: tuple[str, ...]
    #: (query port, rpc port) of each query frontend.
    query_endpoints: tuple[tuple[int, int], ...] = ()

    @property
    def host_network(self) -> bool:
        return self.network == HOST_NETWORK

    def to_labels(self) -> dict[str, str]:
        return {"clipper.network": self.network, "clipper.admin_port": str(self.admin_port),
                "clipper.query_port": str(self.query_port),
                "clipper.rpc_port": str(self.rpc_port), "clipper.store": self.store_url,
                "clipper.frontends": ",".join(self.frontends),
                "clipper.query_endpoints": ",".join(f"{q}/{r}" for q, r in self.query_endpoints)}

    @classmethod
    def from_labels(cls, labels: dict[str, str]) -> ClusterInfo:
        """Read back :meth:`to_labels`; KeyError/ValueError if labels are missing."""
        return cls(cluster=labels[CLUSTER], network=labels["clipper.network"],
                   admin_port=int(labels["clipper.admin_port"]),
                   query_port=int(labels["clipper.query_port"]),
                   rpc_port=int(labels["clipper.rpc_port"]),
                   store_url=labels["clipper.store"],
                   frontends=tuple(x for x in labels["clipper.frontends"].split(",") if x),
                   query_endpoints=tuple(
                       (int(q), int(r)) for q, _, r in (
                           x.partition("/") for x in
                           labels.get("clipper.query_endpoints", "").split(",") if x)))

    def rpc_targets(self) -> RpcTargets:
        """How a model replica finds the query frontends: the shared alias
        (resolving to each frontend) on a bridge network, else the list."""
        if self.host_network or len(self.frontends) != 1:
            return RpcTargets(addresses=self.frontends)
        host, _, port = self.frontends[0].rpartition(":")
        return RpcTargets(host=host, port=int(port))


