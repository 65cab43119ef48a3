"""Waiting for Deployments to become ready (or to go away), and saying why not.
"""

from __future__ import annotations

import time
from typing import Any

from clipper_core.errors import ClipperException, ContainerError

from . import names
from .objects import KubeObjects


class DeploymentWaits(KubeObjects):
    """Deployment waits of the manager."""

    @staticmethod
    def _is_ready(dep: Any) -> bool:
        want = dep.spec.replicas if dep.spec.replicas is not None else 1
        status = dep.status
        if status is None:
            return want == 0
        observed = (status.observed_generation or 0) >= (dep.metadata.generation or 0)
        return observed and (status.available_replicas or 0) >= want and \
            (status.updated_replicas or 0) >= want and (status.replicas or 0) == want

    def _wait_ready(self, deployments: list[str], timeout: float,
                    error: type[ClipperException]) -> None:
        """Watch the cluster's Deployments until each named one has all its
        replicas ready (and no extra ones); else raise ``error`` naming the
        first that did not, with its pods' states and events."""
        import kubernetes

        pending = set(deployments)
        if not pending:
            return
        self.progress("waiting for " + ", ".join(sorted(pending)))
        deadline = time.monotonic() + timeout
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            watch = kubernetes.watch.Watch()
            with self._errors("Watching Deployments", error):
                for event in watch.stream(self.apps.list_namespaced_deployment, self.namespace,
                                          label_selector=self._selector(),
                                          timeout_seconds=max(1, min(int(left), 30)),
                                          _request_timeout=max(1, min(int(left), 30)) + 10):
                    dep = event["object"]
                    name = dep.metadata.name
                    if name not in pending:
                        continue
                    if event["type"] == "DELETED":
                        watch.stop()
                        raise error(f"Deployment {name!r} was deleted while waiting for it",
                                    deployment=name)
                    if self._is_ready(dep):
                        pending.discard(name)
                        self.progress(f"{name} is ready ({dep.spec.replicas} replicas)")
                        if not pending:
                            watch.stop()
                            break
                    if time.monotonic() > deadline:
                        watch.stop()
                        break
        if pending:
            name = sorted(pending)[0]
            raise error(f"Deployment {name!r} in namespace {self.namespace!r} did not become "
                        f"ready within {timeout:.0f}s: {self._diagnose(name)}",
                        deployment=name, namespace=self.namespace)

    def _diagnose(self, deployment: str) -> str:
        """Why a Deployment is not ready: its status, its pods' states, recent events."""
        parts: list[str] = []
        try:
            dep = self.apps.read_namespaced_deployment(deployment, self.namespace)
            status = dep.status
            parts.append(f"{(status.ready_replicas if status else 0) or 0}/"
                         f"{dep.spec.replicas} replicas ready")
            labels = dep.spec.selector.match_labels or {}
            pods = self.core.list_namespaced_pod(
                self.namespace, label_selector=names.selector(labels)).items
        except Exception as exc:  # noqa: BLE001 - diagnosis is best effort
            return f"(could not read it: {exc})"
        involved = [deployment]
        for pod in pods:
            involved.append(pod.metadata.name)
            states = []
            for cs in (pod.status.container_statuses or []) if pod.status else []:
                state = cs.state
                if state and state.waiting:
                    states.append(f"{cs.name} waiting: {state.waiting.reason}"
                                  + (f" ({state.waiting.message})" if state.waiting.message
                                     else ""))
                elif state and state.terminated:
                    states.append(f"{cs.name} terminated: {state.terminated.reason} "
                                  f"(exit code {state.terminated.exit_code})")
                else:
                    states.append(f"{cs.name} {'ready' if cs.ready else 'running, not ready'}")
                if cs.restart_count:
                    states[-1] += f", {cs.restart_count} restarts"
            phase = pod.status.phase if pod.status else "Unknown"
            parts.append(f"pod {pod.metadata.name} {phase}: " + ("; ".join(states) or "-"))
        events = []
        try:
            for name in involved:
                found = self.core.list_namespaced_event(
                    self.namespace, field_selector=f"involvedObject.name={name}").items
                events += found
        except Exception:  # noqa: BLE001 - diagnosis is best effort
            pass
        events.sort(key=lambda e: (e.type != "Warning", str(e.last_timestamp or "")))
        if events:
            lines = [f"{e.type} {e.reason} on {e.involved_object.name}: {e.message}"
                     for e in events[:6]]
            parts.append("events: " + " | ".join(lines))
        return "; ".join(parts)

    def _wait_gone(self, timeout: float, **labels: str) -> None:
        """Until no Deployment and no pod with these labels is left."""
        deadline = time.monotonic() + timeout
        while True:
            with self._errors("Listing Deployments and pods"):
                deps = self.apps.list_namespaced_deployment(
                    self.namespace, label_selector=self._selector(**labels)).items
                pods = self.core.list_namespaced_pod(
                    self.namespace, label_selector=self._selector(**labels)).items
            if not deps and not pods:
                return
            if time.monotonic() > deadline:
                left = [d.metadata.name for d in deps] + [p.metadata.name for p in pods]
                raise ContainerError(f"Still terminating after {timeout:.0f}s: "
                                     + ", ".join(left))
            time.sleep(0.2)
