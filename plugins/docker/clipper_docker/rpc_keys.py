"""A Docker cluster's CURVE keys: made at ``start_clipper()``, found again by ``connect()``.

They travel like the cluster's admin token and Redis password: in the
containers' environment, never in argv.  Query frontend containers hold the
server's secret key and the replica seed (``CLIPPER_RPC_SERVER_SECRET``,
``CLIPPER_RPC_REPLICA_SEED``); each model replica container holds only its
model version's secret key (``CLIPPER_RPC_CLIENT_SECRET``) and the server's
public key (:class:`clipper_core.launch.ClusterSecrets`).  ``connect()``
reads the pair back from a query frontend container; a cluster whose
frontends have none was started with ``rpc_auth="none"``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from clipper_core import curve, launch
from clipper_core.errors import ContainerError


def container_env(container: Any) -> dict[str, str]:
    """The environment a container was created with (``Config.Env``)."""
    items = (container.attrs.get("Config") or {}).get("Env") or []
    return dict(item.partition("=")[::2] for item in items)


def adopt(query_containers: Iterable[Any]) -> tuple[str, curve.ClusterKeys | None] | None:
    """``(rpc_auth, keys)`` of the cluster whose query frontend containers are
    given, read from the first one's environment; None when there is none."""
    for container in query_containers:
        try:
            keys = launch.keys_from_env(container_env(container))
        except curve.RPCKeyError as exc:
            raise ContainerError(f"Container {container.name} holds broken RPC keys: {exc}",
                                 container=container.name) from exc
        return (curve.RPC_AUTH_NONE if keys is None else curve.RPC_AUTH_CURVE), keys
    return None
