"""The fake Kubernetes API server itself: REST semantics, watch, validation,
controllers and pods as local processes.  The manager's tests trust these."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from clipper_core.testing.container_manager import wait_for

from .conftest import FakeKubernetes, ImageSpec

SERVER = '''\
import argparse, http.server, os, sys
p = argparse.ArgumentParser(); p.add_argument("--port", type=int); p.add_argument("--peer")
a = p.parse_args()
print("pod", os.environ.get("POD_NAME"), "peer", a.peer, "port", a.port,
      "env", os.environ.get("HTTP_PORT"), flush=True)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{os.environ.get('POD_NAME')} {self.path}".encode()
        self.send_response(200 if os.path.exists(os.environ["HEALTH_FILE"]) or
                           self.path != "/healthz" else 500)
        self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", a.port), H).serve_forever()
'''


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeKubernetes]:
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    kube = FakeKubernetes({"web:1": ImageSpec(entrypoint=("python", str(script)))},
                          workdir=tmp_path / "kube").start()
    try:
        yield kube
    finally:
        kube.stop()
    assert kube.pod_pids() == []


@pytest.fixture
def health(tmp_path: Path) -> Path:
    path = tmp_path / "healthy"
    path.touch()
    return path


def web_deployment(name: str, health: Path, replicas: int = 2, peer: str = "none",
                   liveness: bool = False) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "web", "image": "web:1", "args": ["--port", "8080", "--peer", peer],
        "ports": [{"name": "http", "containerPort": 8080}],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "HEALTH_FILE", "value": str(health)},
                {"name": "HTTP_PORT", "value": "8080"}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}}}
    if liveness:
        container["livenessProbe"] = {"httpGet": {"path": "/healthz", "port": 8080},
                                      "failureThreshold": 2}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [container]}}}}


def apis(kube: FakeKubernetes) -> tuple[Any, Any]:
    api = kube.api_client()
    return kubernetes.client.CoreV1Api(api), kubernetes.client.AppsV1Api(api)


def ready_pods(core: Any, selector: str) -> list[Any]:
    return [p for p in core.list_namespaced_pod("default", label_selector=selector).items
            if p.metadata.deletion_timestamp is None and p.status.container_statuses
            and all(c.ready for c in p.status.container_statuses)]


def test_status_codes_and_status_bodies(fake: FakeKubernetes, health: Path) -> None:
    core, apps = apis(fake)
    url = f"{fake.url}/apis/apps/v1/namespaces/default/deployments"
    missing = httpx.get(f"{url}/nope")
    assert missing.status_code == 404
    assert missing.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Failure", "reason": "NotFound", "code": 404,
                              "message": 'deployments.apps "nope" not found',
                              "details": {"name": "nope", "group": "apps",
                                          "kind": "deployments"}}
    body = web_deployment("web", health, replicas=0)
    assert httpx.post(url, json=body).status_code == 201
    again = httpx.post(url, json=body)
    assert (again.status_code, again.json()["reason"]) == (409, "AlreadyExists")
    # unknown field (strict schema), bad name, selector not matching the template
    unknown = web_deployment("other", health)
    unknown["spec"]["template"]["spec"]["containers"][0]["imagex"] = "x"
    bad_name = web_deployment("Bad_Name", health)
    mismatch = web_deployment("mismatch", health)
    mismatch["spec"]["selector"]["matchLabels"]["app"] = "something-else"
    for wrong, field in ((unknown, "imagex"), (bad_name, "metadata.name"),
                         (mismatch, "selector")):
        resp = httpx.post(url, json=wrong)
        assert resp.status_code == 422, resp.text
        assert resp.json()["reason"] == "Invalid" and field in resp.json()["message"]
    # a missing namespace
    resp = httpx.post(f"{fake.url}/apis/apps/v1/namespaces/ghost/deployments", json=body)
    assert (resp.status_code, resp.json()["message"]) == (404, 'namespaces "ghost" not found')
    # optimistic concurrency: a stale resourceVersion is a 409 Conflict
    current = apps.read_namespaced_deployment("web", "default")
    stale = current.metadata.resource_version
    apps.patch_namespaced_deployment("web", "default", {"metadata": {"labels": {"x": "1"}}},
                                     _content_type="application/merge-patch+json")
    replace = {**body, "metadata": {**body["metadata"], "resourceVersion": stale}}
    with pytest.raises(ApiException) as info:
        apps.replace_namespaced_deployment("web", "default", replace)
    assert info.value.status == 409
    # every received body is recorded (the tests validate them as sent)
    assert any(path.endswith("/deployments") and b["metadata"]["name"] == "Bad_Name"
               for verb, path, b in fake.received if verb == "POST")


def test_watch_streams_changes_from_a_resource_version(fake: FakeKubernetes,
                                                       health: Path) -> None:
    core, _ = apis(fake)
    listed = core.list_namespaced_service("default")
    rv = listed.metadata.resource_version
    svc = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "s1", "labels": {"team": "a"}},
           "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}}
    core.create_namespaced_service("default", svc)
    core.create_namespaced_service("default", {**svc, "metadata": {"name": "s2",
                                                                   "labels": {"team": "b"}}})
    core.patch_namespaced_service("s1", "default", {"metadata": {"labels": {"v": "2"}}},
                                  _content_type="application/merge-patch+json")
    core.delete_namespaced_service("s1", "default")
    seen = []
    for event in kubernetes.watch.Watch().stream(core.list_namespaced_service, "default",
                                                 resource_version=rv, label_selector="team=a",
                                                 timeout_seconds=1):
        seen.append((event["type"], event["object"].metadata.name,
                     int(event["object"].metadata.resource_version)))
    assert [(t, n) for t, n, _ in seen] == [("ADDED", "s1"), ("MODIFIED", "s1"),
                                           ("DELETED", "s1")]
    assert [v for *_, v in seen] == sorted(v for *_, v in seen) and seen[0][2] > int(rv)
    assert core.read_namespaced_service("s2", "default").spec.cluster_ip.startswith("10.96.")


def test_deployment_pods_are_processes(fake: FakeKubernetes, health: Path) -> None:
    """Pods run with their env and distinct ports; readiness comes from the
    probe; scale; logs; a killed container restarts (restartCount); a failing
    liveness probe restarts it too."""
    core, apps = apis(fake)
    apps.create_namespaced_deployment("default", web_deployment("web", health, liveness=True))
    pods = wait_for(lambda: len(ready_pods(core, "app=web")) == 2 and ready_pods(core, "app=web"),
                    20, "two ready pods")
    ports = set()
    for pod in pods:
        port = fake.runners[("default", pod.metadata.name)].local_port("http")
        ports.add(port)
        assert httpx.get(f"http://127.0.0.1:{port}/x").text == f"{pod.metadata.name} /x"
        log = core.read_namespaced_pod_log(pod.metadata.name, "default")
        assert f"pod {pod.metadata.name} peer none port {port} env {port}" in log
    assert len(ports) == 2
    dep = wait_for(lambda: (d := apps.read_namespaced_deployment("web", "default")).status
                   .available_replicas == 2 and d, 10, "the deployment status")
    assert dep.status.observed_generation == dep.metadata.generation
    scale = apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 1}},
                                                   _content_type="application/merge-patch+json")
    assert scale.spec.replicas == 1
    wait_for(lambda: len(core.list_namespaced_pod("default").items) == 1, 20, "scale to 1")
    (pod,) = core.list_namespaced_pod("default").items
    name = pod.metadata.name
    os.kill(fake.runners[("default", name)].containers[0].process.pid, signal.SIGKILL)
    wait_for(lambda: core.read_namespaced_pod(name, "default").status.container_statuses[0]
             .restart_count == 1, 20, "a restart")
    status = core.read_namespaced_pod(name, "default").status.container_statuses[0]
    assert status.last_state.terminated.exit_code == -9
    previous = core.read_namespaced_pod_log(name, "default", previous=True)
    assert f"pod {name}" in previous
    # liveness: unhealthy -> not ready, killed and restarted by the kubelet
    health.unlink()
    wait_for(lambda: core.read_namespaced_pod(name, "default").status.container_statuses[0]
             .restart_count >= 2, 30, "a liveness restart")
    events = core.list_namespaced_event("default",
                                        field_selector=f"involvedObject.name={name}").items
    reasons = {e.reason for e in events}
    assert {"Scheduled", "Pulled", "Created", "Started", "Unhealthy", "Killing"} <= reasons
    health.touch()
    apps.delete_namespaced_deployment("web", "default", propagation_policy="Foreground")
    wait_for(lambda: not core.list_namespaced_pod("default").items
             and not apps.list_namespaced_deployment("default").items, 20, "cascading delete")
    assert fake.pod_pids() == []


def test_unknown_image_never_pulls(fake: FakeKubernetes, health: Path) -> None:
    core, apps = apis(fake)
    body = web_deployment("nopull", health, replicas=1)
    body["spec"]["template"]["spec"]["containers"][0]["image"] = "nowhere/none:1"
    apps.create_namespaced_deployment("default", body)

    def waiting() -> str | None:
        pods = core.list_namespaced_pod("default", label_selector="app=nopull").items
        statuses = pods[0].status.container_statuses if pods else None
        return statuses[0].state.waiting.reason if statuses else None
    wait_for(lambda: waiting() == "ImagePullBackOff", 10, "ImagePullBackOff")
    (pod,) = core.list_namespaced_pod("default").items
    assert pod.status.phase == "Pending"
    messages = [e.message for e in core.list_namespaced_event("default").items
                if e.reason == "Failed"]
    assert any('Failed to pull image "nowhere/none:1"' in m for m in messages)
    assert apps.read_namespaced_deployment("nopull", "default").status.ready_replicas is None


def test_services_dns_forwarding_and_api_proxy(fake: FakeKubernetes, health: Path) -> None:
    """``svc:port`` in a pod's args becomes the service's local forwarder; the
    API server's service proxy and NodePorts reach the ready pods."""
    core, apps = apis(fake)
    core.create_namespaced_service("default", {
        "metadata": {"name": "backend"},
        "spec": {"type": "NodePort", "selector": {"app": "backend"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
    apps.create_namespaced_deployment("default", web_deployment("backend", health, 2))
    # The client starts once the backend is ready, as a pod would find the
    # Service's endpoints filled by then.
    wait_for(lambda: len(ready_pods(core, "app=backend")) == 2, 20, "ready backend pods")
    apps.create_namespaced_deployment("default", web_deployment(
        "client", health, 1, peer="backend.default.svc.cluster.local:80"))
    wait_for(lambda: len(ready_pods(core, "app=client")) == 1, 20, "ready client pod")
    (client,) = ready_pods(core, "app=client")
    log = core.read_namespaced_pod_log(client.metadata.name, "default")
    peer = log.split(" peer ")[1].split()[0]
    assert peer.startswith("127.0.0.1:") and peer != "127.0.0.1:80"
    answers = {httpx.get(f"http://{peer}/").text.split()[0] for _ in range(6)}
    assert answers <= {p.metadata.name for p in ready_pods(core, "app=backend")}
    assert len(answers) == 2, "the forwarder balances over both pods"
    proxied = httpx.get(f"{fake.url}/api/v1/namespaces/default/services/backend:80/proxy/hi")
    assert proxied.status_code == 200 and proxied.text.endswith(" /hi")
    node_port = core.read_namespaced_service("backend", "default").spec.ports[0].node_port
    assert 30000 <= node_port <= 32767
    assert httpx.get(f"http://127.0.0.2:{node_port}/n").text.endswith(" /n")


def test_namespace_deletion_cascades(fake: FakeKubernetes, health: Path) -> None:
    core, apps = apis(fake)
    core.create_namespace({"metadata": {"name": "scratch"}})
    apps.create_namespaced_deployment("scratch", web_deployment("web", health, 1))
    wait_for(lambda: fake.pod_pids(), 20, "a pod process")
    core.delete_namespace("scratch")
    with pytest.raises(ApiException) as info:
        apps.create_namespaced_deployment("scratch", web_deployment("late", health, 1))
    assert info.value.status in (403, 404)
    wait_for(lambda: not [n for n in core.list_namespace().items
                          if n.metadata.name == "scratch"], 20, "the namespace to go")
    assert fake.pod_pids() == []
