"""A supervised process's log: rotated by size, reopened on SIGHUP."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from clipper_local_process.logfiles import RotatingLog

from .conftest import wait_until


def test_rotates_at_max_bytes_and_keeps_backups(tmp_path):
    log = RotatingLog(tmp_path / "p.log", max_bytes=100, backups=2)
    for i in range(10):
        log.write(f"{i:02d}".encode() * 20 + b"\n")  # 41 bytes
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["p.log", "p.log.1", "p.log.2"]
    assert all(p.stat().st_size <= 100 for p in tmp_path.iterdir())
    assert (tmp_path / "p.log").read_text().startswith("08")  # newest last
    assert (tmp_path / "p.log.2").read_text().startswith("04")
    assert (tmp_path / "p.log").stat().st_mode & 0o777 == 0o600


def test_zero_max_bytes_never_rotates(tmp_path):
    log = RotatingLog(tmp_path / "p.log", max_bytes=0, backups=2)
    for _ in range(100):
        log.write(b"x" * 100)
    log.close()
    assert [p.name for p in tmp_path.iterdir()] == ["p.log"]
    assert (tmp_path / "p.log").stat().st_size == 10_000


def supervise(tmp_path: Path, code: str, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "clipper_local_process.supervise", "--status",
         str(tmp_path / "p.json"), "--log", str(tmp_path / "p.log"), *extra, "--",
         sys.executable, "-c", code], start_new_session=True)


def test_supervisor_bounds_a_chatty_child(tmp_path):
    code = ("import sys, time\n"
            "for i in range(3000): print('line %05d' % i + '.' * 90, flush=True)\n"
            "print('fin' + 'ished', flush=True)\n"
            "time.sleep(60)\n")
    proc = supervise(tmp_path, code, "--log-max-bytes", "20000", "--log-backups", "3")
    try:
        wait_until(lambda: "finished" in (tmp_path / "p.log").read_text(), 20, "the child's output")
        logs = sorted(tmp_path.glob("p.log*"))
        assert [p.name for p in logs] == ["p.log", "p.log.1", "p.log.2", "p.log.3"]
        assert all(p.stat().st_size <= 20000 for p in logs)  # 300 KB written, 80 KB kept
        # nothing lost at a rotation: the lines run on from one file to the next
        last_of_older = (tmp_path / "p.log.1").read_text().splitlines()[-1]
        first_of_newer = (tmp_path / "p.log").read_text().splitlines()[0]
        assert int(first_of_newer[5:10]) == int(last_of_older[5:10]) + 1
    finally:
        proc.terminate()
        proc.wait(10)


def test_sighup_reopens_the_log_for_logrotate(tmp_path):
    code = ("import signal, sys, time\n"
            "signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
            "i = 0\n"
            "while True:\n"
            "    print('tick', i, flush=True); i += 1; time.sleep(0.05)\n")
    proc = supervise(tmp_path, code)
    try:
        wait_until(lambda: "tick 3" in (tmp_path / "p.log").read_text(), 10, "ticks")
        (tmp_path / "p.log").rename(tmp_path / "p.log.old")  # what logrotate does
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "tick" in (tmp_path / "p.log").read_text(), 10, "a new log file")
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(10)
