"""The cluster's watchdog: restores every desired process that has no supervisor.

``python -m clipper_local_process.watchdog --state-dir DIR``

One per local cluster, detached like the supervisors, started by
``start_clipper`` and stopped first by ``stop_all``.  Every ``--interval``
seconds (default 0.25) it compares the desired processes
(``desired/NAME.json``, see :mod:`clipper_local_process.desired`) with the
supervisors alive (each holds ``procs/NAME.lock``) and starts a new
supervisor for any that is missing, carrying its restart count on.  A record
younger than ``--grace`` seconds is left alone: its supervisor is being
started by the manager.

Nothing depends on one process staying alive:

- a killed child is restarted by its supervisor (back-off 0.5 s first);
- a killed supervisor (its child dies with it) by the watchdog;
- a killed watchdog by any supervisor that finds ``watchdog.lock`` free
  (each looks about once a second), or by the manager's next call.

The watchdog holds ``watchdog.lock``; a second one started at the same time
finds it held and exits.  It exits too when ``watchdog.json`` (written by
``start_clipper``, removed by ``stop_all``) is gone.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from clipper_core.secrets import write_private

from .desired import WATCHDOG_FILE, WATCHDOG_LOCK, acquire, lock_free, lock_holder

log = logging.getLogger("clipper.local_process.watchdog")


# -- what the manager and the supervisors call --------------------------------
def install(state_dir: Path, python: str, cluster_id: str, env: dict[str, str],
            timeout: float = 10.0) -> None:
    """Record how to start the watchdog (``watchdog.json``, 0600), start it and
    wait (up to ``timeout`` seconds) until it runs."""
    write_private(state_dir / WATCHDOG_FILE, json.dumps(
        {"python": python, "cluster_id": cluster_id, "env": env}, indent=1))
    proc = ensure(state_dir)
    deadline = time.monotonic() + timeout
    while lock_free(state_dir / WATCHDOG_LOCK) and time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            proc = ensure(state_dir)
        time.sleep(0.02)


def ensure(state_dir: Path) -> subprocess.Popen[bytes] | None:
    """Start the watchdog if it is recorded and not running; return the new
    process (the caller reaps it), else None."""
    if not lock_free(state_dir / WATCHDOG_LOCK):
        return None
    try:
        spec: dict[str, Any] = json.loads((state_dir / WATCHDOG_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    from .processes import CLUSTER_ID_ENV

    env = {**spec.get("env", {}), CLUSTER_ID_ENV: spec["cluster_id"], "PYTHONUNBUFFERED": "1"}
    logs = state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(os.open(logs / "watchdog.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
              "ab") as out:
        return subprocess.Popen(
            [spec["python"], "-m", "clipper_local_process.watchdog", "--state-dir",
             str(state_dir)], env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True, umask=0o077)


def uninstall(state_dir: Path, timeout: float = 5.0) -> None:
    """Remove ``watchdog.json`` and stop the running watchdog (SIGTERM, then SIGKILL)."""
    (state_dir / WATCHDOG_FILE).unlink(missing_ok=True)
    lock = state_dir / WATCHDOG_LOCK
    pid = lock_holder(lock)
    sig = signal.SIGTERM
    deadline = time.monotonic() + timeout
    while pid is not None and not lock_free(lock):
        if time.monotonic() > deadline:
            sig = signal.SIGKILL
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        time.sleep(0.05)
    if pid is not None:
        _reap(pid)


def _reap(pid: int, timeout: float = 2.0) -> None:
    """Collect ``pid``'s exit status if it is our child (no zombie left behind)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done == pid:
            return
        time.sleep(0.02)


# -- the watchdog itself --------------------------------------------------------
class Watchdog:
    """Restores missing supervisors of the cluster in ``state_dir``."""

    def __init__(self, state_dir: Path, interval: float, grace: float) -> None:
        from .processes import ProcessTable

        spec = json.loads((state_dir / WATCHDOG_FILE).read_text())
        self.state_dir = state_dir
        self.interval = interval
        self.grace = grace
        self.table = ProcessTable(state_dir, spec["cluster_id"], spec["python"])
        self.stopping = False
        #: name -> (monotonic time we started its supervisor, the process)
        self.started: dict[str, tuple[float, subprocess.Popen[bytes]]] = {}

    def _on_signal(self, _signum: int, _frame: object) -> None:
        self.stopping = True

    def tick(self) -> list[str]:
        """One comparison of desired and running; returns the names restored."""
        restored = []
        now = time.monotonic()
        for spec in self.table.desired.all():
            mine = self.started.get(spec.name)
            if mine is not None and mine[1].poll() is None and now - mine[0] < self.grace:
                continue  # ours, still starting
            age = self.table.desired.age(spec.name)
            if age is None or age < self.grace or self.table.supervised(spec.name):
                continue
            # recorded before we looked at its lock: a stop forgets first, so
            # a record still here means nobody stopped it on purpose
            if self.table.desired.get(spec.name) is None:
                continue
            old = self.table.get(spec.name)
            restarts = old.restarts + 1 if old is not None else 1
            self.started[spec.name] = (now, self.table.spawn(spec, restarts=restarts))
            log.warning("restored %s (no supervisor was running it; restart %d)",
                        spec.name, restarts)
            restored.append(spec.name)
        for name, (_, proc) in list(self.started.items()):
            if proc.poll() is not None:  # reap; a supervisor normally outlives us
                del self.started[name]
        return restored

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        log.info("watchdog of %s running (pid %d)", self.state_dir, os.getpid())
        while not self.stopping and (self.state_dir / WATCHDOG_FILE).exists():
            try:
                self.tick()
            except OSError as exc:  # a full disk, a state dir being removed
                log.warning("watchdog tick failed: %s", exc)
            deadline = time.monotonic() + self.interval
            while not self.stopping and time.monotonic() < deadline:
                time.sleep(0.05)
        log.info("watchdog of %s stopped", self.state_dir)
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clipper_local_process.watchdog",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--grace", type=float, default=3.0)
    args = parser.parse_args(argv)
    lock = acquire(args.state_dir / WATCHDOG_LOCK, patience=0.5)
    if lock is None or not (args.state_dir / WATCHDOG_FILE).exists():
        return 0  # another watchdog runs, or the cluster was stopped
    from clipper_core import logs

    logs.configure()
    return Watchdog(args.state_dir, args.interval, args.grace).run()


if __name__ == "__main__":
    sys.exit(main())
