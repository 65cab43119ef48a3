"""A pod's containers as the kubelet tracks them, and the ``status`` the API
shows for them: phase, conditions and container statuses (state, last
state, restart count)."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from clipper_core.testing.process_pods import ContainerProcess

from .resources import NODE_INTERNAL_IP, Obj, now_iso

__all__ = ["ContainerRun", "container_status", "pod_status"]


@attrs.define
class ContainerRun:
    """One container of a pod: its process (once started), its local ports,
    readiness and probe bookkeeping, and why it cannot start."""

    name: str
    image: str
    spec: Obj
    process: ContainerProcess | None = None
    #: declared containerPort -> local port
    ports: dict[int, int] = attrs.Factory(dict)
    #: port name -> containerPort
    port_names: dict[str, int] = attrs.Factory(dict)
    ready: bool = False
    been_ready: bool = False
    liveness_failures: int = 0
    readiness_failures: int = 0
    #: probe kind -> monotonic time it is next due
    next_probe: dict[str, float] = attrs.Factory(dict)
    pull_error: str | None = None
    start_error: str | None = None


def container_status(run: ContainerRun, pod_uid: str) -> tuple[Obj, bool]:
    """The ``containerStatuses`` entry of ``run`` and whether it is running."""
    cs: Obj = {"name": run.name, "image": run.image, "imageID": "", "ready": run.ready,
               "restartCount": 0, "started": False}
    proc = run.process
    running = False
    if run.pull_error:
        cs["state"] = {"waiting": {"reason": run.pull_error, "message":
                                   f'Back-off pulling image "{run.image}"'}}
    elif run.start_error:
        cs["state"] = {"waiting": {"reason": "CreateContainerError",
                                   "message": run.start_error}}
    elif proc is None:
        cs["state"] = {"waiting": {"reason": "ContainerCreating"}}
    else:
        st = proc.state
        cs["restartCount"] = proc.restart_count
        cs["imageID"] = f"fake://{run.image}"
        cs["containerID"] = f"fake://{pod_uid}-{run.name}"
        if st.state == "running":
            running = True
            cs["started"] = True
            cs["state"] = {"running": {"startedAt": now_iso(st.started_at)}}
        elif st.state == "terminated":
            cs["state"] = {"terminated": {"exitCode": st.exit_code or 0,
                                          "reason": st.reason,
                                          "startedAt": now_iso(st.started_at),
                                          "finishedAt": now_iso(st.finished_at)}}
        else:
            cs["state"] = {"waiting": {"reason": st.reason}}
        last = proc.last_state
        if last is not None and proc.restart_count:
            cs["lastState"] = {"terminated": {
                "exitCode": last.exit_code or 0, "reason": last.reason,
                "startedAt": now_iso(last.started_at),
                "finishedAt": now_iso(last.finished_at)}}
    return cs, running


def pod_status(runs: Sequence[ContainerRun], statuses: list[Obj], *, ready: bool,
               created: float, ready_since: float | None) -> Obj:
    """A pod's ``status`` from its containers' runs and statuses; ``ready`` is
    whether every container is running and ready, since ``ready_since``."""
    created_at = now_iso(created)
    started_any = any(r.process is not None for r in runs)
    phase = "Running" if started_any and not any(r.pull_error for r in runs) \
        else "Pending"
    if not started_any:
        phase = "Pending"

    def cond(type_: str, ok: bool) -> Obj:
        since = created_at
        if type_ in ("Ready", "ContainersReady") and ready_since is not None:
            since = now_iso(ready_since)
        return {"type": type_, "status": "True" if ok else "False",
                "lastTransitionTime": since, "lastProbeTime": None,
                **({} if ok else {"reason": "ContainersNotReady"}
                   if type_ in ("Ready", "ContainersReady") else {})}

    return {"phase": phase, "hostIP": NODE_INTERNAL_IP, "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}], "startTime": created_at, "qosClass": "Burstable",
            "conditions": [cond("PodScheduled", True), cond("Initialized", True),
                           cond("ContainersReady", ready), cond("Ready", ready)],
            "containerStatuses": statuses}
