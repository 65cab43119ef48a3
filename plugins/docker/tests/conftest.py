"""Fixtures of the docker plugin's tests: a real engine, real images, one cluster.

The tests read what ``.ci/docker-env.sh`` exports: ``CLIPPER_TEST_BASE_IMAGE``
(the Python image the project's images are built from; default
``python:3.11-slim``), ``CLIPPER_TEST_REDIS_IMAGE`` (default ``redis:7``),
``CLIPPER_TEST_REGISTRY`` (``host:port`` of a registry for push tests) and
``CLIPPER_BUILD_CA_BUNDLE``.  Without an engine the tests skip, unless
``CLIPPER_TEST_DOCKER=1`` says one must be there (CI), where they fail.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from clipper_core.connection import ClipperConnection


def free_port() -> int:
    """A TCP port free on all interfaces right now, below the kernel's
    ephemeral range (docker publishes on 0.0.0.0, and a port from the
    ephemeral range may be taken by an outgoing connection before the
    container binds it)."""
    for _ in range(500):
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32000")


@pytest.fixture(scope="session")
def docker_client() -> Any:
    """A client of a running engine (skip, or fail in CI, without one)."""
    from clipper_docker.engine import connect_engine

    from clipper_core.errors import ContainerError

    try:
        return connect_engine()
    except ContainerError as exc:
        if os.environ.get("CLIPPER_TEST_DOCKER") == "1":
            pytest.fail(f"CLIPPER_TEST_DOCKER=1 but no Docker engine: {exc}")
        pytest.skip(f"no Docker engine: {exc} (source .ci/docker-env.sh)")


@pytest.fixture(scope="session")
def redis_image() -> str:
    return os.environ.get("CLIPPER_TEST_REDIS_IMAGE", "redis:7")


@pytest.fixture(scope="session")
def registry() -> str:
    value = os.environ.get("CLIPPER_TEST_REGISTRY")
    if not value:
        if os.environ.get("CLIPPER_TEST_DOCKER") == "1":
            pytest.fail("CLIPPER_TEST_DOCKER=1 but CLIPPER_TEST_REGISTRY is not set")
        pytest.skip("no local registry (CLIPPER_TEST_REGISTRY; source .ci/docker-env.sh)")
    return value


@pytest.fixture(scope="session")
def project_images(docker_client: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """The project's images built from this checkout (cached layers make a
    rebuild after a code change take seconds).

    With a test registry, the model base image is also pushed to it in the
    background (compressing its large layers takes a minute on a small CI
    machine), so the push test later uploads only the model's own layers.
    """
    from clipper_docker.images import build_project_images

    images = build_project_images(
        python_base_image=os.environ.get("CLIPPER_TEST_BASE_IMAGE", "python:3.11-slim"),
        client=docker_client)
    registry = os.environ.get("CLIPPER_TEST_REGISTRY")
    wanted = any("registry_warm" in getattr(item, "fixturenames", ())
                 for item in request.session.items)
    if registry and wanted:
        _WARM["thread"] = threading.Thread(
            target=_push_base, args=(docker_client, images.model_base, registry),
            name="registry-warm", daemon=True)
        _WARM["thread"].start()
    yield images


_WARM: dict[str, Any] = {}


def _push_base(client: Any, image: str, registry: str) -> None:
    from clipper_docker.builds import push_image

    target = f"{registry}/warm/{image.split('/')[-1]}"
    try:
        client.images.get(image).tag(target)
        push_image(client, target)
    except Exception as exc:  # noqa: BLE001 - re-raised by registry_warm
        _WARM["error"] = exc


@pytest.fixture
def registry_warm(registry: str, project_images: Any) -> None:
    """Wait for the background push of the model base image to finish."""
    if "thread" in _WARM:
        _WARM["thread"].join(timeout=300)
    if "error" in _WARM:
        raise _WARM["error"]


def manager_options(cluster: str, redis_image: str, images: Any, **extra: Any) -> dict[str, Any]:
    """Constructor options for an isolated cluster on free ports."""
    return {"cluster_name": cluster, "clipper_query_port": free_port(),
            "clipper_management_port": free_port(), "clipper_rpc_port": free_port(),
            "redis_port": free_port(), "redis_image": redis_image, "images": images,
            "start_timeout": 60.0, **extra}


@pytest.fixture(scope="session")
def make_manager(redis_image: str, project_images: Any) -> Callable[..., Any]:
    """``make_manager(cluster, **options)``: a DockerContainerManager on free ports."""
    from clipper_docker.manager import DockerContainerManager

    def make(cluster: str, **options: Any) -> Any:
        return DockerContainerManager(**manager_options(cluster, redis_image, project_images,
                                                        **options))
    return make


def unique_cluster(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def cluster(make_manager: Callable[..., Any]) -> Iterator[ClipperConnection]:
    """One started cluster shared by a module's tests (each uses its own names)."""
    conn = ClipperConnection(make_manager(unique_cluster("t")))
    conn.start_clipper()
    try:
        yield conn
    finally:
        conn.stop_all()


@pytest.fixture(scope="module")
def docker_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from clipper_core.testing.container_manager import PREDICT_PY

    path = tmp_path_factory.mktemp("docker-model")
    (path / "predict.py").write_text(PREDICT_PY)
    return path


@pytest.fixture(scope="module")
def docker_model_image(cluster: ClipperConnection, docker_model_dir: Path) -> Iterator[str]:
    """The contract suite's test model, built once per module."""
    tag = cluster.build_model(f"docker-test-model-{uuid.uuid4().hex[:6]}", "1", str(docker_model_dir),
                              "default")
    yield tag
    try:
        cluster.cm.client.images.remove(tag, force=True)
    except Exception:  # noqa: BLE001 - best-effort cleanup of a test image
        pass


@pytest.fixture(scope="session")
def kill_main_process() -> Callable[[Any], None]:
    """``kill(container)``: SIGKILL a container's main process from the host, as a crash would
    (``docker kill`` counts as a manual stop and disables the restart policy)."""
    import signal

    def kill(container: Any) -> None:
        container.reload()
        pid = int(container.attrs["State"]["Pid"])
        assert pid > 0, f"container {container.name} is not running"
        os.kill(pid, signal.SIGKILL)
    return kill


@pytest.fixture
def host_redis() -> Iterator[int]:
    """A redis-server process on the host (an external Redis for ``redis_ip``)."""
    import shutil

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
