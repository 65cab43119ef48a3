"""Desired state restored on the real engine: restart policies on every
container, and what ``docker kill`` stopped started again by the next call."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from clipper_docker import cluster as lb

from clipper_core.connection import ClipperConnection
from clipper_core.errors import ClipperException

pytestmark = pytest.mark.docker

_inputs = iter(range(1, 1_000_000))


def answered_by_model(conn: ClipperConnection, app: str) -> bool:
    """One query with a new input answered by the model (the contract model
    answers the input's sum as a string)."""
    x = float(next(_inputs))
    try:
        resp = httpx.post(f"http://{conn.get_query_addr()}/{app}/predict",
                          json={"input": [x, 1.0]}, timeout=3)
    except httpx.HTTPError:
        return False
    return resp.status_code == 200 and not resp.json().get("default")


def admin_answers(conn: ClipperConnection, app: str) -> bool:
    try:
        return app in conn.get_all_apps()
    except ClipperException:
        return False


def seconds_until(predicate: Any, timeout: float = 60.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"not back within {timeout}s")


def test_every_container_has_a_restart_policy(cluster: ClipperConnection,
                                              docker_model_image: str) -> None:
    name = f"policy-{uuid.uuid4().hex[:6]}"
    cluster.deploy_model(name, "1", "doubles", docker_model_image)
    try:
        policies = {}
        for container in cluster.cm._containers():
            container.reload()
            policies[container.labels[lb.ROLE]] = \
                container.attrs["HostConfig"]["RestartPolicy"]["Name"]
        assert policies == {lb.ROLE_REDIS: "unless-stopped", lb.ROLE_MANAGEMENT: "unless-stopped",
                            lb.ROLE_QUERY: "unless-stopped", lb.ROLE_MODEL: "always"}
    finally:
        cluster.stop_models([name])


def test_docker_killed_replica_and_frontends_are_started_by_the_next_call(
        cluster: ClipperConnection, docker_model_image: str) -> None:
    app = f"rec-{uuid.uuid4().hex[:6]}"
    cluster.register_application(app, "doubles", "-1", 100_000)
    cluster.deploy_model(app, "1", "doubles", docker_model_image)
    cluster.link_model_to_app(app, app)
    try:
        seconds_until(lambda: answered_by_model(cluster, app))
        for role in (lb.ROLE_MODEL, lb.ROLE_QUERY, lb.ROLE_MANAGEMENT):
            (victim,) = [c for c in cluster.cm._containers(role)
                         if role != lb.ROLE_MODEL or c.labels.get(lb.MODEL_NAME) == app]
            victim.kill()  # `docker kill`: the engine's restart policy does not apply
            time.sleep(2.0)
            victim.reload()
            assert victim.status == "exited", f"{role}: {victim.status}"
            # the next call restores it; meanwhile it reports what runs
            if role == lb.ROLE_MODEL:
                assert cluster.get_num_replicas(app, "1") == 1
            else:
                cluster.cm.connect()
            victim.reload()
            assert victim.status in ("running", "restarting"), f"{role}: {victim.status}"
            back = (lambda: admin_answers(cluster, app)) if role == lb.ROLE_MANAGEMENT \
                else (lambda: answered_by_model(cluster, app))
            took = seconds_until(back)
            print(f"docker kill {role}: serving again {took:.1f}s after the next call")
    finally:
        cluster.stop_models([app])
