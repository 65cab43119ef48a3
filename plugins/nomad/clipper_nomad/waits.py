"""Allocations: waiting for a job's to run (and be healthy), saying why they
do not, and their logs."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

from clipper_core.errors import ClipperException, ContainerError

from .api import NomadApi

log = logging.getLogger("clipper.nomad")


class AllocationWaits(NomadApi):
    """Allocation waits, descriptions and logs of the manager."""

    def get_logs(self, logging_dir: str) -> list[str]:
        """Write ``<allocation name>-<short id>.<task>.log`` (stdout then stderr)
        for every allocation of the cluster; return the paths."""
        out_dir = Path(logging_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for job in self._cluster_jobs():
            for alloc in self._allocations(job["ID"]):
                for task in sorted(alloc.get("TaskStates") or {}):
                    streams = []
                    for kind in ("stdout", "stderr"):
                        text = self._call(f"read {kind} of {alloc['ID']}",
                                          self.client.client.stream_logs.stream,
                                          alloc["ID"], task, kind, plain=True)
                        streams.append(f"==> {kind} <==\n{text}")
                    fname = re.sub(r"[^A-Za-z0-9_.-]+", "_",
                                   f"{alloc['Name']}-{alloc['ID'][:8]}.{task}.log")
                    path = out_dir / fname
                    path.write_text("\n".join(streams))
                    paths.append(str(path))
        return paths

    def _wait(self, job_id: str, count: int, deadline: float, *, healthy: bool,
              error: type[ContainerError]) -> None:
        """Wait until ``count`` live allocations of ``job_id`` run (and are
        healthy) and no more than ``count`` remain; raise ``error`` naming a
        failed allocation and its task events, or the laggards at the deadline.
        Uses blocking queries, so it wakes up as soon as Nomad's state changes."""
        last, index = "", 0
        while True:
            allocs, index = self._watch_allocations(
                job_id, index, min(2.0, max(0.0, deadline - time.monotonic())))
            live = [a for a in allocs if a.get("DesiredStatus") == "run"]
            for alloc in live:
                deploy = alloc.get("DeploymentStatus") or {}
                if alloc.get("ClientStatus") in ("failed", "lost") or deploy.get("Healthy") is False:
                    raise error(f"Job {job_id}: {self._describe(alloc)}", job=job_id,
                                allocation=alloc["ID"])
            ready = [a for a in live if a.get("ClientStatus") == "running"
                     and (not healthy or (a.get("DeploymentStatus") or {}).get("Healthy"))]
            summary = (f"{job_id}: {len(ready)}/{count} allocation(s) "
                       f"{'healthy' if healthy else 'running'}")
            if summary != last:
                self._say(summary)
                last = summary
            if len(ready) >= count and len(live) == count:
                return
            if time.monotonic() > deadline:
                laggards = [a for a in live if a not in ready] or live
                detail = "; ".join(self._describe(a) for a in laggards[:3]) or \
                    "no allocation was placed"
                raise error(f"Timed out waiting for job {job_id} ({summary}): {detail}",
                            job=job_id)

    def _describe(self, alloc: dict[str, Any]) -> str:
        """``allocation <id> (<name>) is <status>: task <t>: <events>; stderr: <tail>``."""
        parts = [f"allocation {alloc['ID']} ({alloc.get('Name')}) is "
                 f"{alloc.get('ClientStatus')}"]
        deploy = alloc.get("DeploymentStatus") or {}
        if deploy.get("Healthy") is False:
            parts[0] += " and unhealthy (health checks did not pass in time)"
        for task, state in sorted((alloc.get("TaskStates") or {}).items()):
            events = [f"{e.get('Type')}: {e.get('DisplayMessage') or e.get('DriverError') or ''}"
                      .rstrip(": ") for e in (state.get("Events") or [])[-6:]]
            line = f"task {task!r} {state.get('State')} (restarts {state.get('Restarts', 0)})" \
                   f" events: {' | '.join(events)}"
            tail = self._log_tail(alloc["ID"], task)
            if tail:
                line += f"; stderr: {tail}"
            parts.append(line)
        return "; ".join(parts)

    def _log_tail(self, alloc_id: str, task: str, limit: int = 400) -> str:
        try:
            text = self._call("read logs", self.client.client.stream_logs.stream, alloc_id,
                              task, "stderr", plain=True, origin="end", offset=limit)
        except ClipperException:
            return ""
        return " / ".join(line for line in str(text).strip().splitlines()[-4:])
