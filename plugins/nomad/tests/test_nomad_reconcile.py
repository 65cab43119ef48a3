"""Desired state restored on Nomad is Nomad's work: a killed task of any job
(model replica, query frontend, management frontend) is restarted in its
allocation by the job's restart policy, and serving comes back without the
manager doing anything.

What the fake lacks: rescheduling.  It restarts a task in place (the
``restart`` block) but never replaces a failed or lost allocation (the
``reschedule`` block, a lost node), so only the restart is shown here."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import httpx
import pytest
from clipper_nomad.manager import NomadContainerManager
from nomad_helpers import FakeNomad, fast_options

from clipper_core.connection import ClipperConnection
from clipper_core.errors import ClipperException
from clipper_core.testing.container_manager import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.slow]

_inputs = itertools.count(1)


def answered(conn: ClipperConnection) -> bool:
    x = float(next(_inputs))
    try:
        resp = httpx.post(f"http://{conn.get_query_addr()}/s/predict", json={"input": [x]},
                          timeout=3)
    except httpx.HTTPError:
        return False
    return resp.status_code == 200 and not resp.json()["default"]


def admin_answers(conn: ClipperConnection) -> bool:
    try:
        return "s" in conn.get_all_apps()
    except ClipperException:
        return False


def test_killed_tasks_are_restarted_in_their_allocations(
        fake_nomad: FakeNomad, tmp_path: Path, sum_model_dir: Path) -> None:
    conn = ClipperConnection(NomadContainerManager(**fast_options(fake_nomad, tmp_path, "rec")))
    try:
        conn.start_clipper()
        image = conn.build_model("sum", "1", str(sum_model_dir), "ignored")
        conn.deploy_model("sum", "1", "doubles", image)
        conn.register_application("s", "doubles", "none", 5_000_000)
        conn.link_model_to_app("s", "sum")
        wait_for(lambda: answered(conn), 30, "the model to answer")
        jobs = sorted(job_id for _, job_id in fake_nomad.jobs if "redis" not in job_id)
        assert len(jobs) == 3, jobs  # the model, the query and the management frontend
        for job_id in jobs:
            (alloc,) = [a for a in fake_nomad.job_allocations(job_id)
                        if a.desired_status == "run"]
            for task in alloc.tasks:
                fake_nomad.kill_task(alloc.id, task)
            start = time.monotonic()
            back = admin_answers if "mgmt" in job_id or "management" in job_id else answered
            wait_for(lambda b=back: b(conn), 30, f"serving after killing {job_id}")
            print(f"killed the tasks of {job_id}: serving after "
                  f"{time.monotonic() - start:.1f}s")
            assert [a.id for a in fake_nomad.job_allocations(job_id)
                    if a.desired_status == "run"] == [alloc.id]  # restarted in place
    finally:
        conn.stop_all()
