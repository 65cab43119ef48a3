"""The shared container-manager contract, on the fake Kubernetes API server."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from clipper_k8s.manager import KubernetesContainerManager

from clipper_core.connection import ClipperConnection
from clipper_core.testing.container_manager import PREDICT_PY, ContainerManagerContract

from .conftest import (
    FakeKubernetes,
    ImageSpec,
    base_images,
    manager_options,
    validate_received,
)

pytestmark = pytest.mark.redis

CONTRACT_IMAGE = "registry.test/contract-model:1"


class TestKubernetesContract(ContainerManagerContract):
    replica_timeout = 30.0

    @pytest.fixture(scope="class")
    def kube(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeKubernetes]:
        tmp = tmp_path_factory.mktemp("k8s-contract")
        model = tmp / "contract-model"
        model.mkdir()
        (model / "predict.py").write_text(PREDICT_PY)
        images = base_images()
        images.add(CONTRACT_IMAGE, ImageSpec.model(model))
        fake = FakeKubernetes(images, workdir=tmp / "kube").start()
        try:
            yield fake
        finally:
            fake.stop()
        assert fake.pod_pids() == [], "the fake left pod processes running"
        # everything the manager sent during the suite is valid as sent
        assert validate_received(fake) > 5

    @pytest.fixture(scope="class")
    def clipper_conn(self, kube: FakeKubernetes) -> Iterator[ClipperConnection]:
        conn = ClipperConnection(KubernetesContainerManager(**manager_options(kube, "contract")))
        try:
            conn.start_clipper()
            yield conn
        finally:
            conn.stop_all()

    @pytest.fixture
    def model_image(self) -> str:
        return CONTRACT_IMAGE

    @pytest.fixture
    def connect_again(self, kube: FakeKubernetes) -> Any:
        def connect() -> ClipperConnection:
            conn = ClipperConnection(KubernetesContainerManager(
                **manager_options(kube, "contract")))
            conn.connect()
            return conn
        return connect

    @pytest.fixture
    def kill_replica(self, kube: FakeKubernetes, clipper_conn: ClipperConnection) -> Any:
        def kill(name: str, version: str) -> None:
            pods = [r.handle for r in clipper_conn.cm.list_replicas()
                    if (r.model_name, r.model_version) == (name, version)
                    and r.status == "running"]
            assert pods, f"no running replica of {name}:{version}"
            runner = kube.runners[("default", pods[0])]
            pid = runner.containers[0].process.pid
            os.kill(pid, signal.SIGKILL)  # the container crashes; the kubelet restarts it
        return kill
