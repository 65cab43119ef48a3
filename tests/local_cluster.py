"""A real local_process cluster on free ports, driven through ClipperConnection.

Used by the tests that need every process of a cluster (management
frontend, query frontends, model replicas) exactly as a user starts them:
``ClipperConnection(LocalProcessContainerManager(...)).start_clipper()``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import free_port

from clipper_core.connection import ClipperConnection


def free_port_block(n: int) -> int:
    """The first of ``n`` consecutive ports free on 127.0.0.1 right now."""
    for _ in range(200):
        base = free_port()
        if base + n > 65535:
            continue
        socks: list[socket.socket] = []
        try:
            for i in range(n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no block of free ports")


def local_manager(tmp: Path, name: str, frontends: int = 1) -> object:
    """A LocalProcessContainerManager for an isolated cluster under ``tmp``."""
    plugin = pytest.importorskip("clipper_local_process")
    return plugin.LocalProcessContainerManager(
        cluster_name=name, state_dir=str(tmp / name),
        clipper_query_port=free_port_block(frontends + 1),
        clipper_management_port=free_port(), clipper_rpc_port=free_port_block(frontends),
        progress=lambda _message: None)


@contextmanager
def running_cluster(tmp: Path, name: str, frontends: int = 1) -> Iterator[ClipperConnection]:
    """Start a cluster (``frontends`` query frontends), yield its connection, stop it."""
    conn = ClipperConnection(local_manager(tmp, name, frontends))
    try:
        conn.start_clipper(num_frontend_replicas=frontends)
        yield conn
    finally:
        conn.stop_all()
