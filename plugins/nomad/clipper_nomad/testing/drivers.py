"""The task drivers: ``raw_exec`` runs ``command`` + ``args``; ``docker``
looks the image up in the test's image table (its entrypoint, its ``/model``
as a local directory; an unknown image fails like a failed pull).  Also a
task's environment (``NOMAD_*`` variables, ``Env`` interpolated) and how a
task's process group is killed."""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any

from clipper_core.testing.process_pods import ImageTable, local_argv

from .allocations import Allocation, DriverError
from .templates import interpolate

__all__ = ["kill", "task_command", "task_env"]


def task_env(alloc: Allocation, task: dict[str, Any], *, region: str,
             datacenter: str) -> dict[str, str]:
    """The environment of ``task`` in ``alloc``: this process's, the ``NOMAD_*``
    runtime variables, ``NOMAD_META_*``, then the task's ``Env``."""
    env = dict(os.environ)
    env.update({
        "NOMAD_ALLOC_ID": alloc.id, "NOMAD_SHORT_ALLOC_ID": alloc.id[:8],
        "NOMAD_ALLOC_NAME": alloc.name, "NOMAD_ALLOC_INDEX": str(alloc.index),
        "NOMAD_JOB_ID": alloc.job_id, "NOMAD_JOB_NAME": alloc.job.get("Name", alloc.job_id),
        "NOMAD_GROUP_NAME": alloc.group, "NOMAD_TASK_NAME": task["Name"],
        "NOMAD_NAMESPACE": alloc.namespace, "NOMAD_REGION": region,
        "NOMAD_DC": datacenter, "NOMAD_ALLOC_DIR": str(alloc.dir / "alloc"),
        "NOMAD_TASK_DIR": str(alloc.dir / task["Name"] / "local"),
        "NOMAD_SECRETS_DIR": str(alloc.dir / task["Name"] / "secrets"),
        "NOMAD_CPU_LIMIT": str(task["Resources"]["CPU"]),
        "NOMAD_MEMORY_LIMIT": str(task["Resources"]["MemoryMB"]),
    })
    for label, port in alloc.ports.items():
        for kind in ("PORT", "HOST_PORT", "ALLOC_PORT"):
            env[f"NOMAD_{kind}_{label}"] = str(port)
        for kind in ("IP", "HOST_IP"):
            env[f"NOMAD_{kind}_{label}"] = "127.0.0.1"
        for kind in ("ADDR", "HOST_ADDR"):
            env[f"NOMAD_{kind}_{label}"] = f"127.0.0.1:{port}"
    for key, value in (alloc.job.get("Meta") or {}).items():
        env[f"NOMAD_META_{key}"] = value
    for key, value in (task.get("Env") or {}).items():
        env[key] = interpolate(value, env)
    return env


def task_command(task: dict[str, Any], env: dict[str, str], images: ImageTable) -> list[str]:
    """The local argv of a task; raise DriverError like a driver would.  A docker
    image's ``/model`` in ``env`` becomes its local directory (in place)."""
    config = task["Config"]
    args = [interpolate(str(a), env) for a in config.get("args") or []]
    driver = task["Driver"]
    if driver == "raw_exec":
        return _local([interpolate(config["command"], env)] + args)
    if driver == "docker":
        image = images.resolve(str(config.get("image", "")))
        if image is None:
            raise DriverError(
                f"Failed to pull `{config.get('image')}`: Error response from daemon: "
                "pull access denied, repository does not exist or may require "
                "'docker login'")
        if image.model_dir:
            for key, value in list(env.items()):
                if value == "/model" or value.startswith("/model/"):
                    env[key] = image.model_dir + value[len("/model"):]
            env.setdefault("CLIPPER_MODEL_PATH", image.model_dir)
        entrypoint = [interpolate(str(a), env) for a in config.get("entrypoint") or []]
        command = [interpolate(config["command"], env)] if config.get("command") else []
        if entrypoint:
            return _local([*entrypoint, *command, *args])
        if command:
            return _local([*command, *args])
        return _local([*image.entrypoint, *args])
    raise DriverError(f"missing drivers: {driver}")


def kill(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM the task's process group, SIGKILL after ``timeout`` s; children
    left in the group are killed too."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        pass
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)
    else:
        try:  # children left in the task's process group
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _local(argv: list[str]) -> list[str]:
    """``argv`` made local; a missing program fails like the executor does."""
    try:
        return local_argv(argv)
    except (FileNotFoundError, ValueError) as exc:
        raise DriverError(f"failed to launch command with executor: {exc}") from None
