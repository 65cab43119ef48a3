"""Readiness and liveness probes (httpGet, tcpSocket, exec) against a
container's local ports, and when each is due in compressed time."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

from clipper_core.testing.process_pods import http_probe, local_argv, tcp_probe

from .pod_status import ContainerRun
from .resources import Obj

__all__ = ["check_probe", "probe_due"]


def probe_due(run: ContainerRun, kind: str, probe: Obj, *, interval: float,
              time_scale: float) -> bool:
    """Whether ``kind``'s probe is due (``periodSeconds`` in compressed time,
    never more often than every ``interval`` s); if so, the next is scheduled."""
    now = time.monotonic()
    period = max(interval, float(probe.get("periodSeconds", 10)) * time_scale)
    if now < run.next_probe.get(kind, 0.0):
        return False
    run.next_probe[kind] = now + period
    return True


def check_probe(probe: Obj, local_port: Callable[[int | str], int | None]) -> tuple[bool, str]:
    """Run ``probe`` once; ``local_port`` maps a container port (number or name)
    to the local one.  Returns (ok, message)."""
    timeout = min(float(probe.get("timeoutSeconds", 1)), 2.0)
    if "httpGet" in probe:
        get = probe["httpGet"]
        port = local_port(get["port"])
        if port is None:
            return False, f"unknown port {get['port']!r}"
        return http_probe(port, get.get("path", "/"), timeout=timeout)
    if "tcpSocket" in probe:
        port = local_port(probe["tcpSocket"]["port"])
        if port is None:
            return False, f"unknown port {probe['tcpSocket']['port']!r}"
        return tcp_probe(port, timeout=timeout)
    if "exec" in probe:
        try:
            argv = local_argv(probe["exec"]["command"])
            done = subprocess.run(argv, capture_output=True, timeout=5, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, str(exc)
        return done.returncode == 0, done.stdout.decode(errors="replace")[-200:]
    return True, ""
