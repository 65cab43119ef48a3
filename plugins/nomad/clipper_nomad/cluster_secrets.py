"""A Nomad cluster's secrets: made at ``start_clipper()``, read back by ``connect()``.

The admin token, the Redis password and the CURVE keys travel in the task
environments (a task's ``Env``), never in its args: the management task
holds the token, query tasks the server's secret key and the replica seed,
each model task only its version's key pair and the server's public key
(:class:`clipper_core.launch.ClusterSecrets`).  ``connect()`` reads the token
back from the management job and the keys from the query job; a query job
without keys was started with ``rpc_auth="none"``.

Why the environment and not Nomad Variables read by a template: it is the
channel the token and password already use, it works without ACLs and
workload identities (which Variables need: a task reads only the Variables
its job's identity is granted), and it keeps the model jobs self-contained.
The cost: whoever may read a job (``read-job`` in its namespace) reads its
secrets; run the cluster in a namespace only its operators can read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from clipper_core import curve, launch
from clipper_core.errors import ContainerError
from clipper_core.secrets import new_password, new_token

from . import jobs
from .jobs import JobSettings

if TYPE_CHECKING:
    from .manager import NomadContainerManager


def start_settings(cm: NomadContainerManager) -> JobSettings:
    """``cm``'s job settings with new secrets: a Redis password (own Redis
    only), the admin token (given, generated, or none when opted out) and the
    CURVE keys (none with ``rpc_auth="none"``)."""
    return attrs.evolve(
        cm.settings, store_password=new_password() if cm.redis_ip is None else None,
        admin_token=cm.admin_token or (new_token() if cm._token_option is None else None),
        rpc_keys=launch.new_rpc_keys(cm.rpc_auth))


def adopt_secrets(cm: NomadContainerManager) -> None:
    """Take the running cluster's admin token (unless given or opted out) and
    its RPC keys (the cluster's RPC auth wins over ``cm.rpc_auth``)."""
    s = cm.settings
    if cm.admin_token is None and cm._token_option is None:
        env = jobs.task_env(cm._get_job(s.job_id(jobs.ROLE_MGMT)) or {})
        cm.admin_token = env.get(launch.ADMIN_TOKEN_ENV) or None
    try:
        keys = launch.keys_from_env(jobs.task_env(cm._get_job(s.job_id(jobs.ROLE_QUERY)) or {}))
    except curve.RPCKeyError as exc:
        raise ContainerError(f"The query job of cluster {cm.cluster_name!r} holds broken RPC "
                             f"keys: {exc}", cluster=cm.cluster_name) from exc
    cm.rpc_auth = curve.RPC_AUTH_NONE if keys is None else curve.RPC_AUTH_CURVE
    cm.settings = attrs.evolve(s, rpc_keys=keys)
