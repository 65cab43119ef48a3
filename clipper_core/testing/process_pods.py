"""Run a pod's container (or a Nomad task) as a local process.

The fakes of the Kubernetes and Nomad APIs (``clipper_k8s.testing``, ``clipper_nomad.testing``)
share this module for the part that is the same whatever the orchestrator:
turning "run image X with command C, args A and env E" into a supervised
local process.  It is test support, not product code.

Public API (keep it stable, both fakes use it):

- :class:`ImageSpec`, :class:`ImageTable`: what an image means locally.  A
  test maps each image name to an entrypoint and, for model images, a local
  model directory (``CLIPPER_MODEL_PATH`` is rewritten to it).  An image not
  in the table cannot be "pulled".
- :func:`local_argv`: ``python``/``python3`` -> ``sys.executable``.
- :func:`expand_vars`: Kubernetes ``$(VAR)`` expansion in command and args.
- :func:`rewrite_ports`: give a process its own local ports: the value after
  any ``--...port`` flag (``--port 1337``, ``--rpc-port=7000``) that names a
  declared port is replaced by the local port allocated for it.
- :func:`rewrite_port_env`: the same for ``*PORT`` environment variables.
- :func:`allocate_port`: a free local port never handed out twice by this
  process (so two fake pods never race for the same one).
- :func:`http_probe`, :func:`tcp_probe`: health checks against 127.0.0.1.
- :class:`ContainerProcess`: one container with a restart policy, restart
  count, back-off, a log file per run (the previous run's log is kept), and
  a state (``waiting``/``running``/``terminated``) with reason and exit code.
"""

from __future__ import annotations

import ctypes
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import attrs

__all__ = [
    "ContainerProcess", "ImageSpec", "ImageTable", "ProcessState", "allocate_port",
    "expand_vars", "http_probe", "local_argv", "rewrite_port_env", "rewrite_ports", "tcp_probe",
]

#: The runtime command a model image's entrypoint runs (SPEC.md, architecture.md).
MODEL_RUNTIME = ("python", "-m", "clipper_core.runtime")


@attrs.frozen(kw_only=True)
class ImageSpec:
    """What running an image means on this machine.

    ``entrypoint`` is used when the container gives no ``command`` (like a
    Docker ENTRYPOINT); ``model_dir`` is the directory the image would hold at
    ``/model`` (``CLIPPER_MODEL_PATH`` is set to it).  ``cwd`` is the working
    directory of the process (default: the caller's).
    """

    entrypoint: tuple[str, ...] = ()
    model_dir: str | None = None
    cwd: str | None = None

    @classmethod
    def model(cls, model_dir: str | os.PathLike[str]) -> ImageSpec:
        """A model image: runs the model runtime on ``model_dir``."""
        return cls(entrypoint=MODEL_RUNTIME, model_dir=str(model_dir))

    @classmethod
    def python(cls) -> ImageSpec:
        """An image holding this Python environment (frontends): the container's
        own ``command`` says what to run."""
        return cls(entrypoint=("python",))


class ImageTable:
    """Image name -> :class:`ImageSpec`, thread-safe; tests add entries at any time."""

    def __init__(self, entries: Mapping[str, ImageSpec] | None = None) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, ImageSpec] = dict(entries or {})

    def add(self, image: str, spec: ImageSpec) -> None:
        with self._lock:
            self._entries[image] = spec

    def resolve(self, image: str) -> ImageSpec | None:
        """The spec for ``image`` (also tried without a ``docker.io/`` prefix), or None."""
        with self._lock:
            for name in (image, image.removeprefix("docker.io/"),
                         image.removeprefix("docker.io/library/")):
                if name in self._entries:
                    return self._entries[name]
        return None


def local_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``python``/``python3`` replaced by this interpreter and
    other programs looked up on PATH (raises FileNotFoundError if missing)."""
    if not argv:
        raise ValueError("empty command")
    first = argv[0]
    if first in ("python", "python3") or re.fullmatch(r"(/usr(/local)?/bin/)?python3?(\.\d+)?",
                                                      first):
        prog = sys.executable
    elif os.path.isabs(first):
        prog = first
    else:
        found = shutil.which(first)
        if found is None:
            raise FileNotFoundError(f"executable file not found in $PATH: {first}")
        prog = found
    return [prog, *argv[1:]]


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand_vars(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: known names are replaced, unknown ones
    left as they are, ``$$`` becomes ``$``."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))
    return _VAR.sub(sub, text)


def rewrite_ports(argv: Sequence[str], ports: Mapping[int, int]) -> list[str]:
    """Replace declared ports in ``argv`` by their local ports.

    ``ports`` maps a declared port (a container port, a task port label's
    value) to the local port.  Only values of flags whose name ends in
    ``port`` are rewritten: ``--port 1337``, ``--rpc-port=7000``.
    """
    out: list[str] = []
    flag_before = False
    for arg in argv:
        if flag_before and arg.isdigit() and int(arg) in ports:
            out.append(str(ports[int(arg)]))
        else:
            m = re.fullmatch(r"(--?[\w-]*port)=(\d+)", arg)
            if m and int(m.group(2)) in ports:
                arg = f"{m.group(1)}={ports[int(m.group(2))]}"
            out.append(arg)
        flag_before = bool(re.fullmatch(r"--?[\w-]*port", arg))
    return out


def rewrite_port_env(env: Mapping[str, str], ports: Mapping[int, int]) -> dict[str, str]:
    """``env`` with the value of every ``*PORT`` variable that names a declared
    port replaced by its local port (``PORT=8080`` -> ``PORT=41234``)."""
    out = dict(env)
    for key, value in env.items():
        if key.upper().endswith("PORT") and value.isdigit() and int(value) in ports:
            out[key] = str(ports[int(value)])
    return out


_given_ports: set[int] = set()
_ports_lock = threading.Lock()


def allocate_port(host: str = "127.0.0.1", low: int | None = None,
                  high: int | None = None) -> int:
    """A port free on ``host`` now and never returned before by this process.

    With ``low``/``high`` the port is chosen in that range (e.g. NodePorts
    30000-32767), otherwise the kernel picks one.
    """
    import random

    with _ports_lock:
        for _ in range(200):
            if low is not None and high is not None:
                candidate = random.randint(low, high)
            else:
                candidate = 0
            with socket.socket() as s:
                try:
                    s.bind((host, candidate))
                except OSError:
                    continue
                port = s.getsockname()[1]
            if port not in _given_ports:
                _given_ports.add(port)
                return port
    raise OSError(f"no free port on {host}")


def http_probe(port: int, path: str = "/", host: str = "127.0.0.1",
               timeout: float = 1.0) -> tuple[bool, str]:
    """GET ``path``; success is a 2xx/3xx status.  Returns (ok, message)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        status = conn.getresponse().status
    except OSError as exc:
        return False, f'Get "http://{host}:{port}{path}": {exc}'
    finally:
        conn.close()
    if 200 <= status < 400:
        return True, ""
    return False, f"HTTP probe failed with statuscode: {status}"


def tcp_probe(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> tuple[bool, str]:
    """Open a TCP connection.  Returns (ok, message)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, ""
    except OSError as exc:
        return False, f"dial tcp {host}:{port}: {exc}"


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


@attrs.frozen(kw_only=True)
class ProcessState:
    """A container's state as an orchestrator reports it."""

    #: "waiting", "running" or "terminated".
    state: str
    #: Why (waiting: "ContainerCreating", "CrashLoopBackOff"; terminated:
    #: "Error", "Completed").
    reason: str = ""
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    pid: int | None = None


class ContainerProcess:
    """One container as a supervised local process.

    Call :meth:`start` once; the process is spawned from this object's own
    thread (so the child's parent-death signal is tied to that thread, not
    to a short-lived request thread).  ``restart`` is "Always", "OnFailure"
    or "Never".  After an exit the process is started again after
    ``backoff`` seconds, doubled per restart up to ``max_backoff``.  Every
    change calls ``on_change(self)`` (from the supervising thread).

    Each run writes stdout+stderr to ``log_dir/<name>.<run>.log``;
    :attr:`log_path` is the current run's, :attr:`previous_log_path` the one
    before.
    """

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str],
                 log_dir: str | os.PathLike[str], *, cwd: str | None = None,
                 restart: str = "Always", backoff: float = 0.5, max_backoff: float = 5.0,
                 on_change: Callable[[ContainerProcess], None] | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.cwd = cwd
        self.restart_policy = restart
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.on_change = on_change
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.restart_count = 0
        self.last_state: ProcessState | None = None
        self._state = ProcessState(state="waiting", reason="ContainerCreating")
        self._run = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._kill_requested = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._supervise, name=f"container-{name}",
                                        daemon=True)

    # -- public --------------------------------------------------------------
    @property
    def state(self) -> ProcessState:
        with self._lock:
            return self._state

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.{max(self._run, 1)}.log"

    @property
    def previous_log_path(self) -> Path | None:
        """The log of the last run that ended (while backing off: the run that
        just ended), or None if no run has ended yet."""
        ended = self._run - 1 if self.state.state == "running" else self._run
        if ended < 1 or (self.restart_count == 0 and self.state.state == "running"):
            return None
        return self.log_dir / f"{self.name}.{ended}.log"

    def start(self) -> None:
        self._thread.start()

    def kill_and_restart(self) -> None:
        """Stop the current run (as a failed liveness probe does); the restart
        policy then applies."""
        self._kill_requested.set()
        self._terminate(grace=1.0)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the process group, SIGKILL after ``grace`` s; no restart.
        Returns when the process is gone."""
        self._stop.set()
        self._terminate(grace)
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(grace + 5)

    # -- internals -----------------------------------------------------------
    def _set(self, state: ProcessState) -> None:
        with self._lock:
            self._state = state
        if self.on_change is not None:
            try:
                self.on_change(self)
            except Exception:  # noqa: BLE001 - a callback must not kill supervision
                import traceback
                traceback.print_exc()

    def _terminate(self, grace: float) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        self._run += 1
        try:
            with open(self.log_path, "ab") as log:
                return subprocess.Popen(
                    self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                    preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        except OSError as exc:
            with open(self.log_path, "ab") as log:
                log.write(f"failed to start {self.argv!r}: {exc}\n".encode())
            return None

    def _supervise(self) -> None:
        delay = self.backoff
        while not self._stop.is_set():
            self._kill_requested.clear()
            proc = self._spawn()
            started = time.time()
            if proc is None:
                code = 128
            else:
                self._proc = proc
                if self._stop.is_set():  # stop() raced with the spawn
                    self._terminate(1.0)
                self._set(ProcessState(state="running", started_at=started, pid=proc.pid))
                code = proc.wait()
            finished = time.time()
            reason = "Completed" if code == 0 else "Error"
            if self._kill_requested.is_set() and not self._stop.is_set():
                reason = "Error"
            ended = ProcessState(state="terminated", reason=reason, exit_code=code,
                                 started_at=started, finished_at=finished)
            if self._stop.is_set():
                self._set(ended)
                return
            again = (self.restart_policy == "Always"
                     or (self.restart_policy == "OnFailure" and code != 0))
            if not again:
                self._set(ended)
                return
            self.last_state = ended
            self.restart_count += 1
            if finished - started > 10 * self.max_backoff:
                delay = self.backoff
            self._set(ProcessState(state="waiting", reason="CrashLoopBackOff", exit_code=code))
            if self._stop.wait(delay):
                self._set(ended)
                return
            delay = min(delay * 2, self.max_backoff)
