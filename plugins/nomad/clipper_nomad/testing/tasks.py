"""One task of an allocation run as a local process, as the Nomad client
does: its directory, templates rendered (and re-rendered while it runs: a
change restarts it, ``change_mode`` ``restart``, outside the restart
policy's budget), the driver's process, and the restart policy (attempts in
interval, delay, mode fail/delay) with Nomad's task events."""

from __future__ import annotations

import subprocess
import time
from typing import Any

from clipper_core.testing.process_pods import ImageTable, die_with_parent
from clipper_nomad.jobspec import SECOND

from .allocations import Allocation, DriverError, TaskRun
from .drivers import kill, task_command, task_env
from .state import ClusterState
from .templates import interpolate, render

__all__ = ["TaskRunner", "join_tasks"]

#: Nomad's default restart policy of a service job.
DEFAULT_RESTART = {"Attempts": 2, "Interval": 30 * 60 * SECOND, "Delay": 15 * SECOND,
                   "Mode": "fail"}


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ")


class TaskRunner:
    """Runs task ``run`` of ``alloc`` until the allocation stops or the restart
    policy gives up; :meth:`run` is a thread's target."""

    def __init__(self, state: ClusterState, alloc: Allocation, run: TaskRun, *,
                 images: ImageTable, region: str, datacenter: str) -> None:
        self.state = state
        self.alloc = alloc
        self.task_run = run
        self.task: dict[str, Any] = run.spec
        self.images = images
        self.region = region
        self.datacenter = datacenter
        self.policy = dict(DEFAULT_RESTART)
        self.policy.update(alloc.group_spec.get("RestartPolicy") or {})
        self.policy.update(self.task.get("RestartPolicy") or {})
        #: monotonic times of the restarts the policy counts
        self.restarts_in_window: list[float] = []
        self.watched = any((t.get("ChangeMode") or "restart") == "restart"
                           for t in self.task.get("Templates") or ())

    def run(self) -> None:
        alloc, run, cond = self.alloc, self.task_run, self.state.cond
        for sub in ("local", "secrets", "tmp"):
            (alloc.dir / self.task["Name"] / sub).mkdir(parents=True, exist_ok=True)
        run.event("Task Setup", "Building Task Directory")
        while not alloc.stop_event.is_set():
            env = task_env(alloc, self.task, region=self.region, datacenter=self.datacenter)
            base_env = dict(env)
            launched = self._launch(env)
            if launched is not None:
                outcome = self._supervise(*launched, base_env)
                if outcome == "rerendered":
                    continue
                if outcome == "stopped":
                    break
            delay = self._restart_delay()
            if delay is None:
                return
            with cond:
                run.event("Restarting", f"Task restarting in {delay:g}s",
                          restart_reason="Restart within policy")
                run.state = "pending"
                run.running_since = None
                self.state.update_client_status(alloc)
            if alloc.stop_event.wait(delay):
                break
            self.restarts_in_window.append(time.monotonic())
            with cond:
                run.restarts += 1
                run.last_restart = _stamp()
        with cond:
            run.state = "dead"
            run.running_since = None
            run.finished_at = _stamp()
            self.state.update_client_status(alloc)

    def _launch(self, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], list[str]] | None:
        """Render the templates and start the process (its rendered texts with
        it); a failure is recorded as a ``Driver Failure`` event and gives None."""
        name = self.task["Name"]
        logs = self.alloc.dir / "alloc" / "logs"
        try:
            texts = self._render_templates(env)
            argv = task_command(self.task, env, self.images)
            with open(logs / f"{name}.stdout.0", "ab") as out, \
                    open(logs / f"{name}.stderr.0", "ab") as err:
                proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err,
                                        stdin=subprocess.DEVNULL,
                                        cwd=str(self.alloc.dir / name),
                                        start_new_session=True,
                                        preexec_fn=die_with_parent)
        except DriverError as exc:
            with self.state.cond:
                self.task_run.event("Driver Failure", str(exc), fails_task=False)
            return None
        except Exception as exc:  # noqa: BLE001 - reported as the task's event
            with self.state.cond:
                self.task_run.event("Driver Failure", f"failed to launch command with executor: "
                                f"{type(exc).__name__}: {exc}")
            return None
        return proc, texts

    def _supervise(self, proc: subprocess.Popen[bytes], texts: list[str],
                   base_env: dict[str, str]) -> str:
        """Mark the task running and wait for its end: "rerendered" (a template
        changed: restart at once), "stopped" (the allocation stops) or "exited"."""
        alloc, run, cond = self.alloc, self.task_run, self.state.cond
        kill_timeout = (self.task.get("KillTimeout") or 5 * SECOND) / SECOND
        with cond:
            run.proc = proc
            run.state = "running"
            run.running_since = time.monotonic()
            run.started_at = run.started_at or _stamp()
            run.event("Started", "Task started by client")
            self.state.update_client_status(alloc)
        rerendered = self._wait(proc, texts, base_env, kill_timeout)
        if rerendered and not alloc.stop_event.is_set():
            with cond:
                run.event("Restarting", "Task restarting in 0s")
                run.restarts += 1
                run.last_restart = _stamp()
                run.state = "pending"
                self.state.update_client_status(alloc)
            return "rerendered"
        if alloc.stop_event.is_set():
            with cond:
                run.event("Killing", "Sent interrupt. Waiting 5s before force killing")
            kill(proc, kill_timeout)
            return "stopped"
        exit_code = proc.returncode
        with cond:
            run.event("Terminated", f"Exit Code: {exit_code}",
                      exit_code=exit_code if exit_code >= 0 else 0,
                      signal=-exit_code if exit_code < 0 else 0)
        return "exited"

    def _wait(self, proc: subprocess.Popen[bytes], texts: list[str], base_env: dict[str, str],
              kill_timeout: float) -> bool:
        """Wait while the process runs and the allocation is wanted; re-render
        the watched templates every 0.5 s.  True if a change killed the process."""
        next_check = time.monotonic() + 0.5
        while proc.poll() is None and not self.alloc.stop_event.wait(0.05):
            if self.watched and time.monotonic() >= next_check:
                next_check = time.monotonic() + 0.5
                try:
                    changed = self._rendered(base_env) != texts
                except DriverError:
                    changed = False
                if changed:
                    with self.state.cond:
                        self.task_run.event("Restart Signaled", "Template with change_mode "
                                        "restart re-rendered")
                    kill(proc, kill_timeout)
                    return True
        return False

    def _restart_delay(self) -> float | None:
        """Seconds until the next start under the restart policy, or None when
        it gives up (the task is then dead and failed)."""
        policy = self.policy
        now = time.monotonic()
        interval = policy["Interval"] / SECOND
        self.restarts_in_window = [t for t in self.restarts_in_window if now - t < interval]
        attempts = policy["Attempts"]
        if attempts == -1 or len(self.restarts_in_window) < attempts:
            return float(policy["Delay"] / SECOND)
        if policy["Mode"] == "delay":
            delay = max(policy["Delay"] / SECOND,
                        interval - (now - self.restarts_in_window[0]))
            self.restarts_in_window = []
            return float(delay)
        with self.state.cond:
            self.task_run.event("Not Restarting",
                            f"Exceeded allowed attempts {attempts} in interval "
                            f"{interval:g}s and mode is \"fail\"", fails_task=True)
            self.task_run.state, self.task_run.failed = "dead", True
            self.task_run.finished_at = _stamp()
            self.state.update_client_status(self.alloc)
        return None

    # -- templates -----------------------------------------------------------
    def _rendered(self, env: dict[str, str]) -> list[str]:
        """Each template of the task rendered against the current services."""
        task_dir = self.alloc.dir / self.task["Name"]
        out = []
        for tmpl in self.task.get("Templates") or ():
            text = tmpl.get("EmbeddedTmpl")
            if text is None:
                text = (task_dir / tmpl["SourcePath"]).read_text()
            with self.state.cond:
                out.append(render(text, env, self.state.services_view(self.alloc.namespace)))
        return out

    def _render_templates(self, env: dict[str, str]) -> list[str]:
        """Render, write and (``Envvars``) export every template; return the texts."""
        task_dir = self.alloc.dir / self.task["Name"]
        texts = self._rendered(env)
        for tmpl, rendered in zip(self.task.get("Templates") or (), texts, strict=True):
            dest = task_dir / interpolate(tmpl["DestPath"], env)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(rendered)
            if tmpl.get("Envvars"):
                for line in rendered.splitlines():
                    if "=" in line and not line.lstrip().startswith("#"):
                        key, _, value = line.partition("=")
                        env[key.strip()] = value.strip()
        return texts


def join_tasks(alloc: Allocation, timeout: float = 15.0) -> None:
    """Wait until every task of a stopping allocation is dead."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(t.state == "dead" for t in alloc.tasks.values()):
            return
        time.sleep(0.05)
