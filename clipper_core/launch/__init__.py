"""The launch contract: what a cluster runs, whichever manager places it.

:mod:`.processes` describes each program (command line, environment,
ports, secrets), :mod:`.replicas` waits for new replicas to connect, and
:mod:`.images` names the project's images and finds a model image builder,
:mod:`.store` says how a cluster's Redis runs (durable, with a password),
:mod:`.rpc` reads a manager's ``rpc_auth`` option and makes the CURVE keys.
Container managers keep only placement: where and how these run.
"""

from __future__ import annotations

from .compat import ignored_parameter
from .images import (
    DEFAULT_IMAGES,
    IMAGE_ROLE_LABEL,
    IMAGE_TITLE,
    IMAGE_TITLE_LABEL,
    ModelImageBuilder,
    ProjectImages,
    get_image_builder,
    is_project_image,
)
from .processes import (
    ADMIN_TOKEN_ENV,
    DEFAULT_CACHE_SIZE,
    MANAGEMENT_PORT,
    MODEL_PATH,
    QUERY_PORT,
    QUERY_TOKEN_ENV,
    REPLICA_ENV_KEYS,
    ROLE_MANAGEMENT,
    ROLE_QUERY,
    ROLE_REPLICA,
    ROLE_STORE,
    RPC_PORT,
    ClusterSecrets,
    ProcessSpec,
    ReadyCheck,
    RpcTargets,
    Secret,
    management_process,
    query_process,
    replica_id,
    replica_process,
)
from .replicas import (
    ReplicaWait,
    admin_knows_version,
    admin_replicas,
    store_replicas,
    wait_for_replicas,
)
from .rpc import keys_from_env, new_rpc_keys, rpc_auth_option
from .store import REDIS_DATA_DIR, RedisServer

__all__ = [
    "ADMIN_TOKEN_ENV", "DEFAULT_CACHE_SIZE", "DEFAULT_IMAGES", "IMAGE_ROLE_LABEL", "IMAGE_TITLE",
    "IMAGE_TITLE_LABEL", "MANAGEMENT_PORT", "MODEL_PATH", "QUERY_PORT", "REPLICA_ENV_KEYS",
    "ROLE_MANAGEMENT", "ROLE_QUERY", "ROLE_REPLICA", "ROLE_STORE", "RPC_PORT", "ClusterSecrets",
    "QUERY_TOKEN_ENV", "REDIS_DATA_DIR", "RedisServer",
    "ModelImageBuilder", "ignored_parameter", "keys_from_env", "new_rpc_keys",
    "rpc_auth_option", "ProcessSpec", "ProjectImages", "ReadyCheck", "ReplicaWait",
    "RpcTargets", "Secret", "admin_knows_version", "admin_replicas", "get_image_builder", "is_project_image",
    "management_process", "query_process", "replica_id", "replica_process", "store_replicas",
    "wait_for_replicas",
]
