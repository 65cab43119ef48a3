"""The network a cluster runs on: created when missing, removed when owned and unused.

Clipper's default network name (``clipper_network``) is shared by every
cluster on the engine; the cluster that creates a network labels it as its
own and removes it in ``stop_all`` once no container uses it any more.
"""

from __future__ import annotations

from typing import Any

from clipper_core.errors import ClusterStartError

from . import cluster as lb
from .engine import docker_errors, log


def ensure(client: Any, name: str, cluster: str, labels: dict[str, str]) -> str:
    """Create (or reuse) network ``name``; return the network to run on.

    For the default name, an engine that cannot create a bridge network
    (``dockerd --bridge=none``) means host networking; for a name the user
    chose, ClusterStartError."""
    import docker.errors

    if name == lb.HOST_NETWORK:
        return lb.HOST_NETWORK
    try:
        if client.networks.list(names=[name]):
            return name
        client.networks.create(name, driver="bridge", check_duplicate=True, labels={
            **labels, lb.CLUSTER: cluster, lb.OWNED: "true"})
        return name
    except docker.errors.DockerException as exc:
        if name != lb.DEFAULT_NETWORK:
            raise ClusterStartError(f"Creating network {name} failed: {exc}",
                                    network=name) from exc
        log.warning("cannot create bridge network %s (%s); using host networking", name, exc)
        return lb.HOST_NETWORK


def remove_owned(client: Any, cluster: str) -> None:
    """Remove the networks ``cluster`` created that no container uses any more."""
    with docker_errors(f"Removing networks of cluster {cluster}"):
        for net in client.networks.list(filters={"label": [
                f"{lb.CLUSTER}={cluster}", f"{lb.OWNED}=true"]}):
            net.reload()
            if net.attrs.get("Containers"):
                log.info("keeping network %s: other containers use it", net.name)
                continue
            net.remove()
