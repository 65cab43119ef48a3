"""Where a local cluster keeps its state, and the record of how it was started.

A cluster named ``NAME`` lives in ``$CLIPPER_HOME/clusters/NAME`` (``CLIPPER_HOME``
defaults to ``~/.clipper``)::

    cluster.json     ClusterConfig: ports, host, store URL, frontends (written at start)
    admin_token      bearer token of the management frontend (mode 0600)
    state.db         the default SQLite state store
    procs/NAME.json  one status file per supervised process (written by its supervisor)
    logs/NAME.log    one log file per supervised process
    models/N/V/      built model artifacts (see ``artifacts.py``)

A new Python process attaches to the cluster by reading ``cluster.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import attrs

from clipper_core.secrets import write_private

CONFIG_FILE = "cluster.json"
TOKEN_FILE = "admin_token"


def clipper_home() -> Path:
    """``$CLIPPER_HOME``, or ``~/.clipper``."""
    return Path(os.environ.get("CLIPPER_HOME") or Path.home() / ".clipper").expanduser()


def default_state_dir(cluster_name: str) -> Path:
    """The state directory of the cluster called ``cluster_name``."""
    return clipper_home() / "clusters" / cluster_name


@attrs.frozen(kw_only=True)
class ClusterConfig:
    """How a running local cluster was started: what ``connect()`` reads back."""

    cluster_name: str
    #: Random id put in every process's environment, to find strays on stop.
    cluster_id: str
    host: str
    query_port: int
    management_port: int
    rpc_port: int
    prometheus_port: int
    num_frontends: int
    store_url: str
    cache_size: int
    python: str

    def frontend_ports(self) -> list[tuple[int, int]]:
        """(HTTP port, RPC port) of each query frontend.

        One frontend listens on the query port itself; with several, the load
        balancer takes the query port and frontend ``i`` listens on
        ``query_port + 1 + i``.  Frontend ``i``'s RPC port is ``rpc_port + i``.
        """
        if self.num_frontends == 1:
            return [(self.query_port, self.rpc_port)]
        return [(self.query_port + 1 + i, self.rpc_port + i) for i in range(self.num_frontends)]

    def rpc_addresses(self) -> list[str]:
        """``host:port`` of every query frontend's RPC socket."""
        return [f"{self.host}:{rpc}" for _, rpc in self.frontend_ports()]

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClusterConfig:
        names = {a.name for a in attrs.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def save(self, state_dir: Path) -> None:
        """Write ``cluster.json`` into ``state_dir``."""
        write_private(state_dir / CONFIG_FILE, json.dumps(self.to_json(), indent=1))

    @classmethod
    def load(cls, state_dir: Path) -> ClusterConfig | None:
        """Read ``cluster.json`` from ``state_dir``; None when there is none."""
        try:
            return cls.from_json(json.loads((state_dir / CONFIG_FILE).read_text()))
        except FileNotFoundError:
            return None


def write_token(state_dir: Path, token: str) -> Path:
    """Save the admin token readable by the owner only (mode 0600)."""
    path = state_dir / TOKEN_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    os.chmod(path, 0o600)
    return path


def read_token(state_dir: Path) -> str | None:
    try:
        return (state_dir / TOKEN_FILE).read_text().strip() or None
    except FileNotFoundError:
        return None
