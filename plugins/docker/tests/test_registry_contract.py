"""The shared model registry contract on the ``docker`` registry (a real engine).

Artifacts are empty images (``FROM scratch`` plus a label), built locally in
a fraction of a second; every image the tests make is removed afterwards.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest

from clipper_core.testing.registry import MakeArtifact, RegistryContract

pytestmark = pytest.mark.docker

LABEL = "ai.clipper-core.test"


class TestDockerRegistryContract(RegistryContract):
    registry_name = "docker"

    @pytest.fixture
    def registry_options(self, docker_client: Any) -> dict[str, Any]:
        return {"client": docker_client}

    @pytest.fixture
    def make_artifact(self, docker_client: Any) -> Iterator[MakeArtifact]:
        def make(tag: str) -> str:
            dockerfile = f"FROM scratch\nLABEL {LABEL}=registry-contract artifact={tag}\n"
            image, _ = docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()),
                                                  tag=f"registry-contract-artifact:{tag}",
                                                  rm=True)
            return str(image.tags[0])
        yield make
        for image in docker_client.images.list(filters={"label": f"{LABEL}=registry-contract"}):
            docker_client.images.remove(image.id, force=True)
