"""The shared container manager contract, on a real Docker engine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from clipper_docker import cluster as lb

from clipper_core.connection import ClipperConnection
from clipper_core.testing.container_manager import ContainerManagerContract

pytestmark = pytest.mark.docker


class TestDockerContract(ContainerManagerContract):
    replica_timeout = 45.0

    @pytest.fixture
    def clipper_conn(self, cluster: ClipperConnection) -> ClipperConnection:
        return cluster

    @pytest.fixture
    def model_dir(self, docker_model_dir: Path) -> Path:
        return docker_model_dir

    @pytest.fixture
    def model_image(self, docker_model_image: str) -> str:
        return docker_model_image

    @pytest.fixture
    def connect_again(self, cluster: ClipperConnection) -> Callable[[], ClipperConnection]:
        from clipper_docker.manager import DockerContainerManager

        def connect() -> ClipperConnection:
            conn = ClipperConnection(DockerContainerManager(cluster_name=cluster.cm.cluster_name))
            conn.connect()
            return conn
        return connect

    @pytest.fixture
    def kill_replica(self, cluster: ClipperConnection,
                     kill_main_process: Callable[[Any], None]) -> Callable[[str, str], None]:
        def kill(name: str, version: str) -> None:
            running = [c for c in cluster.cm.model_containers(name, version) if c.status == "running"]
            assert running, f"no running replica of {name}:{version}"
            kill_main_process(running[0])
        return kill


def test_replica_containers_are_labelled(cluster: ClipperConnection,
                                        docker_model_image: str) -> None:
    """Sanity check that the contract ran against containers, not something else."""
    cluster.deploy_model("labelled", "3", "doubles", docker_model_image)
    try:
        (container,) = cluster.cm.model_containers("labelled", "3")
        assert container.labels[lb.CLUSTER] == cluster.cm.cluster_name
        assert container.labels[lb.ROLE] == lb.ROLE_MODEL
        assert container.labels[lb.MODEL_IMAGE] == docker_model_image
        assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"
    finally:
        cluster.stop_models(["labelled"])

