"""LocalProcessContainerManager: the embedded default container manager.

Runs a whole Clipper cluster as local processes, each under its own
supervisor (:mod:`clipper_local_process.supervise`): the management
frontend, ``num_frontend_replicas`` query frontends (plus a round-robin load
balancer on the query port when there are several) and the model replicas.
Everything it knows lives in the cluster's state directory (see
:mod:`clipper_local_process.clusters`), so a new Python process can
``connect()`` to a running cluster, and clusters with different names and
ports run side by side.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import sys
import uuid
import warnings
from pathlib import Path
from typing import Any

from clipper_core import launch
from clipper_core.admin.inputs import check_requirements
from clipper_core.errors import ClipperException, ClusterStartError, ContainerError
from clipper_core.models import InputType, ReplicaStatus, validate_name

from . import logfiles, rpc_keys, startup, watchdog
from . import prometheus as prom
from . import replicas as rp
from .artifacts import Artifact, Progress, build_artifact, stderr_progress
from .clusters import ClusterConfig, default_state_dir, read_token, write_token
from .processes import ProcessInfo, ProcessTable
from .registry import DirectoryRegistry

log = logging.getLogger("clipper.local_process")

#: How ``build_model`` names an artifact of the cluster's own registry.
LOCAL_REFERENCE = "local/"

DEFAULT_CACHE_SIZE = launch.DEFAULT_CACHE_SIZE
_DEFAULT_IMAGES = ("default", "clipper/query_frontend", "clipper/management_frontend",
                   launch.DEFAULT_IMAGES.query_frontend.rpartition(":")[0],
                   launch.DEFAULT_IMAGES.management_frontend.rpartition(":")[0])


def _is_default_image(image: str | None) -> bool:
    return image is None or any(image == d or image.startswith(d + ":") for d in _DEFAULT_IMAGES)


class LocalProcessContainerManager:
    """Implements :class:`clipper_core.interfaces.ContainerManager` with local processes.

    :param cluster_name: names the cluster and its state directory.
    :param clipper_query_port: where clients send queries (the load balancer's
        port when there are several query frontends).
    :param clipper_management_port: the management frontend's port.
    :param clipper_rpc_port: the first query frontend's RPC port (frontend ``i``
        uses ``clipper_rpc_port + i``).
    :param prometheus_port: accepted for compatibility; metrics are served at
        ``GET /metrics`` on the query port.
    :param state_dir: default ``$CLIPPER_HOME/clusters/<cluster_name>``
        (``CLIPPER_HOME`` defaults to ``~/.clipper``).
    :param store_url: any state store URL; default SQLite in the state dir.
    :param admin_token: bearer token for ``/admin/*``; generated at start
        when not given, and saved in the state dir (mode 0600).
    :param python: the interpreter that runs frontends and replicas.
    :param start_timeout: seconds to wait for the frontends to answer.
    :param replica_timeout: seconds ``deploy_model``/``set_num_replicas`` wait
        for new replicas to connect to every query frontend.
    :param progress: called with one line per long step (default: stderr).
    """

    def __init__(self, cluster_name: str = "default", clipper_query_port: int = 1337,
                 clipper_management_port: int = 1338, clipper_rpc_port: int = 7000,
                 prometheus_port: int = 1390, state_dir: str | os.PathLike[str] | None = None,
                 store_url: str | None = None, host: str = "127.0.0.1",
                 admin_token: str | None = None, python: str | None = None,
                 start_timeout: float = 60.0, replica_timeout: float = 30.0,
                 progress: Progress | None = None) -> None:
        self.cluster_name = validate_name("cluster name", cluster_name)
        self.query_port = int(clipper_query_port)
        self.management_port = int(clipper_management_port)
        self.rpc_port = int(clipper_rpc_port)
        self.prometheus_port = int(prometheus_port)
        self.state_dir = (Path(state_dir) if state_dir else default_state_dir(
            self.cluster_name)).expanduser().resolve()
        self.store_url = store_url
        self.host = host
        self.admin_token = admin_token
        self.python = python or sys.executable
        self.start_timeout = start_timeout
        self.replica_timeout = replica_timeout
        self.progress = progress or stderr_progress
        self._config: ClusterConfig | None = None
        self._store: Any = None

    # ------------------------------------------------------------------
    # Cluster
    # ------------------------------------------------------------------
    @property
    def config(self) -> ClusterConfig:
        """The running cluster's configuration; ClipperException if none."""
        if self._config is None:
            self._config = ClusterConfig.load(self.state_dir)
        if self._config is None:
            raise ClipperException(
                f"No local cluster {self.cluster_name!r} is running (nothing in "
                f"{self.state_dir}); start one with ClipperConnection.start_clipper() "
                "or `clipper start`", cluster=self.cluster_name)
        return self._config

    def _table(self, config: ClusterConfig | None = None) -> ProcessTable:
        cfg = config or ClusterConfig.load(self.state_dir)
        return ProcessTable(self.state_dir, cfg.cluster_id if cfg else "", self.python)

    def start_clipper(self, query_frontend_image: str | None = None,
                      mgmt_frontend_image: str | None = None,
                      cache_size: int = DEFAULT_CACHE_SIZE,
                      num_frontend_replicas: int = 1, prometheus_port: int | None = None) -> None:
        """Start the management frontend and the query frontends; return when
        they answer.  Raises :class:`ClusterStartError` when the cluster is
        already running, a port is taken, or a process dies while starting
        (with its last log lines); nothing is left running after a failure.
        With ``prometheus_port`` (0: a free port) a Prometheus server scrapes
        the cluster (:mod:`.prometheus`; needs the ``prometheus`` binary)."""
        for image in (query_frontend_image, mgmt_frontend_image):
            if not _is_default_image(image):
                warnings.warn(f"The local_process manager runs the frontends from the "
                              f"installed clipper-core; ignoring image {image!r}",
                              stacklevel=2)
        if not isinstance(num_frontend_replicas, int) or num_frontend_replicas < 1:
            raise ClusterStartError("num_frontend_replicas must be a positive integer",
                                    value=num_frontend_replicas)
        if self._running_processes():
            raise ClusterStartError(
                f"Local cluster {self.cluster_name!r} is already running (state dir "
                f"{self.state_dir}); connect() to it or stop it first",
                cluster=self.cluster_name)
        self._clean_stale()
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)  # state, logs and secrets: the owner's only
        config = ClusterConfig(
            cluster_name=self.cluster_name, cluster_id=uuid.uuid4().hex, host=self.host,
            query_port=self.query_port, management_port=self.management_port,
            rpc_port=self.rpc_port, prometheus_port=self.prometheus_port,
            num_frontends=num_frontend_replicas,
            store_url=self.store_url or self._default_store_url(),
            cache_size=int(cache_size), python=self.python)
        startup.check_ports(config)
        self._init_store(config.store_url)
        token = self.admin_token or secrets.token_urlsafe(24)
        write_token(self.state_dir, token)
        config.save(self.state_dir)
        self._config = config
        try:
            self._start_frontends(config, token)
            if prometheus_port is not None:
                self.prometheus_port = prom.start(self._table(config), config, self.state_dir,
                                                  int(prometheus_port), self.start_timeout)
        except ContainerError as exc:
            self.stop_all(graceful=False)
            if isinstance(exc, ClusterStartError):
                raise
            raise ClusterStartError(str(exc), **exc.fields) from exc
        except BaseException:
            self.stop_all(graceful=False)
            raise

    def _default_store_url(self) -> str:
        return f"sqlite:///{self.state_dir.resolve() / 'state.db'}"

    def _remove_default_db(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.state_dir.resolve() / 'state.db'}{suffix}").unlink(missing_ok=True)

    def _running_processes(self) -> list[ProcessInfo]:
        return [p for p in self._table().select() if p.alive]

    def _clean_stale(self) -> None:
        """Remove what a crashed cluster left behind (processes, status files, db)."""
        if ClusterConfig.load(self.state_dir) is not None:
            self.stop_all(graceful=False)
        for sub in ("procs", "desired", "logs"):
            shutil.rmtree(self.state_dir / sub, ignore_errors=True)
        if self.store_url is None:  # a new cluster starts with an empty default store
            self._remove_default_db()

    def _init_store(self, url: str) -> None:
        from clipper_core.plugins import open_store

        try:
            open_store(url).close()
        except ClipperException as exc:
            raise ClusterStartError(f"Cannot open the state store {url!r}: {exc}",
                                    store_url=url) from exc

    def _start_frontends(self, config: ClusterConfig, token: str) -> None:
        table = self._table(config)
        self.progress(f"Starting Clipper cluster {config.cluster_name!r} "
                      f"(state dir {self.state_dir})")
        secrets = launch.ClusterSecrets(admin_token=token,
                                        rpc_keys=rpc_keys.start_keys(self.state_dir))
        checks = startup.start_frontends(table, config, secrets)
        startup.wait_ready(table, checks, token, self.cluster_name, self.start_timeout)
        watchdog.install(self.state_dir, self.python, config.cluster_id, startup.base_env())
        self.progress(f"Clipper cluster {config.cluster_name!r} is up: queries at "
                      f"http://{self.get_query_addr()}, management at "
                      f"http://{self.get_admin_addr()}")

    def connect(self) -> None:
        """Attach to the running cluster described in the state dir; raise
        ClipperException when there is none or it does not answer."""
        import httpx

        self._config = None
        if self._store is not None:
            self._store.close()
            self._store = None
        config = self.config
        watchdog.ensure(self.state_dir)
        url = f"http://{config.host}:{config.management_port}/admin/ping"
        token = read_token(self.state_dir)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            ok = httpx.get(url, timeout=5.0, headers=headers).status_code == 200
        except httpx.HTTPError:
            ok = False
        if not ok:
            raise ClipperException(
                f"Local cluster {self.cluster_name!r} is not answering at {url}; its "
                f"processes: {self._describe_processes()}", cluster=self.cluster_name)

    def _describe_processes(self) -> str:
        infos = self._table().select()
        return ", ".join(f"{p.name}={p.status}" for p in infos) or "none"

    def get_admin_addr(self) -> str:
        return f"{self.config.host}:{self.config.management_port}"

    def get_query_addr(self) -> str:
        return f"{self.config.host}:{self.config.query_port}"

    def get_metric_addr(self) -> str:
        """Metrics are served as JSON at ``GET /metrics`` on the query address."""
        return self.get_query_addr()

    def get_admin_token(self) -> str | None:
        return read_token(self.state_dir) or self.admin_token

    # ------------------------------------------------------------------
    # Models
    # ------------------------------------------------------------------
    def build_model(self, name: str, version: str, model_data_path: str, base_image: str,
                    container_registry: str | None = None,
                    pkgs_to_install: list[str] | None = None) -> str:
        """Copy the model directory (and, with ``pkgs_to_install``, make a
        virtual environment holding them) into a versioned artifact; return
        its reference: ``local/<name>:<version>`` in the cluster's own
        registry (its state dir), which ``deploy_model`` resolves there and
        nowhere else; with ``container_registry`` (a directory to publish
        into) the artifact's path, which only this manager's own API takes
        (the admin boundary accepts image references, not paths).
        ``base_image`` is ignored: the installed ``clipper_core.runtime`` runs
        the model; ``pkgs_to_install`` must be requirement specifiers."""
        name = validate_name("model name", name)
        version = validate_name("model version", version)
        pkgs_to_install = check_requirements(pkgs_to_install)
        if not _is_default_image(base_image) and not str(base_image).startswith("clipper/"):
            log.info("local_process ignores base_image %r", base_image)
        registry = DirectoryRegistry(container_registry or self.state_dir / "models")
        staged = build_artifact(name, version, model_data_path, registry.root,
                                pkgs_to_install, self.python, self.progress)
        path = registry.publish(name, version, str(staged))
        self.progress(f"Built model {name}:{version} at {path}")
        return path if container_registry else f"{LOCAL_REFERENCE}{name}:{version}"

    def resolve_artifact(self, image: str) -> Artifact:
        """The artifact ``image`` names: ``local/<name>:<version>`` in the
        cluster's registry, else an artifact or model directory path."""
        if image.startswith(LOCAL_REFERENCE):
            name, _, version = image[len(LOCAL_REFERENCE):].rpartition(":")
            registry = DirectoryRegistry(self.state_dir / "models")
            return Artifact.load(str(registry.path_for(name, version)))
        return Artifact.load(image)

    def _replicas(self, name: str | None = None, version: str | None = None) -> list[ProcessInfo]:
        labels = {"kind": "replica"}
        if name is not None:
            labels["model_name"] = name
        if version is not None:
            labels["model_version"] = version
        return self._table().select(**labels)

    def deploy_model(self, name: str, version: str, input_type: InputType | str, image: str,
                     num_replicas: int = 1) -> None:
        """Start ``num_replicas`` replicas of the artifact ``image`` for name:version."""
        self.set_num_replicas(name, version, input_type, image, num_replicas)

    def get_num_replicas(self, name: str, version: str) -> int:
        """The replicas of name:version running now, not those asked for (one
        being restored is not counted)."""
        watchdog.ensure(self.state_dir)
        return sum(1 for p in self._replicas(str(name), str(version))
                   if p.status == "running" and p.pid)

    def set_num_replicas(self, name: str, version: str, input_type: InputType | str, image: str,
                         num_replicas: int) -> None:
        """Start or stop replicas of name:version until ``num_replicas`` run.

        New replicas get the lowest free index; the highest indices stop first.
        Counts what is desired, so a replica being restored keeps its index.
        Waits (up to ``replica_timeout``) for new replicas to connect; if one
        crashes on start, stops the replicas this call started and raises
        ContainerError with the crash's log tail."""
        name, version = str(name), str(version)
        if isinstance(num_replicas, bool) or not isinstance(num_replicas, int) or num_replicas < 0:
            raise ContainerError("num_replicas must be a non-negative integer",
                                 value=num_replicas)
        config = self.config
        table = self._table(config)
        watchdog.ensure(self.state_dir)
        by_index = rp.desired_replicas(table, name, version)
        if num_replicas < len(by_index):
            table.stop([p.name for p in by_index[num_replicas:]])
            return
        if num_replicas == len(by_index):
            return
        artifact = self.resolve_artifact(image)
        itype = InputType.parse(input_type)
        used = {int(p.labels.get("index", "0")) for p in by_index}
        started: list[str] = []
        index = 0
        self.progress(f"Starting {num_replicas - len(used)} replica(s) of {name}:{version}")
        while len(used) < num_replicas:
            while index in used:
                index += 1
            used.add(index)
            started.append(rp.start_replica(table, config, name, version, itype, artifact,
                                            image, index))
        try:
            rp.wait_connected(self._open_store(), table, config, name, version, started,
                              num_replicas, self.replica_timeout, self.progress)
        except ContainerError:
            table.stop(started, timeout=2.0)  # do not leave a crash loop behind
            raise

    def _open_store(self) -> Any:
        if self._store is None:
            from clipper_core.plugins import open_store

            self._store = open_store(self.config.store_url)
        return self._store

    def list_replicas(self) -> list[ReplicaStatus]:
        """Every model replica process: status (``running``, ``backoff`` while
        waiting to restart, ``exited``...), restart count and pid."""
        watchdog.ensure(self.state_dir)
        return [rp.replica_status(p) for p in self._replicas()]

    def get_logs(self, logging_dir: str) -> list[str]:
        """Copy every process's log file into ``logging_dir``; return the paths."""
        return logfiles.copy_logs(self.state_dir / "logs", self.cluster_name,
                                  Path(logging_dir).expanduser())

    def stop_models(self, models: dict[str, list[str]]) -> None:
        """Stop every replica of each ``name -> [versions]``."""
        self._table().stop(rp.replica_names(self._table(), models))

    def stop_all_model_containers(self) -> None:
        """Stop every model replica of the cluster (works without connect)."""
        self._table().stop(rp.replica_names(self._table()))

    def stop_all(self, graceful: bool = True) -> None:
        """Stop every process of the cluster (replicas first, then frontends),
        SIGKILL stragglers, and forget the cluster: its state (the default
        SQLite store), token and process records are removed; logs stay."""
        watchdog.uninstall(self.state_dir)  # first: it would restore what we stop
        config = ClusterConfig.load(self.state_dir)
        table = self._table(config)
        timeout = 8.0 if graceful else 2.0
        table.stop(rp.replica_names(table), timeout=timeout)
        table.stop([p.name for p in table.select()], timeout=timeout)
        if config is not None:
            table.sweep()
        if self._store is not None:
            try:
                self._store.close()
            finally:
                self._store = None
        if config is not None and config.store_url == self._default_store_url():
            self._remove_default_db()
        for name in ("cluster.json", "admin_token"):
            (self.state_dir / name).unlink(missing_ok=True)
        shutil.rmtree(self.state_dir / "desired", ignore_errors=True)
        self._config = None
