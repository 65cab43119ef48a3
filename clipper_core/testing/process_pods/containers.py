"""One container as a supervised local process: restart policy, back-off,
a log file per run, and the state an orchestrator reports."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import attrs

__all__ = ["ContainerProcess", "ProcessState", "die_with_parent"]

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Ask the kernel to SIGKILL this (child) process when its parent thread
    dies: a ``preexec_fn``, so no fake leaves orphans behind."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


@attrs.frozen(kw_only=True)
class ProcessState:
    """A container's state as an orchestrator reports it."""

    #: "waiting", "running" or "terminated".
    state: str
    #: Why (waiting: "ContainerCreating", "CrashLoopBackOff"; terminated:
    #: "Error", "Completed").
    reason: str = ""
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    pid: int | None = None


class ContainerProcess:
    """One container as a supervised local process.

    Call :meth:`start` once; the process is spawned from this object's own
    thread (so the child's parent-death signal is tied to that thread, not
    to a short-lived request thread).  ``restart`` is "Always", "OnFailure"
    or "Never".  After an exit the process is started again after
    ``backoff`` seconds, doubled per restart up to ``max_backoff``.  Every
    change calls ``on_change(self)`` (from the supervising thread).

    Each run writes stdout+stderr to ``log_dir/<name>.<run>.log``;
    :attr:`log_path` is the current run's, :attr:`previous_log_path` the one
    before.
    """

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str],
                 log_dir: str | os.PathLike[str], *, cwd: str | None = None,
                 restart: str = "Always", backoff: float = 0.5, max_backoff: float = 5.0,
                 on_change: Callable[[ContainerProcess], None] | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.cwd = cwd
        self.restart_policy = restart
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.on_change = on_change
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.restart_count = 0
        self.last_state: ProcessState | None = None
        self._state = ProcessState(state="waiting", reason="ContainerCreating")
        self._run = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._kill_requested = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._supervise, name=f"container-{name}",
                                        daemon=True)

    # -- public --------------------------------------------------------------
    @property
    def state(self) -> ProcessState:
        with self._lock:
            return self._state

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.{max(self._run, 1)}.log"

    @property
    def previous_log_path(self) -> Path | None:
        """The log of the last run that ended (while backing off: the run that
        just ended), or None if no run has ended yet."""
        ended = self._run - 1 if self.state.state == "running" else self._run
        if ended < 1 or (self.restart_count == 0 and self.state.state == "running"):
            return None
        return self.log_dir / f"{self.name}.{ended}.log"

    def start(self) -> None:
        self._thread.start()

    def kill_and_restart(self) -> None:
        """Stop the current run (as a failed liveness probe does); the restart
        policy then applies."""
        self._kill_requested.set()
        self._terminate(grace=1.0)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the process group, SIGKILL after ``grace`` s; no restart.
        Returns when the process is gone."""
        self._stop.set()
        self._terminate(grace)
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(grace + 5)

    # -- internals -----------------------------------------------------------
    def _set(self, state: ProcessState) -> None:
        with self._lock:
            self._state = state
        if self.on_change is not None:
            try:
                self.on_change(self)
            except Exception:  # noqa: BLE001 - a callback must not kill supervision
                import traceback
                traceback.print_exc()

    def _terminate(self, grace: float) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        self._run += 1
        try:
            with open(self.log_path, "ab") as log:
                return subprocess.Popen(
                    self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                    preexec_fn=die_with_parent if sys.platform.startswith("linux") else None)
        except OSError as exc:
            with open(self.log_path, "ab") as log:
                log.write(f"failed to start {self.argv!r}: {exc}\n".encode())
            return None

    def _supervise(self) -> None:
        delay = self.backoff
        while not self._stop.is_set():
            self._kill_requested.clear()
            proc = self._spawn()
            started = time.time()
            if proc is None:
                code = 128
            else:
                self._proc = proc
                if self._stop.is_set():  # stop() raced with the spawn
                    self._terminate(1.0)
                self._set(ProcessState(state="running", started_at=started, pid=proc.pid))
                code = proc.wait()
            finished = time.time()
            reason = "Completed" if code == 0 else "Error"
            if self._kill_requested.is_set() and not self._stop.is_set():
                reason = "Error"
            ended = ProcessState(state="terminated", reason=reason, exit_code=code,
                                 started_at=started, finished_at=finished)
            if self._stop.is_set():
                self._set(ended)
                return
            again = (self.restart_policy == "Always"
                     or (self.restart_policy == "OnFailure" and code != 0))
            if not again:
                self._set(ended)
                return
            self.last_state = ended
            self.restart_count += 1
            if finished - started > 10 * self.max_backoff:
                delay = self.backoff
            self._set(ProcessState(state="waiting", reason="CrashLoopBackOff", exit_code=code))
            if self._stop.wait(delay):
                self._set(ended)
                return
            delay = min(delay * 2, self.max_backoff)
