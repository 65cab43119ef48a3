"""What a cluster runs: each program's command line, environment, ports and secrets.

Every container manager runs the same three programs; only *where* differs
(local processes, containers, pods, Nomad tasks).  This module says *what*,
once, as attrs values a manager turns into its own placement form:

- :func:`management_process`: ``python -m clipper_frontends.management``
- :func:`query_process`: ``python -m clipper_frontends.query``
- :func:`replica_process`: ``python -m clipper_core.runtime`` with its environment

Host and port arguments accept strings, so a manager can pass its
orchestrator's placeholders (``$(POD_NAME)``, ``${NOMAD_PORT_http}``).

Secrets never travel in argv: a :class:`Secret` is delivered as an
environment variable (:meth:`ProcessSpec.environment`) or as a file the
manager mounts, named by ``<ENV>_FILE`` (:meth:`ProcessSpec.file_environment`).
:class:`ClusterSecrets` holds a cluster's secrets and says which program gets
which; new secrets (a Redis password, CURVE keys) are new fields there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from .. import curve
from ..models import InputType
from ..secrets import STORE_PASSWORD_ENV, split_password

#: Ports every manager uses unless told otherwise (Clipper's).
QUERY_PORT = 1337
MANAGEMENT_PORT = 1338
RPC_PORT = 7000
#: The query frontend's default prediction cache, in bytes.
DEFAULT_CACHE_SIZE = 32 * 1024 * 1024
#: Where a model image holds the model directory.
MODEL_PATH = "/model"

MANAGEMENT_MODULE = "clipper_frontends.management"
QUERY_MODULE = "clipper_frontends.query"
RUNTIME_MODULE = "clipper_core.runtime"

ROLE_MANAGEMENT = "management"
ROLE_QUERY = "query"
ROLE_REPLICA = "replica"

#: Environment variables a replica reads (docs/architecture.md).  A manager
#: starting processes from its own environment removes these first.
REPLICA_ENV_KEYS = ("CLIPPER_MODEL_NAME", "CLIPPER_MODEL_VERSION", "CLIPPER_INPUT_TYPE",
                    "CLIPPER_IP", "CLIPPER_PORT", "CLIPPER_FRONTENDS", "CLIPPER_MODEL_PATH",
                    "CLIPPER_REPLICA_ID", curve.SERVER_KEY_ENV)
#: Environment variables that carry secrets (their ``_FILE`` forms too).
ADMIN_TOKEN_ENV = "CLIPPER_ADMIN_TOKEN"
QUERY_TOKEN_ENV = "CLIPPER_QUERY_TOKEN"
#: The Redis a cluster starts (:mod:`clipper_core.launch.store`) reads its password here too.
ROLE_STORE = "store"

Port = int | str


def _env_map(value: Mapping[str, str]) -> dict[str, str]:
    return dict(value)


def _port_map(value: Mapping[str, Port]) -> dict[str, Port]:
    return dict(value)


@attrs.frozen(kw_only=True)
class Secret:
    """One secret value and how a program receives it.

    :param env: the environment variable the program reads it from.
    :param value: the secret itself (never shown in ``repr``).
    :param file_name: the file name a manager that mounts secrets as files
        uses (in a directory of its choice); the program is then given
        ``<env>_FILE=<path>`` instead of the value.
    """

    env: str
    value: str = attrs.field(repr=False)
    file_name: str

    @property
    def file_env(self) -> str:
        """``<env>_FILE``: the variable naming the file that holds the secret."""
        return f"{self.env}_FILE"


@attrs.frozen(kw_only=True)
class ClusterSecrets:
    """A cluster's secrets, and which program gets each.

    :param admin_token: bearer token protecting ``/admin/*`` (the management
        frontend checks it; clients send it).
    :param store_password: the state store's password (Redis ``requirepass``):
        the frontends add it to their ``--store`` URL, the Redis a manager
        starts reads it (``CLIPPER_STORE_PASSWORD``).
    :param query_token: bearer token the query frontends require on every
        request but the health checks (None: the query API is open).
    """

    admin_token: str | None = attrs.field(default=None, repr=False)
    store_password: str | None = attrs.field(default=None, repr=False)
    query_token: str | None = attrs.field(default=None, repr=False)
    #: the cluster's CURVE keys (:mod:`clipper_core.curve`): query frontends
    #: get the server's secret key and the replica seed, each replica its
    #: model version's key pair; None: RPC without authentication
    rpc_keys: curve.ClusterKeys | None = attrs.field(default=None, repr=False)

    @property
    def rpc_auth(self) -> str:
        """``curve`` when the cluster has RPC keys, else ``none``."""
        return curve.RPC_AUTH_NONE if self.rpc_keys is None else curve.RPC_AUTH_CURVE

    def for_replica(self, model_name: str, model_version: str) -> tuple[Secret, ...]:
        """The secret of a replica of ``model_name:model_version``: its key pair's
        secret half (its public key, and the server's, are no secrets)."""
        if self.rpc_keys is None:
            return ()
        pair = self.rpc_keys.replica(model_name, model_version)
        return (Secret(env=curve.CLIENT_SECRET_ENV, value=pair.secret,
                       file_name=f"rpc_client_{model_name}_{model_version}"),)

    def for_role(self, role: str) -> tuple[Secret, ...]:
        """The secrets the program of ``role`` (``ROLE_*``) needs."""
        out: list[Secret] = []
        if self.admin_token and role == ROLE_MANAGEMENT:
            out.append(Secret(env=ADMIN_TOKEN_ENV, value=self.admin_token,
                              file_name="admin_token"))
        if self.store_password and role in (ROLE_MANAGEMENT, ROLE_QUERY, ROLE_STORE):
            out.append(Secret(env=STORE_PASSWORD_ENV, value=self.store_password,
                              file_name="store_password"))
        if self.query_token and role == ROLE_QUERY:
            out.append(Secret(env=QUERY_TOKEN_ENV, value=self.query_token,
                              file_name="query_token"))
        if self.rpc_keys is not None and role == ROLE_QUERY:
            out.append(Secret(env=curve.SERVER_SECRET_ENV, value=self.rpc_keys.server.secret,
                              file_name="rpc_server_secret"))
            out.append(Secret(env=curve.REPLICA_SEED_ENV, value=self.rpc_keys.seed,
                              file_name="rpc_replica_seed"))
        return tuple(out)

    def with_store_url(self, store_url: str) -> tuple[str, ClusterSecrets]:
        """``store_url`` without its password, and these secrets carrying it:
        a password written into a store URL moves out of argv."""
        bare, password = split_password(store_url)
        if password is None or password == self.store_password:
            return bare, self
        return bare, attrs.evolve(self, store_password=password)


@attrs.frozen(kw_only=True)
class ReadyCheck:
    """How a manager knows a program is up: ``GET path`` on ``port`` answers 200.

    ``needs_token`` says the request must carry the admin token (a manager
    that cannot send headers probes the TCP port instead).
    """

    port: Port
    path: str
    needs_token: bool = False


@attrs.frozen(kw_only=True)
class ProcessSpec:
    """One program of a cluster: what it runs, not where.

    :param role: ``management``, ``query`` or ``replica``.
    :param module: run as ``python -m module``.
    :param args: its command-line arguments (never secrets).
    :param env: its environment besides secrets.
    :param secrets: what :meth:`environment` or :meth:`file_environment` adds.
    :param ports: name -> port the program listens on (``http``, ``rpc``).
    :param ready: how to check it is up (None: replicas, which connect out).
    """

    role: str
    module: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = attrs.field(factory=dict, converter=_env_map)
    secrets: tuple[Secret, ...] = ()
    ports: Mapping[str, Port] = attrs.field(factory=dict, converter=_port_map)
    ready: ReadyCheck | None = None

    def argv(self, python: str = "python") -> list[str]:
        """The full command line: ``[python, "-m", module, *args]``."""
        return [python, "-m", self.module, *self.args]

    def entrypoint(self, python: str = "python") -> list[str]:
        """``[python, "-m", module]``: the entrypoint of an image running it."""
        return [python, "-m", self.module]

    def environment(self) -> dict[str, str]:
        """``env`` plus every secret as its environment variable."""
        return {**self.env, **{s.env: s.value for s in self.secrets}}

    def file_environment(self, secret_dir: str) -> dict[str, str]:
        """``env`` plus ``<ENV>_FILE=<secret_dir>/<file_name>`` for every secret,
        for managers that mount secrets as files."""
        base = secret_dir.rstrip("/")
        return {**self.env, **{s.file_env: f"{base}/{s.file_name}" for s in self.secrets}}


def management_process(*, store_url: str, host: str = "0.0.0.0",
                       port: Port = MANAGEMENT_PORT,
                       secrets: ClusterSecrets = ClusterSecrets(),
                       query_urls: Sequence[str] = (),
                       extra_args: Sequence[str] = ()) -> ProcessSpec:
    """The management frontend: ``--store URL --host H --port P`` (a password
    in ``store_url`` travels as a secret instead), and ``--query-url`` for
    each query frontend whose ``/metrics`` the dashboard shows."""
    store_url, secrets = secrets.with_store_url(store_url)
    own = secrets.for_role(ROLE_MANAGEMENT)
    urls = tuple(arg for url in query_urls for arg in ("--query-url", url))
    return ProcessSpec(
        role=ROLE_MANAGEMENT, module=MANAGEMENT_MODULE,
        args=("--store", store_url, "--host", host, "--port", str(port), *urls, *extra_args),
        secrets=own, ports={"http": port},
        ready=ReadyCheck(port=port, path="/admin/ping", needs_token=bool(own)))


def query_process(*, store_url: str, frontend_id: str, host: str = "0.0.0.0",
                  port: Port = QUERY_PORT, rpc_host: str | None = None,
                  rpc_port: Port = RPC_PORT, cache_size: int = DEFAULT_CACHE_SIZE,
                  secrets: ClusterSecrets = ClusterSecrets(),
                  extra_args: Sequence[str] = ()) -> ProcessSpec:
    """A query frontend: the flags of ``clipper_frontends.query.main``.

    ``rpc_host`` defaults to ``host``; ``frontend_id`` names the frontend in
    replica records (unique within the cluster).  A password in ``store_url``
    travels as a secret.  Without ``secrets.rpc_keys`` the RPC port runs
    without authentication (``--rpc-auth none``).
    """
    store_url, secrets = secrets.with_store_url(store_url)
    return ProcessSpec(
        role=ROLE_QUERY, module=QUERY_MODULE,
        args=("--store", store_url, "--host", host, "--port", str(port),
              "--rpc-host", rpc_host if rpc_host is not None else host,
              "--rpc-port", str(rpc_port), "--cache-size", str(int(cache_size)),
              "--frontend-id", frontend_id,
              *(("--rpc-auth", "none") if secrets.rpc_keys is None else ()), *extra_args),
        secrets=secrets.for_role(ROLE_QUERY), ports={"http": port, "rpc": rpc_port},
        ready=ReadyCheck(port=port, path="/healthz"))


@attrs.frozen(kw_only=True)
class RpcTargets:
    """How a replica finds the query frontends' RPC ports.

    Either ``addresses`` (``host:port`` each, ``CLIPPER_FRONTENDS``) or a
    ``host`` whose DNS name resolves to every frontend plus ``port``
    (``CLIPPER_IP``/``CLIPPER_PORT``; a headless service).  Neither: the
    manager supplies ``CLIPPER_FRONTENDS`` itself (e.g. from a template).
    """

    addresses: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    host: str | None = None
    port: Port = RPC_PORT

    def env(self) -> dict[str, str]:
        """The environment variables that say where the frontends are."""
        out: dict[str, str] = {}
        if self.host is not None:
            out.update(CLIPPER_IP=self.host, CLIPPER_PORT=str(self.port))
        elif len(self.addresses) == 1:
            host, _, port = self.addresses[0].rpartition(":")
            out.update(CLIPPER_IP=host, CLIPPER_PORT=port)
        if self.addresses:
            out["CLIPPER_FRONTENDS"] = ",".join(self.addresses)
        return out


def replica_id(model_name: str, model_version: str, index: int | str) -> str:
    """``<name>-<version>-<index>``: a replica's id when the manager numbers
    replicas itself (unique within a cluster; the runtime's RPC identity)."""
    return f"{model_name}-{model_version}-{index}"


def replica_process(*, name: str, version: str, input_type: InputType | str,
                    frontends: RpcTargets, model_path: str | None = MODEL_PATH,
                    replica_id: str | None = None,
                    secrets: ClusterSecrets = ClusterSecrets()) -> ProcessSpec:
    """A model replica: ``python -m clipper_core.runtime`` with its environment.

    ``model_path`` None leaves ``CLIPPER_MODEL_PATH`` to the image (it
    defaults to ``/model``); ``replica_id`` None lets the frontend number it.
    """
    env = {"CLIPPER_MODEL_NAME": str(name), "CLIPPER_MODEL_VERSION": str(version),
           "CLIPPER_INPUT_TYPE": InputType.parse(input_type).label, **frontends.env()}
    if model_path is not None:
        env["CLIPPER_MODEL_PATH"] = model_path
    if replica_id is not None:
        env["CLIPPER_REPLICA_ID"] = replica_id
    if secrets.rpc_keys is not None:
        env[curve.SERVER_KEY_ENV] = secrets.rpc_keys.server.public
    return ProcessSpec(role=ROLE_REPLICA, module=RUNTIME_MODULE, env=env,
                       secrets=(*secrets.for_role(ROLE_REPLICA),
                                *secrets.for_replica(str(name), str(version))))
