"""Helpers of the nomad plugin's tests: the fake Nomad agent and fast manager options.

The fake (:class:`clipper_nomad.testing.FakeNomad`) serves Nomad's
HTTP API and runs every allocation as a local process, so these tests need
``redis-server`` on PATH (the cluster's Redis runs as a fake allocation).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from clipper_nomad.testing import FakeNomad, ImageSpec, ImageTable

__all__ = ["FakeNomad", "ImageSpec", "ImageTable", "fast_options"]

SUM_MODEL = '''\
import json
import os


def predict(inputs):
    return [json.dumps({"version": os.environ["CLIPPER_MODEL_VERSION"], "sum": sum(x)})
            for x in inputs]
'''


def fast_options(fake: FakeNomad, tmp: Path, cluster: str, **extra: Any) -> dict[str, Any]:
    """Manager options for the fake: raw_exec with this interpreter, short
    restart delays and health checks, so a cluster starts in seconds."""
    options: dict[str, Any] = dict(
        cluster_name=cluster, nomad_address=fake.address, driver="raw_exec",
        python=sys.executable, build_dir=str(tmp / "builds"), restart_attempts=2,
        restart_interval_s=60.0, restart_delay_s=0.3, check_interval_s=1.0,
        min_healthy_time_s=0.0, model_min_healthy_time_s=0.5, start_timeout_s=60.0, deploy_timeout_s=60.0)
    options.update(extra)
    return options
