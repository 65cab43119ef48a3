"""build_model with the docker driver: an image built by the docker plugin.

Needs a Docker engine and a Python base image (``source .ci/docker-env.sh``):
without them the test skips, unless ``CLIPPER_TEST_DOCKER=1`` says they must
be there (CI), where it fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from clipper_nomad.manager import NomadContainerManager


def require(what: str, ok: bool) -> None:
    if ok:
        return
    if os.environ.get("CLIPPER_TEST_DOCKER") == "1":
        pytest.fail(f"CLIPPER_TEST_DOCKER=1 but {what}")
    pytest.skip(f"{what} (source .ci/docker-env.sh)")


@pytest.mark.docker
@pytest.mark.slow
def test_docker_driver_builds_the_model_image(tmp_path: Path, sum_model_dir: Path) -> None:
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine"
        require(f"no Docker engine: {exc}", False)
    base = os.environ.get("CLIPPER_TEST_BASE_IMAGE")
    require("CLIPPER_TEST_BASE_IMAGE is not set", bool(base))
    manager = NomadContainerManager("build", nomad_address="http://127.0.0.1:9",
                                    driver="docker")
    tag = manager.build_model("nomad-sum", "1", str(sum_model_dir), str(base))
    try:
        assert tag == "nomad-sum:1"
        out = client.containers.run(tag, remove=True, entrypoint=[
            "python3", "-c", "print(open('/model/predict.py').read())"])
        assert b"def predict(inputs)" in out
    finally:
        client.images.remove(tag, force=True)


def test_docker_driver_finds_the_builder_by_name(monkeypatch: pytest.MonkeyPatch,
                                                 sum_model_dir: Path) -> None:
    """No engine needed: the image builder is the ``docker`` model registry
    looked up through the plugin registry, never the docker plugin's manager."""
    calls: list[tuple[object, ...]] = []

    class Builder:
        def __init__(self, **options: object) -> None:
            calls.append(("init", options))

        def build_model(self, *args: object) -> str:
            calls.append(("build", *args))
            return "reg.test/nomad-sum:1"

    class Backend:
        plugin = "fake"
        factory = Builder

    monkeypatch.setattr("clipper_core.plugins.get_backend", lambda kind, name, pm=None: (
        Backend if (kind, name) == ("registries", "docker") else None))
    manager = NomadContainerManager("build", nomad_address="http://127.0.0.1:9",
                                    driver="docker")
    assert manager.build_model("nomad-sum", "1", str(sum_model_dir), "default",
                               "reg.test") == "reg.test/nomad-sum:1"
    assert calls == [("init", {"container_registry": "reg.test"}),
                     ("build", "nomad-sum", "1", str(sum_model_dir), "default", "reg.test",
                      None)]
