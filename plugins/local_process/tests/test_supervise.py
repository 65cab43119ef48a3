"""The supervisor: restarts with back-off, records status, forwards SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from .conftest import wait_until


def start(tmp_path: Path, code: str, *extra: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
    status, log = tmp_path / "p.json", tmp_path / "p.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipper_local_process.supervise", "--status", str(status),
         "--log", str(log), "--label", "kind=test", *extra, "--",
         sys.executable, "-c", code], start_new_session=True)
    return proc, status, log


def read(status: Path) -> dict:
    return json.loads(status.read_text())


@pytest.fixture
def cleanup():
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_restarts_crashing_child_with_exponential_backoff(tmp_path, cleanup):
    proc, status, log = start(tmp_path, "import sys; print('boom', flush=True); sys.exit(3)",
                              "--backoff", "0.1", "--max-backoff", "10")
    cleanup.append(proc)
    wait_until(lambda: status.exists() and read(status)["restarts"] >= 3, 10, "3 restarts")
    time.sleep(1.0)
    data = read(status)
    # 0.1 + 0.2 + 0.4 + 0.8 ...: in ~1.5 s at most 5 restarts; without back-off, dozens.
    assert 3 <= data["restarts"] <= 6
    assert data["last_exit_code"] == 3
    assert data["labels"] == {"kind": "test"}
    assert data["supervisor_pid"] == proc.pid
    text = log.read_text()
    assert text.count("boom") >= 3 and "restarting in" in text


def test_sigterm_is_forwarded_and_status_recorded(tmp_path, cleanup):
    marker = tmp_path / "got-term"
    code = ("import signal, sys, time, pathlib\n"
            f"def h(*a): pathlib.Path({str(marker)!r}).write_text('x'); sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, h)\n"
            "print('ready', flush=True)\n"
            "while True: time.sleep(0.05)\n")
    proc, status, log = start(tmp_path, code)
    cleanup.append(proc)
    wait_until(lambda: "ready" in log.read_text().splitlines(), 10, "child ready")
    child = read(status)["pid"]
    assert read(status)["status"] == "running" and psutil.pid_exists(child)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert marker.exists()
    data = read(status)
    assert data["status"] == "stopped" and data["restarts"] == 0
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie"


def test_child_that_ignores_sigterm_is_killed_after_grace(tmp_path, cleanup):
    code = ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('ready', flush=True)\nwhile True: time.sleep(0.05)\n")
    proc, status, log = start(tmp_path, code, "--grace", "0.5")
    cleanup.append(proc)
    wait_until(lambda: "ready" in log.read_text().splitlines(), 10, "child ready")
    child = read(status)["pid"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    wait_until(lambda: not psutil.pid_exists(child), 5, "child gone")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_child_dies_with_a_sigkilled_supervisor(tmp_path, cleanup):
    proc, status, log = start(tmp_path, "import time\nprint('ready', flush=True)\n"
                              "while True: time.sleep(0.05)\n")
    cleanup.append(proc)
    wait_until(lambda: "ready" in log.read_text().splitlines(), 10, "child ready")
    child = read(status)["pid"]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    wait_until(lambda: not psutil.pid_exists(child), 5, "orphaned child to die")
