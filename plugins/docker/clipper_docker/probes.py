"""Small checks the manager polls: HTTP readiness, commands in containers,
log tails for error messages; containers' logs written to files."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .engine import docker_errors


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_tail(container: Any, lines: int = 40) -> str:
    """The last ``lines`` of a container's output, for error messages."""
    try:
        return container.logs(tail=lines).decode(errors="replace").rstrip() or "(no output)"
    except Exception as exc:  # noqa: BLE001 - best effort inside an error message
        return f"(logs unavailable: {exc})"


def write_logs(containers: Iterable[Any], logging_dir: str) -> list[str]:
    """Write ``<container name>.log`` (with timestamps) for each container into
    ``logging_dir``; return the paths, sorted."""
    out_dir = Path(logging_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for c in containers:
        path = out_dir / f"{c.name}.log"
        with docker_errors(f"Reading logs of {c.name}"):
            path.write_bytes(c.logs(stdout=True, stderr=True, timestamps=True))
        paths.append(str(path))
    return sorted(paths)


def exec_ok(container: Any, cmd: list[str], expect: bytes | None = None) -> bool:
    """Whether ``cmd`` succeeds in the container (and prints ``expect``)."""
    try:
        code, output = container.exec_run(cmd)
    except Exception:  # noqa: BLE001 - not running yet
        return False
    return code == 0 and (expect is None or expect in (output or b""))


def http_ok(url: str, token: str | None) -> bool:
    """Whether ``GET url`` answers 200."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        return httpx.get(url, headers=headers, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False

