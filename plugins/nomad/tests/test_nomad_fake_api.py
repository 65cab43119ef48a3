"""The fake Nomad API itself, driven through python-nomad like the manager does."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx
import nomad
import nomad.api.exceptions as nx
import pytest
from nomad_helpers import FakeNomad, ImageSpec

from clipper_core.testing.container_manager import wait_for

SECOND = 1_000_000_000

#: A task that serves /healthz on its "http" port and prints what it was given.
SERVER = '''\
import http.server, json, os, sys
print(json.dumps({k: v for k, v in os.environ.items()
                  if k.startswith(("NOMAD_", "APP_", "CLIPPER_"))}), flush=True)
print("argv", sys.argv[1:], flush=True)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer((os.environ["NOMAD_IP_http"], int(os.environ["NOMAD_PORT_http"])),
                       H).serve_forever()
'''


def job(job_id: str, task: dict, *, count: int = 1, ports=("http",), services=None,
        restart=None, update=True, min_healthy: int = 0) -> dict:
    group = {"Name": "web", "Count": count, "Tasks": [task],
             "RestartPolicy": restart or {"Attempts": 2, "Interval": 60 * SECOND,
                                          "Delay": SECOND // 10, "Mode": "fail"}}
    if ports:
        group["Networks"] = [{"Mode": "host",
                              "DynamicPorts": [{"Label": p} for p in ports]}]
    if services:
        group["Services"] = services
    if update:
        group["Update"] = {"HealthCheck": "checks", "MinHealthyTime": min_healthy,
                           "HealthyDeadline": 30 * SECOND}
    return {"ID": job_id, "Name": job_id, "Type": "service", "Datacenters": ["dc1"],
            "TaskGroups": [group]}


def raw_task(args: list[str], env: dict | None = None, name: str = "server") -> dict:
    return {"Name": name, "Driver": "raw_exec",
            "Config": {"command": "python", "args": args}, "Env": env or {},
            "Resources": {"CPU": 100, "MemoryMB": 64}}


def web_service(name: str = "web") -> dict:
    return {"Name": name, "PortLabel": "http", "Provider": "nomad",
            "Checks": [{"Name": "alive", "Type": "http", "Path": "/healthz",
                        "Interval": SECOND, "Timeout": SECOND}]}


@pytest.fixture
def server_py(tmp_path: Path) -> str:
    path = tmp_path / "server.py"
    path.write_text(SERVER)
    return str(path)


def client(fake: FakeNomad, **kw) -> nomad.Nomad:
    return nomad.Nomad(address=fake.address, timeout=10, **kw)


def first_line(n: nomad.Nomad, alloc_id: str, task: str) -> str:
    """Wait for a task's first stdout line (the process prints it when it starts)."""
    def line():
        out = n.client.stream_logs.stream(alloc_id, task, "stdout", plain=True)
        return out if "\n" in out else None
    return wait_for(line, 20, f"output of {task}")


def running(n: nomad.Nomad, job_id: str, count: int, healthy: bool = False) -> list[dict]:
    def ready():
        allocs = [a for a in n.job.get_allocations(job_id) if a["DesiredStatus"] == "run"]
        ok = [a for a in allocs if a["ClientStatus"] == "running"
              and (not healthy or (a["DeploymentStatus"] or {}).get("Healthy"))]
        return ok if len(ok) == count == len(allocs) else None
    return wait_for(ready, 20, f"{count} allocations of {job_id}")


def test_allocations_run_with_their_own_ports_env_services_and_logs(fake_nomad, server_py):
    n = client(fake_nomad)
    spec = job("web", raw_task([server_py, "--port", "${NOMAD_PORT_http}"],
                               {"APP_ADDR": "${NOMAD_ADDR_http}"}),
               count=2, services=[web_service()])
    reply = n.jobs.register_job({"Job": spec})
    assert reply["EvalID"] and reply["JobModifyIndex"] > 0
    allocs = running(n, "web", 2, healthy=True)
    assert n.job.get_job("web")["Status"] == "running"
    ports = set()
    for stub in allocs:
        alloc = n.allocation.get_allocation(stub["ID"])
        (port,) = alloc["AllocatedResources"]["Shared"]["Ports"]
        ports.add(port["Value"])
        assert alloc["Job"]["ID"] == "web"
        out = wait_for(lambda alloc_id=stub["ID"]: (lambda text: text if "argv" in text else None)(
            n.client.stream_logs.stream(alloc_id, "server", "stdout", plain=True)),
            20, "the task's output")
        env = json.loads(out.splitlines()[0])
        assert env["NOMAD_PORT_http"] == str(port["Value"])
        assert env["APP_ADDR"] == f"127.0.0.1:{port['Value']}"
        assert env["NOMAD_ALLOC_ID"] == stub["ID"]
        assert f"'--port', '{port['Value']}'" in out
        assert httpx.get(f"http://127.0.0.1:{port['Value']}/healthz").status_code == 200
    assert len(ports) == 2
    resp = httpx.get(f"{fake_nomad.address}/v1/service/web")
    assert int(resp.headers["X-Nomad-Index"]) > 0
    assert sorted(e["Port"] for e in resp.json()) == sorted(ports)
    assert {e["AllocID"] for e in resp.json()} == {a["ID"] for a in allocs}


def test_invalid_job_is_400_with_nomads_error_text(fake_nomad):
    n = client(fake_nomad)
    spec = job("bad", raw_task(["-c", "pass"]))
    del spec["TaskGroups"][0]["Tasks"][0]["Resources"]
    spec["Datacenters"] = []
    with pytest.raises(nx.BadRequestNomadException) as info:
        n.jobs.register_job({"Job": spec})
    text = info.value.nomad_resp.text
    assert text.startswith("2 errors occurred:")
    assert "'Resources' is a required property" in text and "Job.Datacenters" in text
    assert n.jobs.get_jobs() == []
    with pytest.raises(nx.URLNotFoundNomadException):
        n.job.get_job("bad")


def test_acl_token_is_required_when_configured(tmp_path):
    with FakeNomad(tmp_path / "n", token="s3cret") as fake:
        assert client(fake).status.leader.get_leader() == "127.0.0.1:4647"
        with pytest.raises(nx.URLNotAuthorizedNomadException):
            client(fake).jobs.get_jobs()
        with pytest.raises(nx.URLNotAuthorizedNomadException):
            client(fake, token="wrong").jobs.get_jobs()
        assert client(fake, token="s3cret").jobs.get_jobs() == []


def test_scale_down_stops_the_highest_index_and_purge_forgets(fake_nomad, server_py):
    n = client(fake_nomad)
    n.jobs.register_job({"Job": job("web", raw_task([server_py]), count=3)})
    running(n, "web", 3)
    n.job.request("web", "scale", method="post",
                  json={"Count": 1, "Target": {"Group": "web"}})
    (left,) = running(n, "web", 1)
    assert left["Name"] == "web.web[0]"
    stopped = [a for a in n.job.get_allocations("web") if a["DesiredStatus"] == "stop"]
    assert len(stopped) == 2
    wait_for(lambda: all(a["ClientStatus"] == "complete"
                         for a in n.job.get_allocations("web") if a["DesiredStatus"] == "stop"),
             10, "stopped allocations to complete")
    assert n.job.get_job("web")["TaskGroups"][0]["Count"] == 1
    assert n.job.get_job("web")["Version"] == 1
    with pytest.raises(nx.BadRequestNomadException):
        n.job.request("web", "scale", method="post", json={"Count": 1, "Target": {"Group": "x"}})
    n.job.deregister_job("web", purge=True)
    with pytest.raises(nx.URLNotFoundNomadException):
        n.job.get_job("web")
    assert n.job.get_allocations("web") == []
    assert fake_nomad.pids() == []


def test_restart_policy_then_failure_with_task_events(fake_nomad):
    n = client(fake_nomad)
    crash = raw_task(["-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"],
                     name="crash")
    n.jobs.register_job({"Job": job("crash", crash, ports=(), min_healthy=20 * SECOND)})
    alloc = wait_for(lambda: next((a for a in n.job.get_allocations("crash")
                                   if a["ClientStatus"] == "failed"), None), 20, "failure")
    state = alloc["TaskStates"]["crash"]
    assert state["State"] == "dead" and state["Failed"] and state["Restarts"] == 2
    types = [e["Type"] for e in state["Events"]]
    assert types.count("Terminated") == 3 and types.count("Restarting") == 2
    assert types[-1] == "Not Restarting"
    assert any(e["DisplayMessage"] == "Exit Code: 3" for e in state["Events"])
    assert (alloc["DeploymentStatus"] or {}).get("Healthy") is False
    err = n.client.stream_logs.stream(alloc["ID"], "crash", "stderr", plain=True)
    assert err.count("boom") == 3


def test_killed_task_is_restarted_and_counted(fake_nomad, server_py):
    n = client(fake_nomad)
    n.jobs.register_job({"Job": job("web", raw_task([server_py]))})
    (alloc,) = running(n, "web", 1)
    fake_nomad.kill_task(alloc["ID"], "server")
    wait_for(lambda: n.allocation.get_allocation(alloc["ID"])["TaskStates"]["server"]
             ["Restarts"] == 1, 10, "a restart")
    running(n, "web", 1)


def test_docker_driver_maps_images_and_model_dir(tmp_path, server_py):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    images = {"example/web:1": ImageSpec(entrypoint=("python", server_py)),
              "example/model:1": ImageSpec(entrypoint=("python", server_py),
                                           model_dir=str(model_dir))}
    with FakeNomad(tmp_path / "n", images=images) as fake:
        n = client(fake)
        task = {"Name": "server", "Driver": "docker",
                "Config": {"image": "example/model:1", "ports": ["http"]},
                "Env": {"CLIPPER_MODEL_PATH": "/model"},
                "Resources": {"CPU": 100, "MemoryMB": 64}}
        n.jobs.register_job({"Job": job("model", task)})
        (alloc,) = running(n, "model", 1)
        out = first_line(n, alloc["ID"], "server")
        assert json.loads(out.splitlines()[0])["CLIPPER_MODEL_PATH"] == str(model_dir)
        missing = dict(task, Config={"image": "example/nope:1"})
        n.jobs.register_job({"Job": job("nope", missing, ports=())})
        failed = wait_for(lambda: next((a for a in n.job.get_allocations("nope")
                                        if a["ClientStatus"] == "failed"), None), 20, "failure")
        events = failed["TaskStates"]["server"]["Events"]
        assert any(e["Type"] == "Driver Failure" and "Failed to pull `example/nope:1`"
                   in e["DisplayMessage"] for e in events)


def test_templates_render_nomad_services_into_env(fake_nomad, server_py):
    n = client(fake_nomad)
    n.jobs.register_job({"Job": job("web", raw_task([server_py]), count=2,
                                    services=[web_service("front")])})
    allocs = running(n, "web", 2)
    addrs = sorted(f"127.0.0.1:{e['Port']}"
                   for e in httpx.get(f"{fake_nomad.address}/v1/service/front").json())
    assert len(addrs) == 2
    reader = raw_task([server_py], name="reader")
    reader["Templates"] = [{
        "EmbeddedTmpl": 'CLIPPER_FRONTENDS={{ range $i, $s := nomadService "front" }}'
                        '{{ if ne $i 0 }},{{ end }}{{ $s.Address }}:{{ $s.Port }}{{ end }}\n'
                        'APP_DC={{ env "NOMAD_DC" }}\n',
        "DestPath": "local/front.env", "Envvars": True, "ChangeMode": "restart"}]
    n.jobs.register_job({"Job": job("reader", reader)})
    (alloc,) = running(n, "reader", 1)
    env = json.loads(first_line(n, alloc["ID"], "reader").splitlines()[0])
    assert sorted(env["CLIPPER_FRONTENDS"].split(",")) == addrs
    assert env["APP_DC"] == "dc1"
    assert allocs


def test_blocking_query_waits_for_a_change(fake_nomad, server_py):
    index = int(httpx.get(f"{fake_nomad.address}/v1/jobs").headers["X-Nomad-Index"])
    start = time.monotonic()
    resp = httpx.get(f"{fake_nomad.address}/v1/jobs", params={"index": index, "wait": "1s"})
    assert time.monotonic() - start >= 0.9 and resp.json() == []
    client(fake_nomad).jobs.register_job({"Job": job("web", raw_task([server_py]))})
    resp = httpx.get(f"{fake_nomad.address}/v1/jobs", params={"index": index, "wait": "5s"})
    assert [j["ID"] for j in resp.json()] == ["web"]
    assert int(resp.headers["X-Nomad-Index"]) > index


def test_agent_self_and_unknown_paths(fake_nomad):
    n = client(fake_nomad)
    assert n.agent.get_agent()["config"]["Region"] == "global"
    assert httpx.get(f"{fake_nomad.address}/v1/nothing").status_code == 404
    assert sys.executable  # the fake runs "python" tasks with this interpreter
