"""The HTTP face of the fake agent: the ``/v1`` paths python-nomad and the
plugin use, Nomad's plain-text errors, ``X-Nomad-Index`` on every answer,
blocking queries (``?index=N&wait=5s``) and the ACL token check."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from clipper_nomad.jobspec import job_problems

from .allocations import NODE_NAME
from .scheduler import Scheduler
from .state import ClusterState

__all__ = ["Agent", "handler_for"]


class Agent(Protocol):
    """What the routes use of the fake agent (:class:`FakeNomad`)."""

    #: requests without this ``X-Nomad-Token`` get 403 (None: no check)
    token: str | None
    region: str
    datacenter: str
    #: every (method, path) received, in order
    requests: list[tuple[str, str]]
    state: ClusterState
    scheduler: Scheduler


def handler_for(agent: Agent) -> type[BaseHTTPRequestHandler]:
    """A request handler class serving ``agent``."""
    return type("Handler", (_Handler,), {"nomad": agent})


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
    nomad: Agent
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
        self.send_header("X-Nomad-Index",
                         str(index if index is not None else self.nomad.state.index))
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
        with self.nomad.state.cond:
            while self.nomad.state.index <= index:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self.nomad.state.cond.wait(left)

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
            with fake.state.cond:
                prefix = query.get("prefix", "")
                jobs = [_job_stub(j, _bool(query, "meta"))
                        for (ns, jid), j in sorted(fake.state.jobs.items())
                        if (ns == namespace or namespace == "*") and jid.startswith(prefix)]
            return self._reply(200, jobs)
        if head == "job" and rest:
            return self._job(method, rest[0], rest[1:], query, body, namespace)
        if head == "allocations" and not rest:
            with fake.state.cond:
                prefix = query.get("prefix", "")
                out = [a.stub() for a in fake.state.allocs.values()
                       if a.id.startswith(prefix) and (a.namespace == namespace
                                                       or namespace == "*")]
            return self._reply(200, out)
        if head == "allocation" and len(rest) == 1:
            with fake.state.cond:
                alloc = fake.state.allocs.get(rest[0])
                if alloc is None:
                    raise _NotFound("alloc not found")
                return self._reply(200, alloc.full())
        if head == "client" and rest[:2] == ["fs", "logs"] and len(rest) == 3:
            return self._logs(rest[2], query)
        if head == "service" and len(rest) == 1:
            with fake.state.cond:
                return self._reply(200, list(fake.state.services.get((namespace, rest[0]), [])))
        if head == "services" and not rest:
            with fake.state.cond:
                names: dict[str, set[str]] = {}
                for (ns, name), entries in fake.state.services.items():
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
        self._reply(200, self.nomad.scheduler.register(job, namespace))

    def _job(self, method: str, job_id: str, rest: list[str], query: dict[str, str],
             body: Any, namespace: str) -> None:
        fake = self.nomad
        key = (namespace, job_id)
        if not rest and method in ("POST", "PUT"):
            if isinstance(body, dict) and isinstance(body.get("Job"), dict) \
                    and body["Job"].get("ID") != job_id:
                raise _BadRequest("Job ID does not match name")
            return self._register(body, namespace)
        with fake.state.cond:
            job = fake.state.jobs.get(key)
            if job is None:
                if rest == ["allocations"]:
                    return self._reply(200, [])
                raise _NotFound("job not found")
            if not rest and method == "GET":
                return self._reply(200, job, index=job["ModifyIndex"])
            if rest == ["allocations"] and method == "GET":
                out = [a.stub() for a in fake.state.allocs.values()
                       if (a.namespace, a.job_id) == key]
                return self._reply(200, out)
            if rest == ["scale"] and method == "GET":
                groups = {}
                for g in job["TaskGroups"]:
                    live = [a for a in fake.state.allocs.values() if (a.namespace, a.job_id) == key
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
            return self._reply(200, fake.scheduler.deregister(key, _bool(query, "purge")))
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
                return self._reply(200, {"Index": fake.state.index})
            return self._reply(200, fake.scheduler.scale(key, group, count))
        raise _NotFound("Invalid URL path")

    def _logs(self, alloc_id: str, query: dict[str, str]) -> None:
        fake = self.nomad
        with fake.state.cond:
            alloc = fake.state.allocs.get(alloc_id)
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
