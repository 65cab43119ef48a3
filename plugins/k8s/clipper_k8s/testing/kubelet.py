"""The kubelet of the one node: each pod's containers run as local processes
(:mod:`clipper_core.testing.process_pods`), with image pulls from the test's
image table, readiness and liveness probes, restarts and the events a real
kubelet writes; :class:`Kubelet` keeps one :class:`PodRunner` per pod."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Protocol

from clipper_core.testing.process_pods import ContainerProcess, ImageTable, allocate_port

from .pod_env import ServiceResolver, container_command
from .pod_status import ContainerRun, container_status, pod_status
from .probes import check_probe, probe_due
from .resources import NODE_NAME, ApiError, Obj
from .store import Store

__all__ = ["Cluster", "Kubelet", "PodRunner"]


class Cluster(ServiceResolver, Protocol):
    """What a pod's runner uses of the fake cluster (:class:`FakeKubernetes`)."""

    store: Store
    images: ImageTable
    #: pod logs go under ``workdir/pods/<namespace>/<pod>``
    workdir: Path
    #: the API server's port (``KUBERNETES_SERVICE_PORT``)
    port: int
    probe_interval: float
    time_scale: float
    restart_backoff: float

    def record_event(self, involved: Obj, reason: str, message: str, type_: str = "Normal",
                     component: str = "kubelet") -> None:
        """Write (or bump the count of) an Event about ``involved``."""
        ...


class PodRunner:
    """Runs one pod's containers and keeps its status in the store."""

    def __init__(self, kube: Cluster, pod: Obj) -> None:
        self.kube = kube
        self.ns = pod["metadata"]["namespace"]
        self.name = pod["metadata"]["name"]
        self.uid = pod["metadata"]["uid"]
        self.pod = pod
        self.containers = [ContainerRun(c["name"], c.get("image", ""), c)
                           for c in pod["spec"]["containers"]]
        for run in self.containers:
            for p in run.spec.get("ports") or []:
                run.ports[int(p["containerPort"])] = allocate_port()
                if p.get("name"):
                    run.port_names[p["name"]] = int(p["containerPort"])
        self.created = time.time()
        #: when the pod last became Ready (None while not ready)
        self.ready_since: float | None = None
        self._stop = threading.Event()
        self._changed = threading.Event()
        self.stopped = threading.Event()
        self.log_dir = kube.workdir / "pods" / self.ns / self.name
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"pod-{self.name}")

    # -- what the network sees -----------------------------------------------
    @property
    def ready(self) -> bool:
        return all(c.ready for c in self.containers) and not self._stop.is_set()

    def local_port(self, target: int | str) -> int | None:
        """The local port serving container port ``target`` (number or name)."""
        for run in self.containers:
            port = run.port_names.get(target) if isinstance(target, str) else target
            if port is not None and port in run.ports:
                return run.ports[port]
        return None

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._changed.set()

    def _event(self, reason: str, message: str, type_: str = "Normal",
               field_path: str | None = None) -> None:
        self.kube.record_event(
            {"kind": "Pod", "namespace": self.ns, "name": self.name, "uid": self.uid,
             "apiVersion": "v1", **({"fieldPath": field_path} if field_path else {})},
            reason, message, type_, component="kubelet")

    def _run(self) -> None:
        try:
            self._event("Scheduled", f"Successfully assigned {self.ns}/{self.name} to "
                        f"{NODE_NAME}", field_path=None)
            self.kube.store.update("pods", self.ns, self.name, self._bind)
            for run in self.containers:
                self._start_container(run)
            self._write_status()
            while not self._stop.is_set():
                for run in self.containers:
                    if run.process is None:
                        self._start_container(run)
                    else:
                        self._probe(run)
                self._write_status()
                self._changed.wait(self.kube.probe_interval)
                self._changed.clear()
        finally:
            self._shutdown()

    def _bind(self, pod: Obj) -> Obj:
        pod["spec"]["nodeName"] = NODE_NAME
        return pod

    def _start_container(self, run: ContainerRun) -> None:
        image_spec = self.kube.images.resolve(run.image)
        if image_spec is None:
            if run.pull_error is None:
                self._event("Pulling", f'Pulling image "{run.image}"',
                            field_path=f"spec.containers{{{run.name}}}")
                run.pull_error = "ErrImagePull"
                self._event("Failed", f'Failed to pull image "{run.image}": rpc error: code = '
                            f'NotFound desc = failed to pull and unpack image "{run.image}": '
                            "not found (fake API server: image not in the test's image table)",
                            "Warning", field_path=f"spec.containers{{{run.name}}}")
            elif run.pull_error == "ErrImagePull" and time.time() - self.created > 1.0:
                run.pull_error = "ImagePullBackOff"
                self._event("BackOff", f'Back-off pulling image "{run.image}"', "Warning",
                            field_path=f"spec.containers{{{run.name}}}")
            return
        run.pull_error = None
        fp = f"spec.containers{{{run.name}}}"
        self._event("Pulled", f'Container image "{run.image}" already present on machine',
                    field_path=fp)
        try:
            argv, env, cwd = container_command(run.spec, run.ports, image_spec, pod=self.pod,
                                               store=self.kube.store, api_port=self.kube.port,
                                               dns=self.kube)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            run.start_error = str(exc)
            self._event("Failed", f"Error: {exc}", "Warning", field_path=fp)
            run.process = ContainerProcess(run.name, ["false"], {}, self.log_dir, restart="Never")
            return
        self._event("Created", f"Created container {run.name}", field_path=fp)
        restart = self.pod["spec"].get("restartPolicy", "Always")
        run.process = ContainerProcess(
            run.name, argv, env, self.log_dir, cwd=cwd, restart=restart,
            backoff=self.kube.restart_backoff, max_backoff=self.kube.restart_backoff * 8,
            on_change=lambda proc, r=run: self._on_process_change(r, proc))
        run.process.start()
        self._event("Started", f"Started container {run.name}", field_path=fp)

    def _on_process_change(self, run: ContainerRun, proc: ContainerProcess) -> None:
        state = proc.state
        if state.state != "running":
            run.ready = False
        if state.state == "waiting" and state.reason == "CrashLoopBackOff":
            self._event("BackOff", f"Back-off restarting failed container {run.name} in pod "
                        f"{self.name}_{self.ns}({self.uid})", "Warning",
                        field_path=f"spec.containers{{{run.name}}}")
        self._changed.set()

    def _probe(self, run: ContainerRun) -> None:
        """Run the container's due probes: readiness sets ``ready``, enough
        liveness failures restart the container."""
        proc = run.process
        assert proc is not None
        state = proc.state
        if state.state != "running" or state.started_at is None:
            run.ready = False
            run.readiness_failures = 0
            run.next_probe.clear()
            return
        age = time.time() - state.started_at
        scale = self.kube.time_scale
        fp = f"spec.containers{{{run.name}}}"
        readiness = run.spec.get("readinessProbe")
        if readiness is None:
            run.ready = True
        elif age < readiness.get("initialDelaySeconds", 0) * scale:
            run.ready = False
        elif probe_due(run, "readiness", readiness, interval=self.kube.probe_interval,
                           time_scale=scale):
            ok, message = check_probe(readiness, self.local_port)
            if ok:
                run.readiness_failures = 0
                run.ready = True
            else:
                run.readiness_failures += 1
                # a ready container turns unready after failureThreshold failures
                if not run.ready or \
                        run.readiness_failures >= readiness.get("failureThreshold", 3):
                    run.ready = False
                if run.been_ready or run.readiness_failures % 10 == 5:
                    self._event("Unhealthy", f"Readiness probe failed: {message}", "Warning",
                                field_path=fp)
        run.been_ready = run.been_ready or run.ready
        liveness = run.spec.get("livenessProbe")
        # Liveness counts only once the container was ready (a startup probe in
        # effect): compressed time would otherwise kill slow starters.
        if liveness is not None and run.been_ready and \
                age >= liveness.get("initialDelaySeconds", 0) * scale and \
                probe_due(run, "liveness", liveness, interval=self.kube.probe_interval,
                          time_scale=scale):
            alive, message = check_probe(liveness, self.local_port)
            if alive:
                run.liveness_failures = 0
            else:
                run.liveness_failures += 1
                self._event("Unhealthy", f"Liveness probe failed: {message}", "Warning",
                            field_path=fp)
                if run.liveness_failures >= liveness.get("failureThreshold", 3):
                    run.liveness_failures = 0
                    run.been_ready = False
                    self._event("Killing", f"Container {run.name} failed liveness probe, "
                                "will be restarted", field_path=fp)
                    threading.Thread(target=proc.kill_and_restart, daemon=True).start()

    # -- status ----------------------------------------------------------------
    def status(self) -> Obj:
        """The pod's ``status`` now (also tracks when it became Ready)."""
        entries = [container_status(run, self.uid) for run in self.containers]
        ready = self.ready and bool(entries) and all(running for _, running in entries)
        if ready and self.ready_since is None:
            self.ready_since = time.time()
        elif not ready:
            self.ready_since = None
        return pod_status(self.containers, [cs for cs, _ in entries], ready=ready,
                          created=self.created, ready_since=self.ready_since)

    def _write_status(self) -> None:
        if self._stop.is_set():
            return
        status = self.status()
        try:
            self.kube.store.update("pods", self.ns, self.name,
                                   lambda pod: None if pod.get("status") == status
                                   or "deletionTimestamp" in pod["metadata"]
                                   else {**pod, "status": status})
        except ApiError:
            pass

    def _shutdown(self) -> None:
        pod = self.kube.store.get("pods", self.ns, self.name) or self.pod
        grace = pod["metadata"].get("deletionGracePeriodSeconds",
                                    pod["spec"].get("terminationGracePeriodSeconds", 30))
        grace = max(0.2, min(float(grace) * self.kube.time_scale, 5.0)) if grace else 0.05
        for run in self.containers:
            if run.process is not None:
                if run.process.state.state == "running":
                    self._event("Killing", f"Stopping container {run.name}",
                                field_path=f"spec.containers{{{run.name}}}")
                run.process.stop(grace)
        self.stopped.set()


class Kubelet:
    """One :class:`PodRunner` per pod object; a pod marked for deletion is
    removed from the store once its containers stopped."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        #: (namespace, pod name) -> its runner
        self.runners: dict[tuple[str, str], PodRunner] = {}
        self.lock = threading.RLock()

    def runner(self, ns: str, name: str) -> PodRunner | None:
        with self.lock:
            return self.runners.get((ns, name))

    def runners_in(self, ns: str) -> list[PodRunner]:
        """The runners of namespace ``ns``, by pod name."""
        with self.lock:
            return [r for (n, _), r in sorted(self.runners.items()) if n == ns]

    def pod_pids(self) -> list[int]:
        """Pids of every running container process."""
        with self.lock:
            runners = list(self.runners.values())
        return [run.process.pid for r in runners for run in r.containers
                if run.process is not None and run.process.pid is not None]

    def sync(self) -> None:
        """Start runners for new pods, stop those of deleted or replaced pods."""
        store = self.cluster.store
        pods = {(p["metadata"]["namespace"], p["metadata"]["name"]): p
                for p in store.list("pods")}
        with self.lock:
            for key, pod in pods.items():
                runner = self.runners.get(key)
                if runner is not None and runner.uid != pod["metadata"]["uid"]:
                    runner.stop()
                    runner = None
                if runner is None and "deletionTimestamp" not in pod["metadata"]:
                    runner = PodRunner(self.cluster, pod)
                    self.runners[key] = runner
                    runner.start()
                elif runner is not None and "deletionTimestamp" in pod["metadata"]:
                    runner.stop()
                    if runner.stopped.is_set():
                        del self.runners[key]
                        store.remove("pods", key[0], key[1])
            for key in [k for k in self.runners if k not in pods]:
                self.runners.pop(key).stop()
        for key, pod in pods.items():
            if key not in self.runners and "deletionTimestamp" in pod["metadata"]:
                store.remove("pods", key[0], key[1])

    def stop_all(self) -> None:
        """Stop every pod's containers; returns when they are gone (15 s at most each)."""
        with self.lock:
            runners = list(self.runners.values())
            self.runners.clear()
        for r in runners:
            r.stop()
        for r in runners:
            r.stopped.wait(15)
