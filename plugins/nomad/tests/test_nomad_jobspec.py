"""Nomad job specification rules, and every job the manager builds obeys them."""

from __future__ import annotations

import copy
import itertools

import pytest
from clipper_nomad import jobs
from clipper_nomad.jobs import JobSettings
from clipper_nomad.jobspec import SECOND, job_problems, validate_job
from clipper_nomad.manager import NomadContainerManager

from clipper_core.errors import ValidationError
from clipper_core.models import InputType


def all_jobs(s: JobSettings) -> list[dict]:
    """Every kind of job the builders make for settings ``s``."""
    return [
        jobs.redis_job(s),
        jobs.mgmt_job(s, "clipper/management_frontend:1", "redis://r:6379/0?prefix=c"),
        jobs.query_job(s, "clipper/query_frontend:1", "redis://r:6379/0?prefix=c", 1024, 3),
        jobs.model_job(s, "sum-model", "1", InputType.DOUBLES, "/models/sum/1"
                       if s.driver == "raw_exec" else "reg/sum:1", 2),
        jobs.model_job(s, "m", "v2", InputType.STRINGS, "reg/m:2", 0),
    ]


SETTINGS = [
    JobSettings(cluster_name="c1", driver=driver, discovery=discovery,
                static_host="10.0.0.5" if discovery == "static" else None,
                region="eu", namespace="ml", datacenters=("dc1", "dc2"),
                admin_token="secret")
    for driver, discovery in itertools.product(jobs.DRIVERS, jobs.DISCOVERY_MODES)
]


@pytest.mark.parametrize("settings", SETTINGS,
                         ids=[f"{s.driver}-{s.discovery}" for s in SETTINGS])
def test_every_built_job_is_valid(settings: JobSettings) -> None:
    for job in all_jobs(settings):
        assert job_problems(job) == [], job["ID"]
        assert job["Meta"][jobs.META_CLUSTER] == "c1"
        assert job["Namespace"] == "ml" and job["Region"] == "eu"
        group = job["TaskGroups"][0]
        assert group["RestartPolicy"]["Mode"] == "fail"
        for net in group.get("Networks") or ():
            key = "DynamicPorts" if settings.discovery == "nomad" else "ReservedPorts"
            assert net[key], job["ID"]


def test_jobs_the_manager_submits_are_valid(tmp_path) -> None:
    """The manager's own model job path (name checks, image, counts) ends in valid jobs."""
    for driver, discovery in itertools.product(jobs.DRIVERS, jobs.DISCOVERY_MODES):
        m = NomadContainerManager("c2", nomad_address="http://127.0.0.1:9", driver=driver,
                                  discovery=discovery, static_host="h1",
                                  build_dir=str(tmp_path))
        validate_job(m._model_job("a", 3, "ints", "img:1", 4))


def test_frontends_and_health_checks() -> None:
    s = JobSettings(cluster_name="c1")
    query = jobs.query_job(s, "q:1", "redis://r:1/0?prefix=c1", 99, 2)
    group = query["TaskGroups"][0]
    assert group["Count"] == 2
    checks = {svc["Name"]: svc["Checks"][0] for svc in group["Services"]}
    assert checks["clipper-c1-query"]["Type"] == "http"
    assert checks["clipper-c1-query"]["Path"] == "/healthz"
    assert checks["clipper-c1-query-rpc"]["Type"] == "tcp"
    task = group["Tasks"][0]
    assert task["Config"]["entrypoint"] == ["python3", "-m", "clipper_frontends.query"]
    assert "--cache-size" in task["Config"]["args"]
    mgmt = jobs.mgmt_job(s, "m:1", "redis://r:1/0?prefix=c1")
    svc = mgmt["TaskGroups"][0]["Services"][0]
    assert svc["Checks"][0]["Path"] == "/admin/ping"
    assert mgmt["TaskGroups"][0]["Tasks"][0]["Env"]["PYTHONUNBUFFERED"] == "1"
    assert "Header" not in svc["Checks"][0]
    secured = jobs.mgmt_job(JobSettings(cluster_name="c1", admin_token="tok"), "m:1", "r")
    group = secured["TaskGroups"][0]
    assert group["Tasks"][0]["Env"]["CLIPPER_ADMIN_TOKEN"] == "tok"
    assert group["Services"][0]["Checks"][0]["Header"] == {"Authorization": ["Bearer tok"]}


def test_model_replicas_find_frontends_per_discovery_mode() -> None:
    nomad = jobs.model_job(JobSettings(cluster_name="c1"), "m", "1", InputType.DOUBLES, "i", 1)
    task = nomad["TaskGroups"][0]["Tasks"][0]
    (tmpl,) = task["Templates"]
    assert tmpl["Envvars"] is True
    assert 'nomadService "clipper-c1-query-rpc"' in tmpl["EmbeddedTmpl"]
    consul = jobs.model_job(JobSettings(cluster_name="c1", discovery="consul"), "m", "1",
                            InputType.DOUBLES, "i", 1)
    env = consul["TaskGroups"][0]["Tasks"][0]["Env"]
    assert env["CLIPPER_IP"] == "clipper-c1-query-rpc.service.consul"
    assert env["CLIPPER_PORT"] == "7000"
    static = jobs.model_job(JobSettings(cluster_name="c1", discovery="static",
                                        static_host="10.1.2.3", rpc_port=7100),
                            "m", "1", InputType.DOUBLES, "i", 1)
    assert static["TaskGroups"][0]["Tasks"][0]["Env"]["CLIPPER_FRONTENDS"] == "10.1.2.3:7100"


def valid_job() -> dict:
    return jobs.query_job(JobSettings(cluster_name="c1"), "q:1", "redis://r:1/0", 1, 1)


def broken(change) -> list[str]:
    job = copy.deepcopy(valid_job())
    change(job)
    return job_problems(job)


@pytest.mark.parametrize("change, expected", [
    (lambda j: j.pop("Datacenters"), "'Datacenters' is a required property"),
    (lambda j: j.update(Datacenters=[]), "Job.Datacenters"),
    (lambda j: j.update(Type="daemon"), "Job.Type"),
    (lambda j: j.update(ID="has space"), "Job.ID"),
    (lambda j: j.update(Priority=101), "Job.Priority"),
    (lambda j: j["TaskGroups"][0].update(Count="2"), "Job.TaskGroups[0].Count: '2' is not of type"),
    (lambda j: j["TaskGroups"][0].update(Tasks=[]), "Job.TaskGroups[0].Tasks"),
    (lambda j: j["TaskGroups"][0]["Tasks"][0].pop("Driver"), "'Driver' is a required property"),
    (lambda j: j["TaskGroups"][0]["Tasks"][0].pop("Resources"), "'Resources' is a required"),
    (lambda j: j["TaskGroups"][0]["Tasks"][0]["Resources"].update(MemoryMB=5), "MemoryMB"),
    (lambda j: j["TaskGroups"][0]["Tasks"][0].update(Service=[]), "'Service' was unexpected"),
    (lambda j: j["TaskGroups"][0]["Services"][0]["Checks"][0].pop("Path"),
     "'Path' is a required property"),
    (lambda j: j["TaskGroups"][0]["Services"][0]["Checks"][0].update(Interval=SECOND // 10),
     "Interval"),
    (lambda j: j["TaskGroups"][0]["Services"][0].update(Name="bad_name"), "Services[0].Name"),
    (lambda j: j["TaskGroups"][0]["Services"][0].update(PortLabel="web"),
     "port label 'web' is not defined"),
    (lambda j: j["TaskGroups"][0]["Tasks"][0]["Config"].update(ports=["web"]),
     "Config.ports: port label 'web'"),
    (lambda j: j["TaskGroups"][0]["Tasks"][0]["Config"].pop("image"), "needs a string 'image'"),
    (lambda j: j["TaskGroups"][0]["Tasks"][0]["Config"]["args"].append("${NOMAD_PORT_web}"),
     "undefined port label 'web'"),
    (lambda j: j["TaskGroups"][0]["RestartPolicy"].update(Mode="sometimes"), "Mode"),
    (lambda j: j["TaskGroups"][0]["RestartPolicy"].update(
        Attempts=10, Delay=60 * SECOND, Interval=60 * SECOND),
     "can't restart the task 10 times in an interval of 60s with a delay of 60s"),
    (lambda j: j["TaskGroups"][0]["Update"].update(MinHealthyTime=200 * SECOND),
     "Minimum healthy time must be less than healthy deadline"),
    (lambda j: j["TaskGroups"][0]["Update"].update(ProgressDeadline=SECOND),
     "Healthy deadline must be less than progress deadline"),
    (lambda j: j["TaskGroups"].append(copy.deepcopy(j["TaskGroups"][0])),
     "duplicate task group name 'query'"),
    (lambda j: j["TaskGroups"][0]["Tasks"][0].update(Templates=[{"DestPath": "x"}]),
     "one of EmbeddedTmpl or SourcePath"),
])
def test_invalid_jobs_are_refused_with_the_reason(change, expected: str) -> None:
    problems = broken(change)
    assert problems, "the broken job was accepted"
    assert any(expected in p for p in problems), problems


def test_validate_job_raises_validation_error_naming_the_job() -> None:
    job = valid_job()
    job["TaskGroups"][0]["Count"] = -1
    with pytest.raises(ValidationError, match=r"Invalid Nomad job 'clipper-c1-query'.*Count"):
        validate_job(job)
    validate_job(valid_job())
