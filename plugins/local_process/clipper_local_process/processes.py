"""Supervised processes of one local cluster: start, inspect, stop.

Every frontend and model replica runs under its own supervisor
(:mod:`clipper_local_process.supervise`), started detached in a new session.
``desired/NAME.json`` records what should run (the watchdog restores it, see
:mod:`clipper_local_process.watchdog`); the supervisor's status file
``procs/NAME.json`` records what runs, so any Python process can inspect or
stop the cluster.  Every
process also carries ``CLIPPER_LOCAL_CLUSTER_ID`` in its environment, which
:meth:`ProcessTable.sweep` uses to find strays (e.g. children of a supervisor
that was SIGKILLed).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs
import psutil

from clipper_core.errors import ContainerError

from .desired import DesiredProcess, DesiredState, lock_free, lock_holder

CLUSTER_ID_ENV = "CLIPPER_LOCAL_CLUSTER_ID"


@attrs.frozen(kw_only=True)
class ProcessInfo:
    """One supervised process as its status file describes it."""

    name: str
    labels: dict[str, str]
    supervisor_pid: int | None
    #: The child's pid while it runs, else None.
    pid: int | None
    restarts: int
    #: The supervisor's status; "exited" when the supervisor itself is gone.
    status: str
    last_exit_code: int | None
    log: Path

    @property
    def alive(self) -> bool:
        return self.status not in ("exited", "stopped")


def _alive(pid: int | None) -> bool:
    """True if ``pid`` runs and is not a zombie (reaping it if it is our child)."""
    if not pid:
        return False
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _kill(pid: int | None, sig: int) -> None:
    if pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


class ProcessTable:
    """The supervised processes of the cluster whose state dir is ``state_dir``."""

    def __init__(self, state_dir: Path, cluster_id: str, python: str) -> None:
        self.state_dir = state_dir
        self.cluster_id = cluster_id
        self.python = python
        self.procs_dir = state_dir / "procs"
        self.logs_dir = state_dir / "logs"
        self.desired = DesiredState(state_dir)

    # -- starting ------------------------------------------------------------
    def start(self, name: str, command: list[str], env: dict[str, str],
              labels: dict[str, str] | None = None, *, backoff: float = 0.5,
              max_backoff: float = 30.0) -> ProcessInfo:
        """Record ``name`` as desired and start ``command`` under a new detached
        supervisor called ``name``.

        Returns once the supervisor has written its first status.  Raises
        :class:`ContainerError` if a live process already has that name or the
        supervisor dies at once.
        """
        existing = self.get(name)
        if existing is not None and existing.alive:
            raise ContainerError(f"Process {name!r} is already running "
                                 f"(supervisor pid {existing.supervisor_pid})", process=name)
        spec = DesiredProcess(name=name, command=command, env=env,
                              labels={"name": name, **(labels or {})}, backoff=backoff,
                              max_backoff=max_backoff)
        self.desired.record(spec)
        (self.procs_dir / f"{name}.json").unlink(missing_ok=True)
        proc = self.spawn(spec)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            info = self.get(name)
            if info is not None and info.status != "starting":
                return info
            if proc.poll() is not None and not (proc.returncode == 0 and self.supervised(name)):
                # (exit 0 with the lock held: the watchdog's supervisor won the race)
                tail = self.tail(f"{name}.supervisor")
                raise ContainerError(f"Supervisor of {name!r} exited with {proc.returncode}:\n"
                                     f"{tail}", process=name)
            time.sleep(0.02)
        raise ContainerError(f"Supervisor of {name!r} did not start within 15s", process=name)

    def spawn(self, spec: DesiredProcess, restarts: int = 0) -> subprocess.Popen[bytes]:
        """Start a detached supervisor of ``spec`` (its restart count starting
        at ``restarts``) without waiting for it."""
        self.procs_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        status = self.procs_dir / f"{spec.name}.json"
        log = self.logs_dir / f"{spec.name}.log"
        argv = [self.python, "-m", "clipper_local_process.supervise", "--status", str(status),
                "--log", str(log), "--backoff", str(spec.backoff), "--max-backoff",
                str(spec.max_backoff), "--restarts", str(restarts),
                "--cluster-dir", str(self.state_dir)]
        for key, value in spec.labels.items():
            argv += ["--label", f"{key}={value}"]
        full_env = {**spec.env, CLUSTER_ID_ENV: self.cluster_id, "PYTHONUNBUFFERED": "1"}
        supervisor_log = self.logs_dir / f"{spec.name}.supervisor.log"
        with open(os.open(supervisor_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
                  "ab") as out:
            # umask 077: every file the process makes (status, logs, the
            # SQLite store) is readable by the owner only
            return subprocess.Popen(argv + ["--", *spec.command], env=full_env,
                                    stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    umask=0o077)

    def supervised(self, name: str) -> bool:
        """Whether a supervisor of ``name`` runs (it holds ``procs/NAME.lock``)."""
        return not lock_free(self.procs_dir / f"{name}.lock")

    # -- inspecting ----------------------------------------------------------
    def get(self, name: str) -> ProcessInfo | None:
        """The process called ``name``, or None if it has no status file."""
        path = self.procs_dir / f"{name}.json"
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        sup = data.get("supervisor_pid")
        status = data.get("status", "unknown")
        if status != "stopped" and not _alive(sup):
            status = "exited"
        child = data.get("pid")
        return ProcessInfo(name=name, labels=data.get("labels", {}), supervisor_pid=sup,
                           pid=child if status not in ("exited", "stopped") else None,
                           restarts=int(data.get("restarts", 0)), status=status,
                           last_exit_code=data.get("last_exit_code"),
                           log=Path(data.get("log") or self.logs_dir / f"{name}.log"))

    def select(self, **labels: str) -> list[ProcessInfo]:
        """Every process whose labels include ``labels``, sorted by name."""
        if not self.procs_dir.is_dir():
            return []
        out = []
        for path in sorted(self.procs_dir.glob("*.json")):
            info = self.get(path.stem)
            if info is not None and all(info.labels.get(k) == v for k, v in labels.items()):
                out.append(info)
        return out

    def tail(self, name: str, lines: int = 20) -> str:
        """The last ``lines`` lines of process ``name``'s log."""
        try:
            text = (self.logs_dir / f"{name}.log").read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- stopping ------------------------------------------------------------
    def stop(self, names: Iterable[str], timeout: float = 8.0) -> None:
        """Stop the named processes: SIGTERM to each supervisor (which stops its
        child), then SIGKILL whatever is left after ``timeout`` seconds."""
        names = list(names)
        for name in names:  # first, so the watchdog does not bring them back
            self.desired.forget(name)
        infos = [i for i in (self.get(n) for n in names) if i is not None]
        # a supervisor holds its lock before it writes its first status
        holders = [lock_holder(self.procs_dir / f"{n}.lock") for n in names]
        victims: dict[int, psutil.Process] = {}
        pids = [*holders, *(p for i in infos for p in (i.supervisor_pid, i.pid))]
        for pid in pids:
            if _alive(pid):
                with contextlib.suppress(psutil.Error):
                    proc = psutil.Process(pid)
                    victims[proc.pid] = proc
                    for child in proc.children(recursive=True):
                        victims[child.pid] = child
        for pid in {*holders, *(i.supervisor_pid for i in infos)}:
            _kill(pid if _alive(pid) else None, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(_alive(p) for p in victims):
            time.sleep(0.05)
        for pid in victims:
            if _alive(pid):
                _kill(pid, signal.SIGKILL)
        for pid in victims:
            end = time.monotonic() + 2
            while _alive(pid) and time.monotonic() < end:
                time.sleep(0.02)
        for info in infos:
            (self.procs_dir / f"{info.name}.json").unlink(missing_ok=True)

    def sweep(self) -> list[int]:
        """SIGKILL every process still carrying this cluster's id; return their pids."""
        killed = []
        me = os.getpid()
        for proc in psutil.process_iter(["pid"]):
            if proc.pid == me:
                continue
            try:
                if proc.environ().get(CLUSTER_ID_ENV) == self.cluster_id:
                    proc.kill()
                    killed.append(proc.pid)
            except (psutil.Error, OSError):
                continue
        for pid in killed:
            end = time.monotonic() + 2
            while _alive(pid) and time.monotonic() < end:
                time.sleep(0.02)
        return killed
