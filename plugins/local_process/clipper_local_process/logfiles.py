"""A supervised process's log file: appended, rotated by size, reopened on demand.

The supervisor reads its child's stdout and stderr from a pipe and writes them
here.  When the file would pass ``max_bytes`` it is renamed ``NAME.log.1``
(``.1`` becomes ``.2`` and so on; the oldest beyond ``backups`` is deleted)
and a new ``NAME.log`` begins, so a process's logs take at most
``max_bytes * (backups + 1)`` bytes.  :meth:`RotatingLog.reopen` (the
supervisor calls it on SIGHUP) starts writing to ``NAME.log`` afresh, for
an external ``logrotate`` that moves the file away.

Defaults: 10 MiB and 3 backups, from env ``CLIPPER_LOG_MAX_BYTES`` and
``CLIPPER_LOG_BACKUPS`` (``0`` bytes turns rotation off).
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import IO

MAX_BYTES_ENV = "CLIPPER_LOG_MAX_BYTES"
BACKUPS_ENV = "CLIPPER_LOG_BACKUPS"
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUPS = 3


def default_max_bytes() -> int:
    return int(os.environ.get(MAX_BYTES_ENV) or DEFAULT_MAX_BYTES)


def default_backups() -> int:
    return int(os.environ.get(BACKUPS_ENV) or DEFAULT_BACKUPS)


class RotatingLog:
    """An append-only log file rotated at ``max_bytes`` keeping ``backups`` old files."""

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES,
                 backups: int = DEFAULT_BACKUPS) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._size = 0

    def _open(self) -> IO[bytes]:
        if self._file is None:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._file = os.fdopen(fd, "ab")
            self._size = os.fstat(fd).st_size
        return self._file

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _rotate(self) -> None:
        self._close()
        if self.backups <= 0:
            self.path.unlink(missing_ok=True)
            return
        for i in range(self.backups - 1, 0, -1):
            older = Path(f"{self.path}.{i}")
            if older.exists():
                os.replace(older, f"{self.path}.{i + 1}")
        if self.path.exists():
            os.replace(self.path, f"{self.path}.1")

    def write(self, data: bytes) -> None:
        """Append ``data``; rotate where it would pass ``max_bytes``, at the last
        line break that fits (a line longer than a whole file is split)."""
        with self._lock:
            while data:
                out = self._open()
                room = self.max_bytes - self._size
                if self.max_bytes <= 0 or len(data) <= room:
                    cut = len(data)
                else:
                    cut = data.rfind(b"\n", 0, max(room, 0)) + 1
                    if cut == 0 and self._size == 0:
                        cut = room
                if cut:
                    out.write(data[:cut])
                    out.flush()
                    self._size += cut
                    data = data[cut:]
                if data:
                    self._rotate()

    def reopen(self) -> None:
        """Close the file; the next write opens ``path`` again (after logrotate)."""
        with self._lock:
            self._close()

    def close(self) -> None:
        with self._lock:
            self._close()


def pump(source: IO[bytes], log: RotatingLog) -> threading.Thread:
    """Copy ``source`` (a child's output pipe) into ``log`` until EOF, in a thread."""
    def run() -> None:
        with source:
            while chunk := os.read(source.fileno(), 65536):
                log.write(chunk)

    thread = threading.Thread(target=run, name="log-pump", daemon=True)
    thread.start()
    return thread


def copy_logs(logs_dir: Path, cluster_name: str, out: Path) -> list[str]:
    """Copy every ``*.log`` of ``logs_dir`` into ``out`` as
    ``<cluster>-<file>``; return the new paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for path in sorted(logs_dir.glob("*.log")):
        dest = out / f"{cluster_name}-{path.name}"
        shutil.copyfile(path, dest)
        paths.append(str(dest))
    return paths
