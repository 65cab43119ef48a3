"""What the cluster's pods report: replica states and logs.
"""

from __future__ import annotations

from pathlib import Path

from clipper_core.models import ReplicaStatus

from . import names
from .objects import KubeObjects


class PodReports(KubeObjects):
    """Replica states and logs of the manager."""

    def list_replicas(self) -> list[ReplicaStatus]:
        """Every model pod of the cluster: its phase/readiness and restart count."""
        out = []
        for pod in self._pods(**{names.ROLE: names.ROLE_MODEL}):
            labels = pod.metadata.labels or {}
            statuses = (pod.status.container_statuses or []) if pod.status else []
            restarts = sum(cs.restart_count or 0 for cs in statuses)
            if pod.metadata.deletion_timestamp is not None:
                state = "terminating"
            elif statuses and all(cs.ready for cs in statuses):
                state = "running"
            elif any(cs.state and cs.state.waiting and
                     cs.state.waiting.reason == "CrashLoopBackOff" for cs in statuses):
                state = "restarting"
            elif pod.status and pod.status.phase in ("Failed", "Succeeded"):
                state = "exited"
            else:
                state = "pending"
            out.append(ReplicaStatus(model_name=labels.get(names.MODEL_NAME, ""),
                                     model_version=labels.get(names.MODEL_VERSION, ""),
                                     replica_id=pod.metadata.name, status=state,
                                     restarts=restarts, handle=pod.metadata.name))
        return sorted(out, key=lambda r: (r.model_name, r.model_version, r.replica_id))

    def get_logs(self, logging_dir: str) -> list[str]:
        """One file per pod (per container when a pod has several) of the cluster."""
        from kubernetes.client.exceptions import ApiException

        directory = Path(logging_dir)
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for pod in self._pods():
            containers = [c.name for c in pod.spec.containers]
            for container in containers:
                suffix = "" if len(containers) == 1 else f"-{container}"
                path = directory / f"{pod.metadata.name}{suffix}.log"
                try:
                    text = self.core.read_namespaced_pod_log(pod.metadata.name, self.namespace,
                                                             container=container)
                except ApiException as exc:
                    from .api import status_message

                    text = f"(no log: {status_message(exc)})\n"
                path.write_text(text if isinstance(text, str) else str(text))
                paths.append(str(path))
        return paths
