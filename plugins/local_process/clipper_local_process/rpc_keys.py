"""A local cluster's RPC keys: made at ``start_clipper()``, found again after.

The keys live in the state directory (``rpc_keys/``, 0700, files 0600);
replicas get their model version's secret key as a 0600 file in
``secrets/`` named by ``CLIPPER_RPC_CLIENT_SECRET_FILE``.
``CLIPPER_RPC_AUTH=none`` in the environment of ``start_clipper()`` makes a
cluster without keys (frontends ``--rpc-auth none``, replicas plain RPC v3).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from clipper_core import curve, launch

KEYS_DIR = "rpc_keys"
SECRETS_DIR = "secrets"


def start_keys(state_dir: Path) -> curve.ClusterKeys | None:
    """New keys for a cluster starting in ``state_dir`` (None: auth is off)."""
    shutil.rmtree(state_dir / KEYS_DIR, ignore_errors=True)
    shutil.rmtree(state_dir / SECRETS_DIR, ignore_errors=True)
    if curve.rpc_auth_mode() == curve.RPC_AUTH_NONE:
        return None
    keys = curve.ClusterKeys.generate()
    keys.save(state_dir / KEYS_DIR)
    return keys


def cluster_keys(state_dir: Path) -> curve.ClusterKeys | None:
    """The keys of the cluster in ``state_dir``; None when it runs without."""
    if not (state_dir / KEYS_DIR).is_dir():
        return None
    return curve.ClusterKeys.from_dir(state_dir / KEYS_DIR, create=False)


def secret_environment(state_dir: Path, spec: launch.ProcessSpec) -> dict[str, str]:
    """``spec``'s environment with each secret written to a 0600 file and
    named by its ``<ENV>_FILE`` variable."""
    directory = state_dir / SECRETS_DIR
    directory.mkdir(mode=0o700, exist_ok=True)
    for secret in spec.secrets:
        curve.write_private(directory / secret.file_name, secret.value)
    return spec.file_environment(str(directory))
