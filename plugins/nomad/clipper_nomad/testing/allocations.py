"""Allocations as the fake client node runs them: each task's run (state,
restarts, events as Nomad reports them) and the allocation's wire shapes
(``AllocationListStub`` and the full ``Allocation``)."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import attrs

__all__ = ["NODE_ID", "NODE_NAME", "Allocation", "DriverError", "TaskRun", "now_ns"]

#: The one client node every allocation runs on.
NODE_ID = "f0a2e5c4-1d1e-4a63-9c3e-000000000001"
NODE_NAME = "fake-node-1"


def now_ns() -> int:
    """Nomad's timestamps: nanoseconds since the epoch."""
    return time.time_ns()


@attrs.define(eq=False)
class TaskRun:
    """One task of one allocation: its process, state and events."""

    name: str
    spec: dict[str, Any]
    state: str = "pending"
    failed: bool = False
    restarts: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    last_restart: str | None = None
    events: list[dict[str, Any]] = attrs.Factory(list)
    proc: subprocess.Popen[bytes] | None = None
    running_since: float | None = None

    def event(self, type_: str, message: str = "", **details: Any) -> None:
        """Append a task event as Nomad words it (``fails_task``, ``exit_code``,
        ``signal`` and ``restart_reason`` go to their fields and ``Details``)."""
        ev = {"Type": type_, "Time": now_ns(), "DisplayMessage": message,
              "Message": message if type_ == "Driver Failure" else "",
              "Details": {k: str(v) for k, v in details.items()},
              "FailsTask": bool(details.get("fails_task", False)),
              "ExitCode": int(details.get("exit_code", 0)),
              "Signal": int(details.get("signal", 0)),
              "DriverError": message if type_ == "Driver Failure" else "",
              "RestartReason": message if type_ == "Restarting" else "",
              "KillTimeout": 0, "KillError": "", "StartDelay": 0}
        self.events.append(ev)

    def to_wire(self) -> dict[str, Any]:
        return {"State": self.state, "Failed": self.failed, "Restarts": self.restarts,
                "LastRestart": self.last_restart, "StartedAt": self.started_at,
                "FinishedAt": self.finished_at, "Events": list(self.events)}


@attrs.define(eq=False)
class Allocation:
    """One placement of a task group: its ports, directory, tasks and status."""

    id: str
    namespace: str
    job_id: str
    group: str
    index: int
    job_version: int
    job: dict[str, Any]
    ports: dict[str, int]
    dir: Path
    create_index: int
    modify_index: int
    desired_status: str = "run"
    desired_description: str = ""
    client_status: str = "pending"
    client_description: str = ""
    healthy: bool | None = None
    tasks: dict[str, TaskRun] = attrs.Factory(dict)
    stop_event: threading.Event = attrs.Factory(threading.Event)
    create_time: int = attrs.Factory(now_ns)
    modify_time: int = attrs.Factory(now_ns)

    @property
    def name(self) -> str:
        return f"{self.job_id}.{self.group}[{self.index}]"

    @property
    def group_spec(self) -> dict[str, Any]:
        return next(g for g in self.job["TaskGroups"] if g["Name"] == self.group)

    def stub(self) -> dict[str, Any]:
        deploy = None if self.healthy is None else {
            "Healthy": self.healthy, "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Canary": False, "ModifyIndex": self.modify_index}
        return {"ID": self.id, "EvalID": str(uuid.uuid4()), "Name": self.name,
                "Namespace": self.namespace, "NodeID": NODE_ID, "NodeName": NODE_NAME,
                "JobID": self.job_id, "JobType": self.job.get("Type", "service"),
                "JobVersion": self.job_version, "TaskGroup": self.group,
                "DesiredStatus": self.desired_status,
                "DesiredDescription": self.desired_description,
                "ClientStatus": self.client_status,
                "ClientDescription": self.client_description,
                "TaskStates": {n: t.to_wire() for n, t in self.tasks.items()},
                "DeploymentStatus": deploy, "FollowupEvalID": "", "RescheduleTracker": None,
                "CreateIndex": self.create_index, "ModifyIndex": self.modify_index,
                "CreateTime": self.create_time, "ModifyTime": self.modify_time}

    def full(self) -> dict[str, Any]:
        out = self.stub()
        ports = [{"Label": label, "Value": port, "To": 0, "HostIP": "127.0.0.1"}
                 for label, port in sorted(self.ports.items())]
        tasks = {t["Name"]: {"Cpu": {"CpuShares": t["Resources"]["CPU"]},
                             "Memory": {"MemoryMB": t["Resources"]["MemoryMB"]}}
                 for t in self.group_spec["Tasks"]}
        out.update({"Job": self.job, "AllocatedResources": {
            "Tasks": tasks, "Shared": {"Ports": ports, "Networks": [{
                "Mode": "host", "IP": "127.0.0.1", "Device": "lo",
                "DynamicPorts": [{"Label": p["Label"], "Value": p["Value"], "To": 0}
                                 for p in ports]}]}}})
        return out

    @property
    def terminal(self) -> bool:
        return self.client_status in ("complete", "failed", "lost")



class DriverError(Exception):
    """A task could not start (image pull, missing program, template): reported
    as the task's ``Driver Failure`` event."""
