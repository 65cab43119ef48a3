"""The shared container-manager contract, run against local processes."""

from __future__ import annotations

import os
import signal

import pytest
from clipper_local_process import LocalProcessContainerManager

from clipper_core.connection import ClipperConnection
from clipper_core.testing.container_manager import ContainerManagerContract

from .conftest import manager_options


class TestLocalProcessContract(ContainerManagerContract):
    replica_timeout = 30.0

    @pytest.fixture(scope="class")
    def options(self, tmp_path_factory):
        return manager_options(tmp_path_factory.mktemp("contract"), "contract")

    @pytest.fixture(scope="class")
    def clipper_conn(self, options):
        conn = ClipperConnection(LocalProcessContainerManager(**options))
        try:
            conn.start_clipper()
            yield conn
        finally:
            conn.stop_all()

    @pytest.fixture
    def connect_again(self, options):
        def connect():
            conn = ClipperConnection(LocalProcessContainerManager(
                cluster_name=options["cluster_name"], state_dir=options["state_dir"]))
            conn.connect()
            return conn
        return connect

    @pytest.fixture
    def kill_replica(self, clipper_conn):
        def kill(name, version):
            running = [r for r in clipper_conn.cm.list_replicas()
                       if (r.model_name, r.model_version) == (name, version) and r.handle]
            assert running, f"no running replica of {name}:{version}"
            os.kill(int(running[0].handle), signal.SIGKILL)
        return kill
