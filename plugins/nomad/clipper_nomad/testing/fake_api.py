"""A fake Nomad agent (server + one client node) speaking Nomad's HTTP API.

No Nomad agent can run in CI, so clipper-nomad is tested against this.  It
serves the real paths, status codes and JSON shapes python-nomad and the
plugin use, and it *really runs* every allocation's tasks as local processes:

- ``POST /v1/jobs`` and ``POST /v1/job/<id>`` register a job (400 with
  Nomad-style text when the job breaks the JSON job specification, checked
  with :mod:`clipper_nomad.jobspec`), ``GET``/``DELETE /v1/job/<id>``
  (``?purge=true``), ``GET``/``POST /v1/job/<id>/scale``,
  ``GET /v1/job/<id>/allocations``, ``GET /v1/jobs?prefix=&meta=``,
  ``GET /v1/allocations``, ``GET /v1/allocation/<id>``,
  ``GET /v1/client/fs/logs/<alloc>?task=&type=&plain=``,
  ``GET /v1/service/<name>``, ``GET /v1/services``, ``GET /v1/status/leader``,
  ``GET /v1/agent/self``.  Every answer has ``X-Nomad-Index``; ``GET``s with
  ``?index=N&wait=5s`` are blocking queries.  With ``token=`` set, requests
  without that ``X-Nomad-Token`` get 403 "Permission denied".
- Drivers: ``raw_exec`` runs ``command`` + ``args``; ``docker`` looks the image
  up in the ``images`` table the test gives (``image -> FakeImage(argv,
  model_dir)``): ``argv`` stands for the image's entrypoint (``config.args``
  are appended; a ``config.command`` replaces it, with ``python`` meaning this
  interpreter), and the image's ``/model`` is ``model_dir``.  An image not in
  the table fails like a failed pull ("Driver Failure").
- Each allocation gets its own ports (dynamic ports from the free range,
  reserved ports as given), exported as ``NOMAD_PORT_<label>``,
  ``NOMAD_IP_<label>``, ``NOMAD_ADDR_<label>`` ...; ``${NOMAD_*}`` in args and
  env are interpolated; templates using ``nomadService`` ranges and ``env``
  are rendered (``Envvars`` templates become environment variables) and
  re-rendered while the task runs: a change restarts it (``change_mode``
  ``restart``, the default), outside the restart policy's budget.
- Restart policies (attempts in interval, delay, mode fail/delay) with Nomad's
  task events; group services with provider ``nomad`` are registered with the
  allocation's address while it runs; http/tcp checks are run and, for jobs
  with an ``Update`` block, set ``DeploymentStatus.Healthy`` after
  ``MinHealthyTime`` (``HealthCheck`` ``checks`` or ``task_states``).

Not modelled: evaluations and deployments as objects, rescheduling of failed
allocations, several nodes, Consul, template change modes other than restart.  Everything runs on one "node" at ``127.0.0.1``.
"""

from __future__ import annotations

import base64
import ctypes
import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import attrs

from clipper_core.testing.process_pods import (
    ImageSpec,
    ImageTable,
    allocate_port,
    http_probe,
    local_argv,
    tcp_probe,
)
from clipper_nomad.jobspec import SECOND, job_problems

NODE_ID = "f0a2e5c4-1d1e-4a63-9c3e-000000000001"
NODE_NAME = "fake-node-1"


def _now_ns() -> int:
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
        ev = {"Type": type_, "Time": _now_ns(), "DisplayMessage": message,
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
    create_time: int = attrs.Factory(_now_ns)
    modify_time: int = attrs.Factory(_now_ns)

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


class FakeNomad:
    """The fake agent.  ``start()`` serves on ``address``; ``stop()`` kills
    every task process and stops the server.  Usable as a context manager."""

    def __init__(self, workdir: str | os.PathLike[str], *,
                 images: ImageTable | dict[str, ImageSpec] | None = None, token: str | None = None,
                 region: str = "global", datacenter: str = "dc1") -> None:
        self.workdir = Path(workdir)
        self.images = images if isinstance(images, ImageTable) else ImageTable(images)
        self.token = token
        self.region = region
        self.datacenter = datacenter
        self.index = 10
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.allocs: dict[str, Allocation] = {}
        #: service name -> registrations
        self.services: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.requests: list[tuple[str, str]] = []
        self._cond = threading.Condition(threading.RLock())
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------
    @property
    def address(self) -> str:
        assert self._server is not None, "FakeNomad not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeNomad:
        fake = self

        class Handler(_Handler):
            nomad = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        thread = threading.Thread(target=self._server.serve_forever, name="fake-nomad",
                                  daemon=True)
        thread.start()
        return self

    def stop(self) -> None:
        """Stop every allocation (tasks get their kill timeout, then SIGKILL),
        then the HTTP server."""
        with self._cond:
            allocs = list(self.allocs.values())
        for alloc in allocs:
            self._stop_alloc(alloc, "agent shutting down")
        deadline = time.monotonic() + 15
        for t in list(self._threads):
            t.join(timeout=max(0.1, deadline - time.monotonic()))
        for alloc in allocs:  # anything a stuck task thread left behind
            for task in alloc.tasks.values():
                _kill(task.proc, 0.0)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeNomad:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers for tests -------------------------------------------------
    def job_allocations(self, job_id: str, namespace: str = "default") -> list[Allocation]:
        with self._cond:
            return [a for a in self.allocs.values()
                    if a.job_id == job_id and a.namespace == namespace]

    def kill_task(self, alloc_id: str, task: str) -> None:
        """Kill a task's process (SIGKILL) as if it crashed."""
        proc = self.allocs[alloc_id].tasks[task].proc
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

    def pids(self) -> list[int]:
        """PIDs of every task process still running."""
        with self._cond:
            return [t.proc.pid for a in self.allocs.values() for t in a.tasks.values()
                    if t.proc is not None and t.proc.poll() is None]

    # -- state changes (called with the lock held) ---------------------------
    def _bump(self) -> int:
        self.index += 1
        self._cond.notify_all()
        return self.index

    def register(self, job: dict[str, Any], namespace: str) -> dict[str, Any]:
        ns = job.get("Namespace") or namespace
        key = (ns, job["ID"])
        with self._cond:
            index = self._bump()
            old = self.jobs.get(key)
            stored = dict(job)
            stored.update({
                "Namespace": ns, "Region": job.get("Region") or self.region,
                "Priority": job.get("Priority") or 50, "Stop": False, "Status": "pending",
                "StatusDescription": "", "Stable": False,
                "Version": 0 if old is None else old["Version"] + 1,
                "CreateIndex": index if old is None else old["CreateIndex"],
                "ModifyIndex": index, "JobModifyIndex": index,
                "SubmitTime": _now_ns()})
            self.jobs[key] = stored
            running = [a for a in self.allocs.values()
                       if (a.namespace, a.job_id) == key and a.desired_status == "run"]
            if old is not None and not old["Stop"] and _same_but_counts(old, stored):
                for a in running:
                    a.job = stored
                    a.job_version = stored["Version"]
            else:
                for a in running:
                    self._stop_alloc(a, "alloc is being updated due to job update")
            self._reconcile(stored)
            return {"EvalID": str(uuid.uuid4()), "EvalCreateIndex": index,
                    "JobModifyIndex": index, "Warnings": "", "Index": index,
                    "LastContact": 0, "KnownLeader": True}

    def scale(self, key: tuple[str, str], group: str, count: int) -> dict[str, Any]:
        with self._cond:
            job = self.jobs[key]
            index = self._bump()
            job = json.loads(json.dumps(job))
            for g in job["TaskGroups"]:
                if g["Name"] == group:
                    g["Count"] = count
            job.update({"Version": job["Version"] + 1, "ModifyIndex": index,
                        "JobModifyIndex": index})
            self.jobs[key] = job
            for a in self.allocs.values():
                if (a.namespace, a.job_id) == key and a.desired_status == "run":
                    a.job, a.job_version = job, job["Version"]
            self._reconcile(job)
            return {"EvalID": str(uuid.uuid4()), "EvalCreateIndex": index,
                    "JobModifyIndex": index, "Warnings": "", "Index": index,
                    "LastContact": 0, "KnownLeader": True}

    def deregister(self, key: tuple[str, str], purge: bool) -> dict[str, Any]:
        with self._cond:
            index = self._bump()
            job = self.jobs[key]
            job.update({"Stop": True, "Status": "dead", "ModifyIndex": index})
            allocs = [a for a in self.allocs.values() if (a.namespace, a.job_id) == key]
            for a in allocs:
                if a.desired_status == "run":
                    self._stop_alloc(a, "alloc not needed since job was stopped")
        for a in allocs:
            _join_tasks(a)
        with self._cond:
            if purge:
                self.jobs.pop(key, None)
                for a in allocs:
                    self.allocs.pop(a.id, None)
            self._bump()
        return {"EvalID": str(uuid.uuid4()), "EvalCreateIndex": index,
                "JobModifyIndex": index, "Index": index, "LastContact": 0,
                "KnownLeader": True}

    def _reconcile(self, job: dict[str, Any]) -> None:
        """Make the running allocations match each group's count."""
        key = (job["Namespace"], job["ID"])
        for group in job["TaskGroups"]:
            live = sorted((a for a in self.allocs.values()
                           if (a.namespace, a.job_id) == key and a.group == group["Name"]
                           and a.desired_status == "run"), key=lambda a: a.index)
            for extra in live[group["Count"]:]:
                self._stop_alloc(extra, "alloc not needed due to job update")
            used = {a.index for a in live[:group["Count"]]}
            free = (i for i in range(10_000) if i not in used)
            for _ in range(group["Count"] - len(live)):
                self._place(job, group, next(free))
        job["Status"] = "running" if any(
            a.job_id == job["ID"] and not a.terminal for a in self.allocs.values()) \
            else job["Status"]

    def _place(self, job: dict[str, Any], group: dict[str, Any], index: int) -> None:
        taken = {p for a in self.allocs.values() if not a.terminal for p in a.ports.values()}
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
                           job=job, ports=ports, dir=directory, create_index=self.index,
                           modify_index=self.index)
        for task in group["Tasks"]:
            run = TaskRun(name=task["Name"], spec=task)
            run.event("Received", "Task received by client")
            alloc.tasks[task["Name"]] = run
        self.allocs[alloc_id] = alloc
        for run in alloc.tasks.values():
            self._spawn(self._run_task, alloc, run)
        if group.get("Update") or job.get("Update"):
            self._spawn(self._watch_health, alloc)

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _stop_alloc(self, alloc: Allocation, why: str) -> None:
        """Ask an allocation's tasks to stop (they are killed by their threads)."""
        with self._cond:
            alloc.desired_status = "stop"
            alloc.desired_description = why
            alloc.stop_event.set()
            self._deregister_services(alloc)
            alloc.modify_index = self._bump()

    def _update_client_status(self, alloc: Allocation) -> None:
        with self._cond:
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
            alloc.modify_time = _now_ns()
            group = alloc.group_spec
            if status == "failed" and alloc.healthy is None and \
                    (group.get("Update") or alloc.job.get("Update")):
                alloc.healthy = False
            if status == "running":
                self._register_services(alloc)
            if alloc.terminal:
                self._deregister_services(alloc)
            alloc.modify_index = self._bump()
            job = self.jobs.get((alloc.namespace, alloc.job_id))
            if job is not None and job.get("Version") == alloc.job_version:
                live = [a for a in self.allocs.values()
                        if a.job_id == job["ID"] and a.namespace == job["Namespace"]]
                if job["Stop"] or (live and all(a.terminal for a in live)):
                    job["Status"] = "dead"
                elif any(a.client_status == "running" for a in live):
                    job["Status"] = "running"

    # -- services ----------------------------------------------------------
    def _register_services(self, alloc: Allocation) -> None:
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

    def _deregister_services(self, alloc: Allocation) -> None:
        for key in list(self.services):
            self.services[key] = [e for e in self.services[key] if e["AllocID"] != alloc.id]
            if not self.services[key]:
                del self.services[key]

    # -- running tasks -----------------------------------------------------
    def _env(self, alloc: Allocation, task: dict[str, Any]) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "NOMAD_ALLOC_ID": alloc.id, "NOMAD_SHORT_ALLOC_ID": alloc.id[:8],
            "NOMAD_ALLOC_NAME": alloc.name, "NOMAD_ALLOC_INDEX": str(alloc.index),
            "NOMAD_JOB_ID": alloc.job_id, "NOMAD_JOB_NAME": alloc.job.get("Name", alloc.job_id),
            "NOMAD_GROUP_NAME": alloc.group, "NOMAD_TASK_NAME": task["Name"],
            "NOMAD_NAMESPACE": alloc.namespace, "NOMAD_REGION": self.region,
            "NOMAD_DC": self.datacenter, "NOMAD_ALLOC_DIR": str(alloc.dir / "alloc"),
            "NOMAD_TASK_DIR": str(alloc.dir / task["Name"] / "local"),
            "NOMAD_SECRETS_DIR": str(alloc.dir / task["Name"] / "secrets"),
            "NOMAD_CPU_LIMIT": str(task["Resources"]["CPU"]),
            "NOMAD_MEMORY_LIMIT": str(task["Resources"]["MemoryMB"]),
        })
        for label, port in alloc.ports.items():
            for kind in ("PORT", "HOST_PORT", "ALLOC_PORT"):
                env[f"NOMAD_{kind}_{label}"] = str(port)
            for kind in ("IP", "HOST_IP"):
                env[f"NOMAD_{kind}_{label}"] = "127.0.0.1"
            for kind in ("ADDR", "HOST_ADDR"):
                env[f"NOMAD_{kind}_{label}"] = f"127.0.0.1:{port}"
        for key, value in (alloc.job.get("Meta") or {}).items():
            env[f"NOMAD_META_{key}"] = value
        for key, value in (task.get("Env") or {}).items():
            env[key] = _interpolate(value, env)
        return env

    def _command(self, alloc: Allocation, task: dict[str, Any],
                 env: dict[str, str]) -> list[str]:
        """The local argv of a task; raise _DriverError like a driver would."""
        config = task["Config"]
        args = [_interpolate(str(a), env) for a in config.get("args") or []]
        driver = task["Driver"]
        if driver == "raw_exec":
            return _local([_interpolate(config["command"], env)] + args)
        if driver == "docker":
            image = self.images.resolve(str(config.get("image", "")))
            if image is None:
                raise _DriverError(
                    f"Failed to pull `{config.get('image')}`: Error response from daemon: "
                    "pull access denied, repository does not exist or may require "
                    "'docker login'")
            if image.model_dir:
                for key, value in list(env.items()):
                    if value == "/model" or value.startswith("/model/"):
                        env[key] = image.model_dir + value[len("/model"):]
                env.setdefault("CLIPPER_MODEL_PATH", image.model_dir)
            entrypoint = [_interpolate(str(a), env) for a in config.get("entrypoint") or []]
            command = [_interpolate(config["command"], env)] if config.get("command") else []
            if entrypoint:
                return _local([*entrypoint, *command, *args])
            if command:
                return _local([*command, *args])
            return _local([*image.entrypoint, *args])
        raise _DriverError(f"missing drivers: {driver}")

    def _rendered(self, alloc: Allocation, task: dict[str, Any],
                  env: dict[str, str]) -> list[str]:
        """Each template of ``task`` rendered against the current services."""
        task_dir = alloc.dir / task["Name"]
        out = []
        for tmpl in task.get("Templates") or ():
            text = tmpl.get("EmbeddedTmpl")
            if text is None:
                text = (task_dir / tmpl["SourcePath"]).read_text()
            with self._cond:
                out.append(_render(text, env, self._services_view(alloc.namespace)))
        return out

    def _render_templates(self, alloc: Allocation, task: dict[str, Any],
                          env: dict[str, str]) -> list[str]:
        """Render, write and (``Envvars``) export every template; return the texts."""
        task_dir = alloc.dir / task["Name"]
        texts = self._rendered(alloc, task, env)
        for tmpl, rendered in zip(task.get("Templates") or (), texts, strict=True):
            dest = task_dir / _interpolate(tmpl["DestPath"], env)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(rendered)
            if tmpl.get("Envvars"):
                for line in rendered.splitlines():
                    if "=" in line and not line.lstrip().startswith("#"):
                        key, _, value = line.partition("=")
                        env[key.strip()] = value.strip()
        return texts

    def _services_view(self, namespace: str) -> dict[str, list[dict[str, Any]]]:
        return {name: list(entries) for (ns, name), entries in self.services.items()
                if ns == namespace}

    def _run_task(self, alloc: Allocation, run: TaskRun) -> None:
        task = run.spec
        policy = {"Attempts": 2, "Interval": 30 * 60 * SECOND, "Delay": 15 * SECOND,
                  "Mode": "fail"}
        policy.update(alloc.group_spec.get("RestartPolicy") or {})
        policy.update(task.get("RestartPolicy") or {})
        restarts_in_window: list[float] = []
        logs = alloc.dir / "alloc" / "logs"
        for sub in ("local", "secrets", "tmp"):
            (alloc.dir / task["Name"] / sub).mkdir(parents=True, exist_ok=True)
        run.event("Task Setup", "Building Task Directory")
        watched = any((t.get("ChangeMode") or "restart") == "restart"
                      for t in task.get("Templates") or ())
        while not alloc.stop_event.is_set():
            env = self._env(alloc, task)
            base_env = dict(env)
            exit_code: int | None = None
            rerendered = False
            try:
                texts = self._render_templates(alloc, task, env)
                argv = self._command(alloc, task, env)
                with open(logs / f"{task['Name']}.stdout.0", "ab") as out, \
                        open(logs / f"{task['Name']}.stderr.0", "ab") as err:
                    proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err,
                                            stdin=subprocess.DEVNULL,
                                            cwd=str(alloc.dir / task["Name"]),
                                            start_new_session=True,
                                            preexec_fn=_die_with_parent)
            except _DriverError as exc:
                with self._cond:
                    run.event("Driver Failure", str(exc), fails_task=False)
            except Exception as exc:  # noqa: BLE001 - reported as the task's event
                with self._cond:
                    run.event("Driver Failure", f"failed to launch command with executor: "
                              f"{type(exc).__name__}: {exc}")
            else:
                with self._cond:
                    run.proc = proc
                    run.state = "running"
                    run.running_since = time.monotonic()
                    run.started_at = run.started_at or time.strftime("%Y-%m-%dT%H:%M:%SZ")
                    run.event("Started", "Task started by client")
                    self._update_client_status(alloc)
                next_check = time.monotonic() + 0.5
                while proc.poll() is None and not alloc.stop_event.wait(0.05):
                    if watched and time.monotonic() >= next_check:
                        next_check = time.monotonic() + 0.5
                        try:
                            changed = self._rendered(alloc, task, base_env) != texts
                        except _DriverError:
                            changed = False
                        if changed:
                            rerendered = True
                            with self._cond:
                                run.event("Restart Signaled", "Template with change_mode "
                                          "restart re-rendered")
                            _kill(proc, (task.get("KillTimeout") or 5 * SECOND) / SECOND)
                            break
                if rerendered and not alloc.stop_event.is_set():
                    with self._cond:
                        run.event("Restarting", "Task restarting in 0s")
                        run.restarts += 1
                        run.last_restart = time.strftime("%Y-%m-%dT%H:%M:%SZ")
                        run.state = "pending"
                        self._update_client_status(alloc)
                    continue
                if alloc.stop_event.is_set():
                    with self._cond:
                        run.event("Killing", "Sent interrupt. Waiting 5s before force killing")
                    _kill(proc, (task.get("KillTimeout") or 5 * SECOND) / SECOND)
                    break
                exit_code = proc.returncode
                with self._cond:
                    run.event("Terminated", f"Exit Code: {exit_code}",
                              exit_code=exit_code if exit_code >= 0 else 0,
                              signal=-exit_code if exit_code < 0 else 0)
            # restart policy
            now = time.monotonic()
            interval = policy["Interval"] / SECOND
            restarts_in_window = [t for t in restarts_in_window if now - t < interval]
            attempts = policy["Attempts"]
            if attempts == -1 or len(restarts_in_window) < attempts:
                delay = policy["Delay"] / SECOND
            elif policy["Mode"] == "delay":
                delay = max(policy["Delay"] / SECOND,
                            interval - (now - restarts_in_window[0]))
                restarts_in_window = []
            else:
                with self._cond:
                    run.event("Not Restarting",
                              f"Exceeded allowed attempts {attempts} in interval "
                              f"{interval:g}s and mode is \"fail\"", fails_task=True)
                    run.state, run.failed = "dead", True
                    run.finished_at = time.strftime("%Y-%m-%dT%H:%M:%SZ")
                    self._update_client_status(alloc)
                return
            with self._cond:
                run.event("Restarting", f"Task restarting in {delay:g}s",
                          restart_reason="Restart within policy")
                run.state = "pending"
                run.running_since = None
                self._update_client_status(alloc)
            if alloc.stop_event.wait(delay):
                break
            restarts_in_window.append(time.monotonic())
            with self._cond:
                run.restarts += 1
                run.last_restart = time.strftime("%Y-%m-%dT%H:%M:%SZ")
        with self._cond:
            run.state = "dead"
            run.running_since = None
            run.finished_at = time.strftime("%Y-%m-%dT%H:%M:%SZ")
            self._update_client_status(alloc)

    def _watch_health(self, alloc: Allocation) -> None:
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
            with self._cond:
                running = all(t.state == "running" for t in alloc.tasks.values())
                failed = alloc.client_status == "failed"
            ok = running and (update["HealthCheck"] != "checks"
                              or all(self._check(alloc, s, c) for s, c in checks))
            now = time.monotonic()
            healthy_since = (healthy_since or now) if ok else None
            with self._cond:
                if healthy_since is not None and \
                        now - healthy_since >= update["MinHealthyTime"] / SECOND:
                    alloc.healthy = True
                elif failed or now > deadline:
                    alloc.healthy = False
                if alloc.healthy is not None:
                    alloc.modify_index = self._bump()
                    return
            alloc.stop_event.wait(min(interval, 0.25) if ok else interval)

    def _check(self, alloc: Allocation, svc: dict[str, Any], chk: dict[str, Any]) -> bool:
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


class _DriverError(Exception):
    pass


def _join_tasks(alloc: Allocation, timeout: float = 15.0) -> None:
    """Wait until every task of a stopping allocation is dead."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(t.state == "dead" for t in alloc.tasks.values()):
            return
        time.sleep(0.05)


def _kill(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        pass
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)
    else:
        try:  # children left in the task's process group
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _local(argv: list[str]) -> list[str]:
    try:
        return local_argv(argv)
    except (FileNotFoundError, ValueError) as exc:
        raise _DriverError(f"failed to launch command with executor: {exc}") from None


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


_VAR = re.compile(r"\$\{([^}]+)\}")


def _interpolate(text: str, env: dict[str, str]) -> str:
    """Nomad's ``${...}`` interpolation of runtime variables (unknown ones stay)."""
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name.startswith("NOMAD_"):
            return env.get(name, m.group(0))
        if name.startswith("env."):
            return env.get(name[4:], m.group(0))
        return {"node.unique.name": NODE_NAME, "node.unique.id": NODE_ID,
                "node.datacenter": env.get("NOMAD_DC", "dc1")}.get(name, m.group(0))
    return _VAR.sub(sub, text)


_RANGE = re.compile(
    r'\{\{-?\s*range\s+\$(\w+),\s*\$(\w+)\s*:=\s*nomadService\s+"([^"]+)"\s*-?\}\}'
    r'(.*?)\{\{-?\s*end\s*-?\}\}(?!.*\{\{-?\s*end)', re.S)
_ENV = re.compile(r'\{\{-?\s*env\s+"([^"]+)"\s*-?\}\}')


def _render(text: str, env: dict[str, str], services: dict[str, list[dict[str, Any]]]) -> str:
    """Render the consul-template subset the fake understands: ``env "X"`` and
    ``range $i, $s := nomadService "name"`` whose body uses ``$s.Address``,
    ``$s.Port`` and ``if ne $i 0``.  Anything else fails like a template error."""

    def render_range(m: re.Match[str]) -> str:
        ivar, svar, name, body = m.groups()
        out = []
        for i, entry in enumerate(services.get(name, [])):
            first = i == 0
            part = re.sub(r'\{\{-?\s*if\s+ne\s+\$' + ivar + r'\s+0\s*-?\}\}(.*?)'
                          r'\{\{-?\s*end\s*-?\}\}',
                          lambda mm, first=first: "" if first else mm.group(1),
                          body, flags=re.S)
            part = re.sub(r'\{\{-?\s*\$' + svar + r'\.Address\s*-?\}\}', entry["Address"], part)
            part = re.sub(r'\{\{-?\s*\$' + svar + r'\.Port\s*-?\}\}', str(entry["Port"]), part)
            out.append(part)
        return "".join(out)

    text = _ENV.sub(lambda m: env.get(m.group(1), ""), text)
    text = _RANGE.sub(render_range, text)
    if "{{" in text:
        raise _DriverError(f"Template failed: the fake cannot render {text!r}")
    return text


def _same_but_counts(old: dict[str, Any], new: dict[str, Any]) -> bool:
    def strip(job: dict[str, Any]) -> str:
        groups = [{k: v for k, v in g.items() if k != "Count"} for g in job["TaskGroups"]]
        body = {k: v for k, v in job.items() if k[0].isupper() and k not in _SERVER_FIELDS}
        body["TaskGroups"] = groups
        return json.dumps(body, sort_keys=True)
    return strip(old) == strip(new)


_SERVER_FIELDS = {"Stop", "Status", "StatusDescription", "Stable", "Version", "CreateIndex",
                  "ModifyIndex", "JobModifyIndex", "SubmitTime", "Region", "Namespace",
                  "Priority"}


def _job_stub(job: dict[str, Any], meta: bool) -> dict[str, Any]:
    stub = {k: job.get(k) for k in ("ID", "ParentID", "Name", "Namespace", "Datacenters",
                                     "Type", "Priority", "Periodic", "ParameterizedJob",
                                     "Stop", "Status", "StatusDescription", "Version",
                                     "CreateIndex", "ModifyIndex", "JobModifyIndex",
                                     "SubmitTime")}
    stub["JobSummary"] = {"JobID": job["ID"], "Namespace": job["Namespace"], "Summary": {}}
    if meta:
        stub["Meta"] = job.get("Meta") or {}
    return stub


def _bool(query: dict[str, str], key: str) -> bool:
    """Go's strconv.ParseBool, as Nomad parses boolean query parameters."""
    return query.get(key, "") in ("1", "t", "T", "true", "TRUE", "True")


def _parse_wait(text: str | None) -> float:
    if not text:
        return 300.0
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)?", text)
    if not m:
        return 300.0
    value, unit = float(m.group(1)), m.group(2) or "s"
    return value / 1000 if unit == "ms" else value * 60 if unit == "m" else value


class _Handler(BaseHTTPRequestHandler):
    nomad: FakeNomad
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    # -- plumbing ----------------------------------------------------------
    def _reply(self, status: int, body: Any, *, text: bool = False,
               index: int | None = None) -> None:
        data = body.encode() if text else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8" if text
                         else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Nomad-Index", str(index if index is not None else self.nomad.index))
        self.send_header("X-Nomad-KnownLeader", "true")
        self.send_header("X-Nomad-LastContact", "0")
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        self.nomad.requests.append((method, self.path))
        if self.nomad.token and path != "/v1/status/leader" and \
                self.headers.get("X-Nomad-Token") != self.nomad.token:
            return self._reply(403, "Permission denied", text=True)
        if method == "GET" and "index" in query:
            self._block(int(query["index"]), _parse_wait(query.get("wait")))
        try:
            body = json.loads(raw) if raw else None
        except ValueError as exc:
            return self._reply(400, f"Failed to decode request body: {exc}", text=True)
        namespace = query.get("namespace") or "default"
        try:
            self._route(method, path, query, body, namespace)
        except _NotFound as exc:
            self._reply(404, str(exc), text=True)
        except _BadRequest as exc:
            self._reply(400, str(exc), text=True)

    def _block(self, index: int, wait: float) -> None:
        deadline = time.monotonic() + min(wait, 30.0)
        with self.nomad._cond:
            while self.nomad.index <= index:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self.nomad._cond.wait(left)

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")

    # -- routes ------------------------------------------------------------
    def _route(self, method: str, path: str, query: dict[str, str], body: Any,
               namespace: str) -> None:
        fake = self.nomad
        parts = path.strip("/").split("/")
        if parts[0] != "v1" or len(parts) < 2:
            raise _NotFound("Invalid URL path")
        head, rest = parts[1], parts[2:]
        if head == "status" and rest == ["leader"]:
            return self._reply(200, "127.0.0.1:4647")
        if head == "agent" and rest == ["self"]:
            return self._reply(200, {"config": {"Region": fake.region,
                                                "Datacenter": fake.datacenter,
                                                "NodeName": NODE_NAME, "Version": {
                                                    "Version": "1.7.7"}},
                                     "member": {"Name": f"{NODE_NAME}.{fake.region}",
                                                "Addr": "127.0.0.1", "Port": 4648,
                                                "Tags": {"region": fake.region}},
                                     "stats": {}})
        if head == "jobs" and not rest:
            if method in ("POST", "PUT"):
                return self._register(body, namespace)
            with fake._cond:
                prefix = query.get("prefix", "")
                jobs = [_job_stub(j, _bool(query, "meta"))
                        for (ns, jid), j in sorted(fake.jobs.items())
                        if (ns == namespace or namespace == "*") and jid.startswith(prefix)]
            return self._reply(200, jobs)
        if head == "job" and rest:
            return self._job(method, rest[0], rest[1:], query, body, namespace)
        if head == "allocations" and not rest:
            with fake._cond:
                prefix = query.get("prefix", "")
                out = [a.stub() for a in fake.allocs.values()
                       if a.id.startswith(prefix) and (a.namespace == namespace
                                                       or namespace == "*")]
            return self._reply(200, out)
        if head == "allocation" and len(rest) == 1:
            with fake._cond:
                alloc = fake.allocs.get(rest[0])
                if alloc is None:
                    raise _NotFound("alloc not found")
                return self._reply(200, alloc.full())
        if head == "client" and rest[:2] == ["fs", "logs"] and len(rest) == 3:
            return self._logs(rest[2], query)
        if head == "service" and len(rest) == 1:
            with fake._cond:
                return self._reply(200, list(fake.services.get((namespace, rest[0]), [])))
        if head == "services" and not rest:
            with fake._cond:
                names: dict[str, set[str]] = {}
                for (ns, name), entries in fake.services.items():
                    if ns == namespace:
                        names[name] = {t for e in entries for t in e["Tags"]}
            return self._reply(200, [{"Namespace": namespace, "Services": [
                {"ServiceName": n, "Tags": sorted(t)} for n, t in sorted(names.items())]}])
        if head == "validate" and rest == ["job"] and method in ("POST", "PUT"):
            job = (body or {}).get("Job")
            problems = job_problems(job)
            return self._reply(200, {"DriverConfigValidated": True,
                                     "ValidationErrors": problems,
                                     "Error": _error_text(problems) if problems else "",
                                     "Warnings": ""})
        raise _NotFound("Invalid URL path")

    def _register(self, body: Any, namespace: str) -> None:
        if not isinstance(body, dict) or "Job" not in body:
            raise _BadRequest("Job must be specified")
        job = body["Job"]
        problems = job_problems(job)
        if problems:
            raise _BadRequest(_error_text(problems))
        self._reply(200, self.nomad.register(job, namespace))

    def _job(self, method: str, job_id: str, rest: list[str], query: dict[str, str],
             body: Any, namespace: str) -> None:
        fake = self.nomad
        key = (namespace, job_id)
        if not rest and method in ("POST", "PUT"):
            if isinstance(body, dict) and isinstance(body.get("Job"), dict) \
                    and body["Job"].get("ID") != job_id:
                raise _BadRequest("Job ID does not match name")
            return self._register(body, namespace)
        with fake._cond:
            job = fake.jobs.get(key)
            if job is None:
                if rest == ["allocations"]:
                    return self._reply(200, [])
                raise _NotFound("job not found")
            if not rest and method == "GET":
                return self._reply(200, job, index=job["ModifyIndex"])
            if rest == ["allocations"] and method == "GET":
                out = [a.stub() for a in fake.allocs.values() if (a.namespace, a.job_id) == key]
                return self._reply(200, out)
            if rest == ["scale"] and method == "GET":
                groups = {}
                for g in job["TaskGroups"]:
                    live = [a for a in fake.allocs.values() if (a.namespace, a.job_id) == key
                            and a.group == g["Name"] and a.desired_status == "run"]
                    groups[g["Name"]] = {
                        "Desired": g["Count"], "Placed": len(live),
                        "Running": sum(a.client_status == "running" for a in live),
                        "Healthy": sum(bool(a.healthy) for a in live),
                        "Unhealthy": sum(a.healthy is False for a in live), "Events": None}
                return self._reply(200, {"JobID": job_id, "Namespace": namespace,
                                         "JobCreateIndex": job["CreateIndex"],
                                         "JobModifyIndex": job["JobModifyIndex"],
                                         "JobStopped": job["Stop"], "TaskGroups": groups})
        if not rest and method == "DELETE":
            return self._reply(200, fake.deregister(key, _bool(query, "purge")))
        if rest == ["scale"] and method in ("POST", "PUT"):
            if not isinstance(body, dict):
                raise _BadRequest("Scaling request must be specified")
            group = (body.get("Target") or {}).get("Group")
            count = body.get("Count")
            if not any(g["Name"] == group for g in job["TaskGroups"]):
                raise _BadRequest(f"task group {group!r} specified for scaling does not exist "
                                  "in job")
            if count is not None and (not isinstance(count, int) or isinstance(count, bool)
                                      or count < 0):
                raise _BadRequest("scaling action count can't be negative")
            if count is None:
                return self._reply(200, {"Index": fake.index})
            return self._reply(200, fake.scale(key, group, count))
        raise _NotFound("Invalid URL path")

    def _logs(self, alloc_id: str, query: dict[str, str]) -> None:
        fake = self.nomad
        with fake._cond:
            alloc = fake.allocs.get(alloc_id)
            if alloc is None:
                raise _NotFound(f"unknown allocation ID {alloc_id!r}")
            task = query.get("task", "")
            if task not in alloc.tasks:
                raise _BadRequest(f"unknown task name {task!r}")
        stream = query.get("type", "")
        if stream not in ("stdout", "stderr"):
            raise _BadRequest("must provide log type (stdout/stderr)")
        path = alloc.dir / "alloc" / "logs" / f"{task}.{stream}.0"
        data = path.read_bytes() if path.exists() else b""
        offset = int(query.get("offset") or 0)
        data = data[offset:] if query.get("origin", "start") == "start" else \
            data[max(0, len(data) - offset):]
        if _bool(query, "plain"):
            return self._reply(200, data.decode("utf-8", "replace"), text=True)
        frame = {"Data": base64.b64encode(data).decode(),
                 "File": f"alloc/logs/{task}.{stream}.0", "Offset": len(data)}
        return self._reply(200, json.dumps(frame) if data else "", text=True)


class _NotFound(Exception):
    pass


class _BadRequest(Exception):
    pass


def _error_text(problems: Iterable[str]) -> str:
    items = list(problems)
    return f"{len(items)} error{'s' if len(items) != 1 else ''} occurred:\n" + "".join(
        f"\t* {p}\n" for p in items)
