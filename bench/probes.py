"""Probes beside the load: peak RSS of processes while a point runs, and a
py-spy profile of the query frontend."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from load import LoadError, run_wrk


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class PeakRSS:
    """Samples the RSS of some processes every 100 ms and keeps each peak."""

    def __init__(self, pids: dict[str, int]) -> None:
        import psutil

        self.procs = {}
        for name, pid in pids.items():
            with contextlib.suppress(psutil.Error):
                self.procs[name] = psutil.Process(pid)
        self.peak: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            for name, p in self.procs.items():
                with contextlib.suppress(psutil.Error):
                    self.peak[name] = max(self.peak[name], p.memory_info().rss)
            self._stop.wait(0.1)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def mib(self) -> dict[str, float]:
        return {k: round(v / 2**20, 1) for k, v in self.peak.items()}


def profile(system: Any, args: argparse.Namespace) -> dict[str, Any]:
    """py-spy on the query frontend while wrk drives noop at 64 connections:
    share of samples per function, own and inclusive."""
    pyspy = shutil.which("py-spy")
    if not pyspy:
        raise LoadError("py-spy is not installed (pip install py-spy)")
    out_dir = Path(args.out)
    raw = out_dir / "profile-noop64.txt"
    seconds = max(3, int(args.duration * 2 / 3))
    loader = threading.Thread(target=run_wrk, args=(system.url("noop"), 64, seconds + 3,
                                                    system.endpoint("noop").body))
    loader.start()
    time.sleep(1.5)
    log(f"py-spy on the query frontend for {seconds} s")
    subprocess.run([pyspy, "record", "--pid", str(system.frontend_pid()), "--duration",
                    str(seconds), "--rate", "200", "--format", "raw", "--output", str(raw),
                    "--nonblocking"], capture_output=True, timeout=seconds + 60)
    loader.join()
    return summarize_profile(raw)


def summarize_profile(raw: Path, top: int = 15) -> dict[str, Any]:
    """Collapsed stacks -> the functions with the most own and inclusive samples."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        count = int(n)
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1]
                  + ")" if " (" in f else f for f in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    rows = [{"function": f, "self": own[f] / total, "total": incl[f] / total}
            for f, _ in own.most_common(top)]
    return {"samples": total, "top": rows,
            "top_inclusive": [{"function": f, "total": c / total}
                              for f, c in incl.most_common(25)]}


