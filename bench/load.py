"""External load generators: ``wrk`` (closed loop, one thread) for the
throughput points, and ``ratedrive`` (built from bench/ratedrive.c with the
system C compiler) for the overload scenario (open loop, constant rate) and
the goodput sweep (open and closed loop, every prediction counted)."""

from __future__ import annotations

import itertools
import json
import resource
import shutil
import subprocess
from pathlib import Path
from typing import Any

import attrs

HERE = Path(__file__).resolve().parent
LUA = HERE / "wrk" / "post.lua"
RATEDRIVE_SRC = HERE / "ratedrive.c"
RATEDRIVE_BIN = HERE / ".build" / "ratedrive"

#: Every load run starts its request counter here, so no two runs (warm-up,
#: measurement, other connection counts) send the same input twice.
_offsets = itertools.count(1)


class LoadError(RuntimeError):
    """A load generator is missing, or failed, or printed nothing usable."""


@attrs.frozen
class Body:
    """How a request body is built: ``prefix + vector + suffix``, the vector
    ``width`` wide; ``distinct`` puts a new counter value in its first feature."""

    width: int
    distinct: bool = True
    prefix: str = '{"input":['
    suffix: str = "]}"


@attrs.frozen
class Point:
    """One closed-loop measurement."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int          # non-2xx responses
    socket_errors: int   # connect/read/write errors and timeouts


def wrk_path() -> str:
    path = shutil.which("wrk")
    if not path:
        raise LoadError("wrk is not installed (apt-get install wrk)")
    return path


def run_wrk(url: str, connections: int, seconds: float, body: Body,
            timeout_s: float = 10.0) -> Point:
    """Drive ``url`` with ``wrk -t1`` for ``seconds``; returns its summary."""
    offset = next(_offsets) * 10_000_000
    cmd = [wrk_path(), "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
           f"--timeout={timeout_s:g}s", "-s", str(LUA), url, "--", str(body.width),
           "distinct" if body.distinct else "same", str(offset), body.prefix, body.suffix]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if proc.returncode != 0 or line is None:
        raise LoadError(f"wrk failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]} "
                        f"{proc.stdout.strip()[-500:]}")
    d = json.loads(line[len("BENCHJSON "):])
    secs = d["duration_us"] / 1e6
    return Point(requests=d["requests"], seconds=secs, rps=d["requests"] / secs if secs else 0.0,
                 p50_ms=d["p50_us"] / 1e3, p90_ms=d["p90_us"] / 1e3, p99_ms=d["p99_us"] / 1e3,
                 max_ms=d["max_us"] / 1e3, errors=d["status"],
                 socket_errors=d["connect"] + d["read"] + d["write"] + d["timeout"])


def ratedrive_path() -> Path:
    """The constant-rate generator, compiled on first use."""
    if RATEDRIVE_BIN.exists() and RATEDRIVE_BIN.stat().st_mtime >= RATEDRIVE_SRC.stat().st_mtime:
        return RATEDRIVE_BIN
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise LoadError("no C compiler to build bench/ratedrive.c (apt-get install gcc)")
    RATEDRIVE_BIN.parent.mkdir(exist_ok=True)
    proc = subprocess.run([cc, "-O2", "-o", str(RATEDRIVE_BIN), str(RATEDRIVE_SRC)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise LoadError(f"building ratedrive failed: {proc.stderr[-1000:]}")
    return RATEDRIVE_BIN


def raise_fd_limit() -> int:
    """The soft limit on open files up to the hard one (inherited by the load
    generators: 1,024 connections do not fit under a soft limit of 1,024);
    returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def run_rate(host: str, port: int, path: str, rate: float, seconds: float,
             connections: int, body: Body, slo_ms: float) -> dict[str, Any]:
    """Offer ``rate`` requests/s for ``seconds`` (open loop; ``rate`` 0: closed
    loop on ``connections``).  Returns ratedrive's counts: per response
    (completed, status and socket errors, unfinished, latency percentiles from
    each request's due time) and per prediction (real, defaults, and
    ``good``: real answers within ``slo_ms``)."""
    offset = next(_offsets) * 10_000_000
    cmd = [str(ratedrive_path()), host, str(port), path, f"{rate:.1f}", f"{seconds:g}",
           str(connections), str(body.width), str(offset), f"{slo_ms:g}", body.prefix,
           body.suffix]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if proc.returncode != 0:
        raise LoadError(f"ratedrive failed (exit {proc.returncode}): {proc.stderr[-500:]}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def run_closed(host: str, port: int, path: str, connections: int, seconds: float,
               body: Body, slo_ms: float) -> dict[str, Any]:
    """A closed loop on ``connections`` for ``seconds`` with ratedrive (each
    connection sends its next request when the last is answered), counted
    as :func:`run_rate` counts; latency from each send."""
    return run_rate(host, port, path, 0.0, seconds, connections, body, slo_ms)
