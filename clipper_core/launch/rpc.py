"""A cluster manager's ``rpc_auth`` option and the CURVE keys it makes.

Every manager takes ``rpc_auth``: ``"curve"`` (the default, also when
``CLIPPER_RPC_AUTH`` is unset) gives the cluster its own
:class:`clipper_core.curve.ClusterKeys` at ``start_clipper()``, which
:class:`clipper_core.launch.ClusterSecrets` then hands out (query frontends:
the server's secret key and the replica seed; each replica: its model
version's key pair and the server's public key).  ``"none"`` starts the
cluster without keys: plain RPC v3, how original Clipper model containers
are served, with the RPC port open to every peer that reaches it.
"""

from __future__ import annotations

from collections.abc import Mapping

from .. import curve
from ..errors import ClusterStartError, ValidationError


def rpc_auth_option(value: str | None, environ: Mapping[str, str] | None = None) -> str:
    """``curve`` or ``none`` for a manager's ``rpc_auth`` option (None:
    ``$CLIPPER_RPC_AUTH``, else ``curve``); ValidationError otherwise."""
    try:
        return curve.rpc_auth_mode(value, environ)
    except ValueError as exc:
        raise ValidationError(f"Invalid rpc_auth {value!r}: {exc}", argument="rpc_auth",
                              value=value) from None


def new_rpc_keys(mode: str) -> curve.ClusterKeys | None:
    """Fresh keys for a cluster starting with RPC auth ``mode`` (None for
    ``none``); ClusterStartError when this libzmq cannot do CURVE."""
    if mode == curve.RPC_AUTH_NONE:
        return None
    if not curve.curve_available():
        raise ClusterStartError("RPC auth 'curve' needs a libzmq built with CURVE "
                                "(libsodium); install pyzmq's wheel or use rpc_auth='none'")
    return curve.ClusterKeys.generate()


def keys_from_env(environ: Mapping[str, str]) -> curve.ClusterKeys | None:
    """The cluster keys a query frontend was given in ``environ`` (as
    ``CLIPPER_RPC_SERVER_SECRET``/``CLIPPER_RPC_REPLICA_SEED`` values), for a
    manager reading them back; None when it runs without them."""
    values = {k: environ[k] for k in (curve.SERVER_SECRET_ENV, curve.REPLICA_SEED_ENV)
              if environ.get(k)}
    return curve.ClusterKeys.from_env(values)
