"""The shared container-manager contract, run on the fake Nomad API.

The cluster (Redis, management and query frontends, model replicas) runs as
fake allocations: real processes started by the fake from the jobs the
manager submits, found through Nomad native service discovery.
"""

from __future__ import annotations

import pytest
from clipper_nomad.manager import NomadContainerManager
from nomad_helpers import FakeNomad, fast_options

from clipper_core.connection import ClipperConnection
from clipper_core.testing.container_manager import ContainerManagerContract

pytestmark = [pytest.mark.redis, pytest.mark.slow]


class TestNomadContract(ContainerManagerContract):
    replica_timeout = 30.0

    @pytest.fixture(scope="class")
    def fake(self, tmp_path_factory):
        fake = FakeNomad(tmp_path_factory.mktemp("nomad")).start()
        try:
            yield fake
        finally:
            fake.stop()
        assert fake.pids() == []

    @pytest.fixture(scope="class")
    def options(self, fake, tmp_path_factory):
        return fast_options(fake, tmp_path_factory.mktemp("contract"), "contract")

    @pytest.fixture(scope="class")
    def clipper_conn(self, options):
        conn = ClipperConnection(NomadContainerManager(**options))
        try:
            conn.start_clipper()
            yield conn
        finally:
            conn.stop_all()

    @pytest.fixture
    def connect_again(self, options):
        def connect():
            conn = ClipperConnection(NomadContainerManager(**options))
            conn.connect()
            return conn
        return connect

    @pytest.fixture
    def kill_replica(self, clipper_conn, fake):
        def kill(name, version):
            running = [r for r in clipper_conn.cm.list_replicas()
                       if (r.model_name, r.model_version) == (name, version)
                       and r.status == "running"]
            assert running, f"no running replica of {name}:{version}"
            fake.kill_task(running[0].handle, "replica")
        return kill
