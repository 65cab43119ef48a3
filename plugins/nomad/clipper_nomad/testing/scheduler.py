"""The scheduler of the one node: a registered job's task groups get
``Count`` allocations each (ports allocated, tasks and health watchers
started); a new job version replaces them, unless only counts changed;
scaling and deregistering (``purge``) stop what is no longer wanted.
Evaluations and deployments are not objects; failed allocations are not
rescheduled."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clipper_core.testing.process_pods import ImageTable, allocate_port

from .allocations import Allocation, TaskRun, now_ns
from .health import watch_health
from .state import ClusterState
from .tasks import TaskRunner, join_tasks

__all__ = ["Scheduler"]


class Scheduler:
    """Turns job registrations into running allocations in ``state``; task
    processes log under ``workdir/allocs/<alloc id>``."""

    def __init__(self, state: ClusterState, workdir: Path, images: ImageTable, *,
                 region: str, datacenter: str) -> None:
        self.state = state
        self.workdir = workdir
        self.images = images
        self.region = region
        self.datacenter = datacenter
        #: the task and health threads started (finished ones are dropped)
        self.threads: list[threading.Thread] = []

    def register(self, job: dict[str, Any], namespace: str) -> dict[str, Any]:
        """Store a new version of ``job`` and place or replace its allocations."""
        ns = job.get("Namespace") or namespace
        key = (ns, job["ID"])
        with self.state.cond:
            index = self.state.bump()
            old = self.state.jobs.get(key)
            stored = dict(job)
            stored.update({
                "Namespace": ns, "Region": job.get("Region") or self.region,
                "Priority": job.get("Priority") or 50, "Stop": False, "Status": "pending",
                "StatusDescription": "", "Stable": False,
                "Version": 0 if old is None else old["Version"] + 1,
                "CreateIndex": index if old is None else old["CreateIndex"],
                "ModifyIndex": index, "JobModifyIndex": index,
                "SubmitTime": now_ns()})
            self.state.jobs[key] = stored
            running = [a for a in self.state.allocs.values()
                       if (a.namespace, a.job_id) == key and a.desired_status == "run"]
            if old is not None and not old["Stop"] and _same_but_counts(old, stored):
                for a in running:
                    a.job = stored
                    a.job_version = stored["Version"]
            else:
                for a in running:
                    self.state.stop_alloc(a, "alloc is being updated due to job update")
            self.reconcile(stored)
            return {"EvalID": str(uuid.uuid4()), "EvalCreateIndex": index,
                    "JobModifyIndex": index, "Warnings": "", "Index": index,
                    "LastContact": 0, "KnownLeader": True}

    def scale(self, key: tuple[str, str], group: str, count: int) -> dict[str, Any]:
        """Set ``group``'s count in a new version of job ``key``."""
        with self.state.cond:
            job = self.state.jobs[key]
            index = self.state.bump()
            job = json.loads(json.dumps(job))
            for g in job["TaskGroups"]:
                if g["Name"] == group:
                    g["Count"] = count
            job.update({"Version": job["Version"] + 1, "ModifyIndex": index,
                        "JobModifyIndex": index})
            self.state.jobs[key] = job
            for a in self.state.allocs.values():
                if (a.namespace, a.job_id) == key and a.desired_status == "run":
                    a.job, a.job_version = job, job["Version"]
            self.reconcile(job)
            return {"EvalID": str(uuid.uuid4()), "EvalCreateIndex": index,
                    "JobModifyIndex": index, "Warnings": "", "Index": index,
                    "LastContact": 0, "KnownLeader": True}

    def deregister(self, key: tuple[str, str], purge: bool) -> dict[str, Any]:
        """Stop job ``key`` and wait for its tasks; ``purge`` forgets it."""
        with self.state.cond:
            index = self.state.bump()
            job = self.state.jobs[key]
            job.update({"Stop": True, "Status": "dead", "ModifyIndex": index})
            allocs = [a for a in self.state.allocs.values() if (a.namespace, a.job_id) == key]
            for a in allocs:
                if a.desired_status == "run":
                    self.state.stop_alloc(a, "alloc not needed since job was stopped")
        for a in allocs:
            join_tasks(a)
        with self.state.cond:
            if purge:
                self.state.jobs.pop(key, None)
                for a in allocs:
                    self.state.allocs.pop(a.id, None)
            self.state.bump()
        return {"EvalID": str(uuid.uuid4()), "EvalCreateIndex": index,
                "JobModifyIndex": index, "Index": index, "LastContact": 0,
                "KnownLeader": True}

    def reconcile(self, job: dict[str, Any]) -> None:
        """Make the running allocations match each group's count."""
        key = (job["Namespace"], job["ID"])
        for group in job["TaskGroups"]:
            live = sorted((a for a in self.state.allocs.values()
                           if (a.namespace, a.job_id) == key and a.group == group["Name"]
                           and a.desired_status == "run"), key=lambda a: a.index)
            for extra in live[group["Count"]:]:
                self.state.stop_alloc(extra, "alloc not needed due to job update")
            used = {a.index for a in live[:group["Count"]]}
            free = (i for i in range(10_000) if i not in used)
            for _ in range(group["Count"] - len(live)):
                self._place(job, group, next(free))
        job["Status"] = "running" if any(
            a.job_id == job["ID"] and not a.terminal for a in self.state.allocs.values()) \
            else job["Status"]

    def _place(self, job: dict[str, Any], group: dict[str, Any], index: int) -> None:
        """A new allocation ``index`` of ``group``: its ports, directory, tasks."""
        taken = {p for a in self.state.allocs.values() if not a.terminal for p in a.ports.values()}
        ports: dict[str, int] = {}
        for net in group.get("Networks") or ():
            for p in net.get("ReservedPorts") or ():
                ports[p["Label"]] = p["Value"]
            for p in net.get("DynamicPorts") or ():
                port = allocate_port()
                while port in taken:
                    port = allocate_port()
                ports[p["Label"]] = port
        alloc_id = str(uuid.uuid4())
        directory = self.workdir / "allocs" / alloc_id
        (directory / "alloc" / "logs").mkdir(parents=True, exist_ok=True)
        alloc = Allocation(id=alloc_id, namespace=job["Namespace"], job_id=job["ID"],
                           group=group["Name"], index=index, job_version=job["Version"],
                           job=job, ports=ports, dir=directory, create_index=self.state.index,
                           modify_index=self.state.index)
        for task in group["Tasks"]:
            run = TaskRun(name=task["Name"], spec=task)
            run.event("Received", "Task received by client")
            alloc.tasks[task["Name"]] = run
        self.state.allocs[alloc_id] = alloc
        for run in alloc.tasks.values():
            self._spawn(TaskRunner(self.state, alloc, run, images=self.images,
                                   region=self.region, datacenter=self.datacenter).run)
        if group.get("Update") or job.get("Update"):
            self._spawn(watch_health, self.state, alloc)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()


def _same_but_counts(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether two versions of a job differ in their groups' counts only."""
    def strip(job: dict[str, Any]) -> str:
        groups = [{k: v for k, v in g.items() if k != "Count"} for g in job["TaskGroups"]]
        body = {k: v for k, v in job.items() if k[0].isupper() and k not in _SERVER_FIELDS}
        body["TaskGroups"] = groups
        return json.dumps(body, sort_keys=True)
    return strip(old) == strip(new)


_SERVER_FIELDS = {"Stop", "Status", "StatusDescription", "Stable", "Version", "CreateIndex",
                  "ModifyIndex", "JobModifyIndex", "SubmitTime", "Region", "Namespace",
                  "Priority"}
