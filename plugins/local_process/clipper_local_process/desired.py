"""The desired processes of a local cluster, and the locks that say who runs.

``desired/NAME.json`` (mode 0600, in the 0700 state dir) records how to start
supervised process ``NAME``: its command, environment (which may hold the
cluster's secrets, hence the mode), labels and back-off.  The manager writes it
before it starts the process and removes it before it stops it; the watchdog
(:mod:`clipper_local_process.watchdog`) restarts the supervisor of every
recorded process that has none.

Liveness is told by ``flock`` locks, which the kernel releases the moment the
holder dies (even by SIGKILL), so a dead holder never looks alive and a reused
pid never fools anyone:

- ``procs/NAME.lock`` is held (exclusively) by the supervisor of ``NAME``
  for its whole life; a second supervisor of the same name gives up;
- ``watchdog.lock`` is held by the cluster's watchdog.

A prober takes a shared lock for an instant (:func:`lock_free`); a process
that wants the exclusive lock retries for a moment (:func:`acquire`), so a
probe never makes it give up.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

import attrs

from clipper_core.secrets import write_private

DESIRED_DIR = "desired"
WATCHDOG_FILE = "watchdog.json"
WATCHDOG_LOCK = "watchdog.lock"


@attrs.frozen(kw_only=True)
class DesiredProcess:
    """How to start one supervised process (what ``desired/NAME.json`` holds)."""

    name: str
    command: list[str]
    env: dict[str, str]
    labels: dict[str, str]
    backoff: float = 0.5
    max_backoff: float = 30.0

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DesiredProcess:
        names = {a.name for a in attrs.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class DesiredState:
    """The ``desired/`` directory of the cluster whose state dir is ``state_dir``."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / DESIRED_DIR

    def path(self, name: str) -> Path:
        return self.dir / f"{name}.json"

    def record(self, spec: DesiredProcess) -> None:
        """Record ``spec`` (0600), replacing any earlier record of its name."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(self.path(spec.name), json.dumps(spec.to_json(), indent=1))

    def forget(self, name: str) -> None:
        """Remove the record of ``name``: nothing restores it any more."""
        self.path(name).unlink(missing_ok=True)

    def get(self, name: str) -> DesiredProcess | None:
        try:
            return DesiredProcess.from_json(json.loads(self.path(name).read_text()))
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return None

    def age(self, name: str) -> float | None:
        """Seconds since ``name`` was recorded; None when it is not."""
        try:
            return time.time() - self.path(name).stat().st_mtime
        except FileNotFoundError:
            return None

    def all(self) -> list[DesiredProcess]:
        """Every recorded process, sorted by name."""
        if not self.dir.is_dir():
            return []
        specs = (self.get(p.stem) for p in sorted(self.dir.glob("*.json")))
        return [s for s in specs if s is not None]


# -- locks -------------------------------------------------------------------
def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


def lock_free(path: Path) -> bool:
    """Whether nobody holds the exclusive lock on ``path`` right now."""
    try:
        fd = _open(path)
    except FileNotFoundError:  # its directory is gone: nobody holds it
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing releases the shared lock
    return True


def acquire(path: Path, patience: float = 1.0) -> int | None:
    """The fd holding the exclusive lock on ``path`` (keep it open to hold it),
    or None when another process still holds it after ``patience`` seconds."""
    fd = _open(path)
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.02)
            continue
        with contextlib.suppress(OSError):  # the holder's pid, for people reading
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        return fd


def lock_holder(path: Path) -> int | None:
    """The pid written by the lock's holder, when it is held and that process's
    command line names the lock's directory (never a stranger that got a pid
    read from the file an instant before its new holder rewrote it)."""
    import psutil

    if lock_free(path):
        return None
    try:
        pid = int(path.read_text().strip() or 0)
        cmdline = psutil.Process(pid).cmdline() if pid > 0 else []
    except (FileNotFoundError, ValueError, psutil.Error):
        return None
    return pid if any(str(path.parent) in arg for arg in cmdline) else None
