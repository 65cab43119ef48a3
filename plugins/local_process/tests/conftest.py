"""Fixtures of the local_process plugin's tests: ports, isolated clusters."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_block(n: int) -> int:
    """The first of ``n`` consecutive free ports (frontend i uses port + i)."""
    for _ in range(200):
        base = free_port()
        if base + n > 65535:
            continue
        socks = []
        try:
            for i in range(n):
                s = socket.socket()
                s.bind(("127.0.0.1", base + i))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no block of free ports")


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition",
               interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
            last = value
        except Exception as exc:  # noqa: BLE001 - reported below
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def manager_options(tmp: Path, name: str, frontends: int = 1) -> dict[str, Any]:
    """Constructor options for an isolated cluster on free ports."""
    return {"cluster_name": name, "state_dir": str(tmp / name),
            "clipper_query_port": free_port_block(frontends + 1),
            "clipper_management_port": free_port(),
            "clipper_rpc_port": free_port_block(frontends), "progress": lambda _m: None}


@pytest.fixture(autouse=True)
def _clipper_home(tmp_path_factory: pytest.TempPathFactory,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Never touch the real ~/.clipper."""
    monkeypatch.setenv("CLIPPER_HOME", str(tmp_path_factory.getbasetemp() / "clipper-home"))
    yield


__all__ = ["free_port", "free_port_block", "manager_options", "wait_until", "os"]
