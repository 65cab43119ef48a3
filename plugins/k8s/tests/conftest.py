"""Fixtures of the k8s plugin's tests: a fake Kubernetes API server and
managers pointed at it.

The fake (:class:`clipper_k8s.testing.FakeKubernetes`) serves the real
REST API and runs every pod as a local process, so these tests need
``redis-server`` on PATH (the cluster's Redis runs as a fake pod).  No test
here talks to a real cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clipper_k8s.manager import (
    MGMT_FRONTEND_IMAGE,
    QUERY_FRONTEND_IMAGE,
    REDIS_IMAGE,
)
from clipper_k8s.testing import FakeKubernetes, ImageSpec, ImageTable

__all__ = ["FakeKubernetes", "ImageSpec", "ImageTable", "base_images", "manager_options",
           "MODEL_IMAGE", "SUM_MODEL", "validate_received"]

#: The image name tests deploy; the image table maps it to a model directory.
MODEL_IMAGE = "registry.test/sum-model:1"

SUM_MODEL = '''\
import json
import os


def predict(inputs):
    return [json.dumps({"version": os.environ["CLIPPER_MODEL_VERSION"], "sum": float(sum(x))})
            for x in inputs]
'''


def base_images() -> ImageTable:
    """What the project's images mean locally: the frontends' ENTRYPOINTs run
    with this interpreter, Redis is ``redis-server`` from PATH."""
    return ImageTable({
        QUERY_FRONTEND_IMAGE: ImageSpec(entrypoint=("python", "-m", "clipper_frontends.query")),
        MGMT_FRONTEND_IMAGE: ImageSpec(
            entrypoint=("python", "-m", "clipper_frontends.management")),
        REDIS_IMAGE: ImageSpec(entrypoint=()),
    })


def manager_options(kube: FakeKubernetes, cluster: str, **extra: Any) -> dict[str, Any]:
    """Options pointing a manager at ``kube`` with short timeouts."""
    options: dict[str, Any] = dict(cluster_name=cluster, api_host=kube.url,
                                   kubernetes_proxy_addr=kube.url, start_timeout=60.0,
                                   deploy_timeout=60.0, min_ready_seconds=0,
                                   progress=lambda _line: None)
    options.update(extra)
    return options


def validate_received(kube: FakeKubernetes) -> int:
    """Validate every object body the fake received (POST, PUT) against the
    real schemas, strictly, as sent; return how many."""
    import kubernetes_validate

    checked = 0
    for verb, _path, body in kube.received:
        if verb not in ("POST", "PUT") or not isinstance(body, dict) or "kind" not in body:
            continue
        kubernetes_validate.validate(body, kube.k8s_version, strict=True)
        checked += 1
    return checked


def model_dir(root: Path, source: str = SUM_MODEL) -> Path:
    path = root / "sum-model"
    path.mkdir(parents=True, exist_ok=True)
    (path / "predict.py").write_text(source)
    return path


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[FakeKubernetes]:
    """A fake API server for one test; no pod process may outlive it."""
    images = base_images()
    images.add(MODEL_IMAGE, ImageSpec.model(model_dir(tmp_path)))
    fake = FakeKubernetes(images, workdir=tmp_path / "kube").start()
    try:
        yield fake
    finally:
        fake.stop()
    assert fake.pod_pids() == [], "the fake left pod processes running"
