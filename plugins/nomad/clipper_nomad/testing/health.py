"""Deployment health of an allocation whose job has an ``Update`` block:
its services' http/tcp checks (``HealthCheck`` ``checks``) or its tasks'
states (``task_states``) must hold for ``MinHealthyTime`` before
``HealthyDeadline``; the result is ``DeploymentStatus.Healthy``."""

from __future__ import annotations

import http.client
import time
from typing import Any

from clipper_core.testing.process_pods import http_probe, tcp_probe
from clipper_nomad.jobspec import SECOND

from .allocations import Allocation
from .state import ClusterState

__all__ = ["check", "watch_health"]


def watch_health(state: ClusterState, alloc: Allocation) -> None:
    """Decide ``alloc.healthy`` (a thread's target); returns once decided or stopped."""
    group = alloc.group_spec
    update = {"HealthCheck": "checks", "MinHealthyTime": 10 * SECOND,
              "HealthyDeadline": 5 * 60 * SECOND}
    update.update(alloc.job.get("Update") or {})
    update.update(group.get("Update") or {})
    checks = [(svc, chk) for svc in group.get("Services") or []
              for chk in svc.get("Checks") or []]
    for task in group["Tasks"]:
        checks += [(svc, chk) for svc in task.get("Services") or []
                   for chk in svc.get("Checks") or []]
    deadline = time.monotonic() + update["HealthyDeadline"] / SECOND
    healthy_since: float | None = None
    interval = min([c["Interval"] / SECOND for _, c in checks] or [0.2])
    while not alloc.stop_event.is_set():
        with state.cond:
            running = all(t.state == "running" for t in alloc.tasks.values())
            failed = alloc.client_status == "failed"
        ok = running and (update["HealthCheck"] != "checks"
                          or all(check(alloc, s, c) for s, c in checks))
        now = time.monotonic()
        healthy_since = (healthy_since or now) if ok else None
        with state.cond:
            if healthy_since is not None and \
                    now - healthy_since >= update["MinHealthyTime"] / SECOND:
                alloc.healthy = True
            elif failed or now > deadline:
                alloc.healthy = False
            if alloc.healthy is not None:
                alloc.modify_index = state.bump()
                return
        alloc.stop_event.wait(min(interval, 0.25) if ok else interval)


def check(alloc: Allocation, svc: dict[str, Any], chk: dict[str, Any]) -> bool:
    """Run one service check ``chk`` of ``svc`` against ``alloc``'s ports."""
    label = chk.get("PortLabel") or svc.get("PortLabel") or ""
    port = int(label) if label.isdigit() else alloc.ports.get(label)
    if port is None:
        return False
    timeout = chk["Timeout"] / SECOND
    if chk["Type"] == "tcp":
        return tcp_probe(port, timeout=timeout)[0]
    headers = {k: v[0] for k, v in (chk.get("Header") or {}).items() if v}
    if not headers:
        return http_probe(port, chk["Path"], timeout=timeout)[0]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(chk.get("Method") or "GET", chk["Path"], headers=headers)
        return 200 <= conn.getresponse().status < 400
    except OSError:
        return False
    finally:
        conn.close()

