"""One local_process cluster shared by the framework deployer tests.

Every test deploys its own application and model with a real small model
made in the test, queries it through HTTP ``/predict`` and compares the
answer with what the framework itself computes in the test process.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import cloudpickle
import httpx
import pytest

from clipper_core.connection import ClipperConnection

# Functions defined in these test modules travel to the replicas by value
# (the replicas cannot import the test package).
cloudpickle.register_pickle_by_value(sys.modules[__package__])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(conn: ClipperConnection, app: str, x: Any, timeout: float = 30.0,
          until: Callable[[Any], bool] = lambda _output: True) -> Any:
    """The model's (non-default) output for input ``x`` of application ``app``,
    the first one for which ``until(output)`` holds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        resp = httpx.post(f"http://{conn.get_query_addr()}/{app}/predict",
                          json={"input": x}, timeout=30)
        last = (resp.status_code, resp.text)
        if resp.status_code == 200 and not resp.json()["default"]:
            if until(resp.json()["output"]):
                return resp.json()["output"]
        time.sleep(0.2)
    raise AssertionError(f"{app} gave no model answer within {timeout}s (last: {last})")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClipperConnection]:
    """A local_process cluster with time for heavy frameworks to load in replicas."""
    lp = pytest.importorskip("clipper_local_process")
    tmp = tmp_path_factory.mktemp("frameworks")
    manager = lp.LocalProcessContainerManager(
        cluster_name="frameworks", state_dir=str(tmp / "state"),
        clipper_query_port=_free_port(), clipper_management_port=_free_port(),
        clipper_rpc_port=_free_port(), replica_timeout=180.0, progress=lambda _m: None)
    conn = ClipperConnection(manager)
    try:
        conn.start_clipper()
        yield conn
    finally:
        conn.stop_all()


@pytest.fixture
def ask(cluster: ClipperConnection) -> Callable[..., Any]:
    """``ask(app, x)``: the model's output for ``x`` through ``/{app}/predict``."""
    return lambda app, x: query(cluster, app, x)
