"""The supervisor: runs one child process and keeps it running.

``python -m clipper_local_process.supervise --status FILE --log FILE
[--label key=value ...] -- COMMAND ...``

The manager starts one supervisor per frontend or model replica, detached in
its own session, so it outlives the Python process that started it.  The
supervisor:

- holds the lock ``--status`` with the suffix ``.lock`` while it lives (a second
  supervisor of the same name exits at once, and so does one whose process
  is not desired in ``--cluster-dir`` any more);
- starts ``COMMAND`` with stdout and stderr appended to ``--log``, which it
  rotates at ``--log-max-bytes`` keeping ``--log-backups`` old files (see
  :mod:`clipper_local_process.logfiles`) and reopens on SIGHUP;
- restarts it whenever it exits, waiting ``--backoff`` seconds doubled on each
  consecutive failure up to ``--max-backoff`` (a child that ran for
  ``--reset-after`` seconds counts as healthy again);
- records its own pid, the child's pid, the restart count, the status
  (``starting``, ``running``, ``backoff``, ``stopping``, ``stopped``) and the
  last exit code in the JSON file ``--status`` after every change;
- on SIGTERM or SIGINT forwards SIGTERM to the child, waits ``--grace``
  seconds, SIGKILLs it if needed, records ``stopped`` and exits 0;
- with ``--cluster-dir``, starts the cluster's watchdog about once a second
  if it is recorded there and not running
  (:mod:`clipper_local_process.watchdog`).

On Linux the child also gets SIGKILL if the supervisor itself is killed
(``PR_SET_PDEATHSIG``), so a SIGKILLed supervisor leaves no orphan behind.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from clipper_core.secrets import write_private

from . import logfiles
from .desired import DesiredState, acquire

_PR_SET_PDEATHSIG = 1


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` so readers never see a half-written file."""
    write_private(path, json.dumps(data, indent=1, sort_keys=True))


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


class Supervisor:
    """Runs and restarts one child; see the module docstring."""

    def __init__(self, command: list[str], status_path: Path, log_path: Path,
                 labels: dict[str, str], backoff: float, max_backoff: float,
                 reset_after: float, grace: float, *, restarts: int = 0,
                 log: logfiles.RotatingLog | None = None,
                 cluster_dir: Path | None = None) -> None:
        self.command = command
        self.status_path = status_path
        self.log_path = log_path
        self.log = log or logfiles.RotatingLog(log_path)
        self.cluster_dir = cluster_dir
        self.watchdogs: list[subprocess.Popen[bytes]] = []
        self.pump: threading.Thread | None = None
        self._next_watchdog_check = 0.0
        self.labels = labels
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.reset_after = reset_after
        self.grace = grace
        self.child: subprocess.Popen[bytes] | None = None
        self.restarts = restarts
        self.failures = 0
        self.stopping = False
        self.status = "starting"
        self.last_exit: int | None = None
        self.started_at = time.time()
        self.child_started_at = 0.0

    # -- status ------------------------------------------------------------
    def record(self, status: str) -> None:
        self.status = status
        write_json_atomic(self.status_path, {
            "labels": self.labels, "command": self.command,
            "supervisor_pid": os.getpid(),
            "pid": self.child.pid if self.child and self.child.poll() is None else None,
            "restarts": self.restarts, "status": status, "last_exit_code": self.last_exit,
            "started_at": self.started_at, "child_started_at": self.child_started_at,
            "log": str(self.log_path), "updated_at": time.time(),
        })

    # -- lifecycle -----------------------------------------------------------
    def _spawn(self) -> None:
        self.log.write(f"--- supervisor: starting {' '.join(self.command)} "
                       f"(restart {self.restarts}) at {time.ctime()}\n".encode())
        self.child = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        assert self.child.stdout is not None
        self.pump = logfiles.pump(self.child.stdout, self.log)
        self.child_started_at = time.time()
        self.record("running")

    def _on_hangup(self, _signum: int, _frame: object) -> None:
        self.log.reopen()

    def _wait_child(self) -> None:
        """Until the child exits or we are told to stop; looks after the
        cluster's watchdog meanwhile."""
        assert self.child is not None
        while not self.stopping and self.child.poll() is None:
            self._watch_watchdog()
            time.sleep(0.05)

    def _watch_watchdog(self) -> None:
        if self.cluster_dir is None or time.monotonic() < self._next_watchdog_check:
            return
        from . import watchdog

        # spread the supervisors' looks so they rarely start one together
        self._next_watchdog_check = time.monotonic() + 0.75 + 0.5 * (os.getpid() % 97) / 97
        self.watchdogs = [w for w in self.watchdogs if w.poll() is None]
        try:
            started = watchdog.ensure(self.cluster_dir)
        except (OSError, KeyError, ValueError) as exc:
            self.log.write(f"--- supervisor: cannot start the watchdog: {exc}\n".encode())
            return
        if started is not None:
            self.watchdogs.append(started)
            self.log.write(f"--- supervisor: started the cluster's watchdog (pid "
                           f"{started.pid}): it was not running\n".encode())

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stopping = True

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def _stop_child(self) -> None:
        child = self.child
        if child is None or child.poll() is not None:
            return
        self.record("stopping")
        try:
            child.send_signal(signal.SIGTERM)
            child.wait(self.grace)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        except ProcessLookupError:
            pass
        self.last_exit = child.returncode

    def run(self) -> int:
        """Supervise until told to stop; return the supervisor's exit code."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_hangup)
        self.record("starting")
        try:
            while not self.stopping:
                try:
                    self._spawn()
                except OSError as exc:
                    self.log.write(f"--- supervisor: cannot start: {exc}\n".encode())
                    self.last_exit = 127
                else:
                    self._wait_child()
                    if self.stopping:
                        break
                    assert self.child is not None
                    self.last_exit = self.child.returncode
                ran = time.time() - self.child_started_at
                self.failures = 1 if ran >= self.reset_after else self.failures + 1
                self.restarts += 1
                delay = min(self.max_backoff, self.backoff * 2 ** (self.failures - 1))
                self.log.write(f"--- supervisor: exited with {self.last_exit} after {ran:.1f}s;"
                               f" restarting in {delay:.2f}s\n".encode())
                self.record("backoff")
                self._sleep(delay)
        finally:
            self._stop_child()
            if self.pump is not None:
                self.pump.join(1.0)  # the child's last lines
            self.record("stopped")
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clipper_local_process.supervise",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--status", required=True, type=Path, help="status JSON file")
    parser.add_argument("--log", required=True, type=Path, help="child's log file (appended)")
    parser.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--backoff", type=float, default=0.5)
    parser.add_argument("--max-backoff", type=float, default=30.0)
    parser.add_argument("--reset-after", type=float, default=10.0)
    parser.add_argument("--grace", type=float, default=5.0)
    parser.add_argument("--restarts", type=int, default=0,
                        help="restart count to start from (the watchdog carries it on)")
    parser.add_argument("--log-max-bytes", type=int, default=logfiles.default_max_bytes(),
                        help=f"rotate the log at this size; 0: never (default: env "
                             f"{logfiles.MAX_BYTES_ENV} or {logfiles.DEFAULT_MAX_BYTES})")
    parser.add_argument("--log-backups", type=int, default=logfiles.default_backups(),
                        help=f"rotated files kept (default: env {logfiles.BACKUPS_ENV} or "
                             f"{logfiles.DEFAULT_BACKUPS})")
    parser.add_argument("--cluster-dir", type=Path, default=None,
                        help="the cluster's state dir: keep its watchdog running")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (put it after --)")
    labels = dict(item.split("=", 1) for item in args.label if "=" in item)
    lock = acquire(args.status.with_suffix(".lock"))
    if lock is None:
        print(f"another supervisor runs {args.status.stem}; exiting", file=sys.stderr)
        return 0
    # checked once the lock is ours: a stop forgets the process first, then
    # stops whoever holds its lock, so a stopped process never starts again
    if args.cluster_dir and DesiredState(args.cluster_dir).get(args.status.stem) is None:
        print(f"{args.status.stem} is no longer desired; exiting", file=sys.stderr)
        return 0
    log = logfiles.RotatingLog(args.log, args.log_max_bytes, args.log_backups)
    return Supervisor(command, args.status, args.log, labels, args.backoff, args.max_backoff,
                      args.reset_after, args.grace, restarts=args.restarts, log=log,
                      cluster_dir=args.cluster_dir).run()


if __name__ == "__main__":
    sys.exit(main())
