"""The fake agent put together: :class:`FakeNomad` owns the state, the
scheduler (which starts the tasks) and serves the HTTP API on a local port."""

from __future__ import annotations

import os
import signal
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from clipper_core.testing.process_pods import ImageSpec, ImageTable

from .allocations import Allocation
from .drivers import kill
from .routes import handler_for
from .scheduler import Scheduler
from .state import ClusterState

__all__ = ["FakeNomad"]


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
        self.state = ClusterState(datacenter)
        self.scheduler = Scheduler(self.state, self.workdir, self.images, region=region,
                                   datacenter=datacenter)
        #: every (method, path) received, in order
        self.requests: list[tuple[str, str]] = []
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle ---------------------------------------------------------
    @property
    def address(self) -> str:
        assert self._server is not None, "FakeNomad not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeNomad:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(self))
        self._server.daemon_threads = True
        thread = threading.Thread(target=self._server.serve_forever, name="fake-nomad",
                                  daemon=True)
        thread.start()
        return self

    def stop(self) -> None:
        """Stop every allocation (tasks get their kill timeout, then SIGKILL),
        then the HTTP server."""
        with self.state.cond:
            allocs = list(self.state.allocs.values())
        for alloc in allocs:
            self.state.stop_alloc(alloc, "agent shutting down")
        deadline = time.monotonic() + 15
        for t in list(self.scheduler.threads):
            t.join(timeout=max(0.1, deadline - time.monotonic()))
        for alloc in allocs:  # anything a stuck task thread left behind
            for task in alloc.tasks.values():
                kill(task.proc, 0.0)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeNomad:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the state, for tests ------------------------------------------------
    @property
    def index(self) -> int:
        return self.state.index

    @property
    def jobs(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(namespace, job id) -> the job as stored."""
        return self.state.jobs

    @property
    def allocs(self) -> dict[str, Allocation]:
        return self.state.allocs

    @property
    def services(self) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """(namespace, service name) -> registrations."""
        return self.state.services

    # -- helpers for tests -------------------------------------------------
    def job_allocations(self, job_id: str, namespace: str = "default") -> list[Allocation]:
        """The allocations of job ``job_id``, stopped ones included."""
        with self.state.cond:
            return [a for a in self.state.allocs.values()
                    if a.job_id == job_id and a.namespace == namespace]

    def kill_task(self, alloc_id: str, task: str) -> None:
        """Kill a task's process (SIGKILL) as if it crashed."""
        proc = self.state.allocs[alloc_id].tasks[task].proc
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

    def pids(self) -> list[int]:
        """PIDs of every task process still running."""
        with self.state.cond:
            return [t.proc.pid for a in self.state.allocs.values() for t in a.tasks.values()
                    if t.proc is not None and t.proc.poll() is None]

