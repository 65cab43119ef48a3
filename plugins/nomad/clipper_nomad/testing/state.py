"""The agent's state: jobs, allocations and service registrations, and the
index every change bumps (answers carry it as ``X-Nomad-Index``; blocking
queries wait on it)."""

from __future__ import annotations

import threading
from typing import Any

from .allocations import NODE_ID, Allocation, now_ns

__all__ = ["ClusterState"]


class ClusterState:
    """Everything the agent knows, guarded by :attr:`cond` (an RLock'd condition
    notified on every change)."""

    def __init__(self, datacenter: str) -> None:
        self.datacenter = datacenter
        self.index = 10
        #: (namespace, job id) -> the job as stored
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.allocs: dict[str, Allocation] = {}
        #: (namespace, service name) -> registrations
        self.services: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.cond = threading.Condition(threading.RLock())

    def bump(self) -> int:
        """Advance the index (call with :attr:`cond` held); returns the new one."""
        self.index += 1
        self.cond.notify_all()
        return self.index

    def stop_alloc(self, alloc: Allocation, why: str) -> None:
        """Ask an allocation's tasks to stop (they are killed by their threads)."""
        with self.cond:
            alloc.desired_status = "stop"
            alloc.desired_description = why
            alloc.stop_event.set()
            self.deregister_services(alloc)
            alloc.modify_index = self.bump()

    def update_client_status(self, alloc: Allocation) -> None:
        """Derive ``alloc``'s client status from its tasks; register or deregister
        its services, and update its job's status."""
        with self.cond:
            states = {t.state for t in alloc.tasks.values()}
            if any(t.failed for t in alloc.tasks.values()):
                status = "failed"
            elif "running" in states:
                status = "running"
            elif "pending" in states:
                status = "pending"
            else:
                status = "complete"
            alloc.client_status = status
            alloc.modify_time = now_ns()
            group = alloc.group_spec
            if status == "failed" and alloc.healthy is None and \
                    (group.get("Update") or alloc.job.get("Update")):
                alloc.healthy = False
            if status == "running":
                self.register_services(alloc)
            if alloc.terminal:
                self.deregister_services(alloc)
            alloc.modify_index = self.bump()
            job = self.jobs.get((alloc.namespace, alloc.job_id))
            if job is not None and job.get("Version") == alloc.job_version:
                live = [a for a in self.allocs.values()
                        if a.job_id == job["ID"] and a.namespace == job["Namespace"]]
                if job["Stop"] or (live and all(a.terminal for a in live)):
                    job["Status"] = "dead"
                elif any(a.client_status == "running" for a in live):
                    job["Status"] = "running"


    def register_services(self, alloc: Allocation) -> None:
        """Register the ``nomad``-provider services of a running ``alloc``."""
        group = alloc.group_spec
        specs = list(group.get("Services") or [])
        for task in group["Tasks"]:
            specs += task.get("Services") or []
        for svc in specs:
            if svc.get("Provider") != "nomad":
                continue
            key = (alloc.namespace, svc["Name"])
            entries = self.services.setdefault(key, [])
            sid = f"_nomad-task-{alloc.id}-{alloc.group}-{svc['Name']}-{svc.get('PortLabel', '')}"
            if any(e["ID"] == sid for e in entries):
                continue
            port = svc.get("PortLabel") or ""
            entries.append({
                "ID": sid, "ServiceName": svc["Name"], "Namespace": alloc.namespace,
                "NodeID": NODE_ID, "Datacenter": self.datacenter, "JobID": alloc.job_id,
                "AllocID": alloc.id, "Tags": list(svc.get("Tags") or []),
                "Address": "127.0.0.1",
                "Port": int(port) if port.isdigit() else alloc.ports.get(port, 0),
                "CreateIndex": self.index, "ModifyIndex": self.index})

    def deregister_services(self, alloc: Allocation) -> None:
        """Remove every registration of ``alloc``."""
        for key in list(self.services):
            self.services[key] = [e for e in self.services[key] if e["AllocID"] != alloc.id]
            if not self.services[key]:
                del self.services[key]


    def services_view(self, namespace: str) -> dict[str, list[dict[str, Any]]]:
        """Service name -> registrations in ``namespace`` (a copy, for templates)."""
        return {name: list(entries) for (ns, name), entries in self.services.items()
                if ns == namespace}
