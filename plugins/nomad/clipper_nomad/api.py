"""Talking to Nomad through python-nomad: calls, errors, jobs, allocations, services."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from clipper_core.errors import ContainerError, NotFoundError

from . import jobs
from .jobs import JobSettings
from .jobspec import validate_job

log = logging.getLogger("clipper.nomad")


class NomadApi:
    """Nomad API access of the manager (python-nomad client built on first use).

    Subclasses set the attributes below before using it.
    """

    cluster_name: str
    nomad_address: str
    region: str | None
    namespace: str | None
    request_timeout_s: float
    settings: JobSettings
    _token: str | None
    _client: Any
    _requesters: dict[str, Any]
    _progress: Callable[[str], None] | None

    @property
    def client(self) -> Any:
        """The python-nomad client, built on first use."""
        if self._client is None:
            import nomad

            self._client = nomad.Nomad(address=self.nomad_address, token=self._token,
                                       region=self.region, namespace=self.namespace,
                                       timeout=self.request_timeout_s)
        return self._client

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one python-nomad call; its exceptions become clipper-core errors."""
        import nomad.api.exceptions as nx

        try:
            return fn(*args, **kwargs)
        except nx.URLNotFoundNomadException as exc:
            raise NotFoundError(f"Nomad: {what}: not found ({_body(exc)})",
                                what=what) from None
        except nx.URLNotAuthorizedNomadException as exc:
            raise ContainerError(f"Nomad refused {what}: permission denied ({_body(exc)}); "
                                 "check the ACL token", what=what) from None
        except nx.BadRequestNomadException as exc:
            raise ContainerError(f"Nomad rejected {what}: {_body(exc)}", what=what) from None
        except (nx.BaseNomadException, nx.TimeoutNomadException) as exc:
            resp = getattr(exc, "nomad_resp", None)
            if resp is not None and hasattr(resp, "status_code"):
                raise ContainerError(f"Nomad failed {what}: HTTP {resp.status_code}: "
                                     f"{_body(exc)}", what=what) from None
            raise ContainerError(f"Cannot reach Nomad at {self.nomad_address} ({what}): "
                                 f"{resp or exc}", what=what) from None

    def _requester(self, endpoint: str) -> Any:
        """A python-nomad requester for ``/v1/<endpoint>``, sharing the client's
        settings (address, token, region, namespace, TLS) and HTTP session."""
        from nomad.api.base import Requester

        if endpoint not in self._requesters:
            settings = dict(self.client.requester_settings)
            settings["session"] = self.client.job.session
            requester = Requester(**settings)
            requester.ENDPOINT = endpoint
            self._requesters[endpoint] = requester
        return self._requesters[endpoint]

    def _request(self, endpoint: str, *path: str, method: str = "get",
                 params: dict[str, Any] | None = None, json: Any = None) -> Any:
        """Paths python-nomad has no method for (``/v1/service``, ``/v1/job/x/scale``),
        sent with python-nomad's own requester and settings."""
        requester = self._requester(endpoint)
        params = dict(params or {})
        if self.namespace and endpoint == "service":
            params.setdefault("namespace", self.namespace)
        return self._call(f"{method.upper()} /v1/{endpoint}/{'/'.join(path)}",
                          requester.request, *path, method=method, params=params,
                          json=json).json()

    def _register(self, job: dict[str, Any]) -> None:
        validate_job(job)
        self._call(f"register job {job['ID']}", self.client.jobs.register_job, {"Job": job})

    def _get_job(self, job_id: str) -> dict[str, Any] | None:
        try:
            return self._call(f"get job {job_id}", self.client.job.get_job, job_id)
        except NotFoundError:
            return None

    def _allocations(self, job_id: str) -> list[dict[str, Any]]:
        try:
            return self._call(f"list allocations of {job_id}",
                              self.client.job.get_allocations, job_id)
        except NotFoundError:
            return []

    def _watch_allocations(self, job_id: str, index: int,
                           wait_s: float) -> tuple[list[dict[str, Any]], int]:
        """A blocking query: the job's allocations once Nomad's index passes
        ``index`` (or after ``wait_s``), and the new index."""
        requester = self._requester("job")
        wait = max(0.05, wait_s)
        try:
            resp = self._call(f"watch allocations of {job_id}", requester.request, job_id,
                              "allocations", method="get",
                              params={"index": index, "wait": f"{int(wait * 1000)}ms"},
                              timeout=self.request_timeout_s + wait)
        except NotFoundError:
            return [], index
        try:
            new_index = int(resp.headers.get("X-Nomad-Index", index))
        except ValueError:
            new_index = index
        return resp.json(), new_index

    def _cluster_jobs(self, role: str | None = None) -> list[dict[str, Any]]:
        """Live (not stopped) jobs of this cluster, optionally of one role."""
        stubs = self._call("list jobs", self.client.jobs.get_jobs,
                           prefix=f"clipper-{self.cluster_name}-", meta=True)
        out = []
        for stub in stubs:
            meta = stub.get("Meta")
            if meta is None:  # Nomad before 1.6 has no Meta in job stubs
                job = self._get_job(stub["ID"])
                meta = (job or {}).get("Meta") or {}
            if meta.get(jobs.META_CLUSTER) != self.cluster_name or stub.get("Stop"):
                continue
            if role is None or meta.get(jobs.META_ROLE) == role:
                out.append({**stub, "Meta": meta})
        return out

    def _service_addrs(self, service: str) -> list[str]:
        entries = self._request("service", service)
        return [f"{e['Address']}:{e['Port']}" for e in entries or ()]

    def _say(self, message: str) -> None:
        log.info("%s", message)
        if self._progress is not None:
            self._progress(message)


def _body(exc: Exception) -> str:
    resp = getattr(exc, "nomad_resp", None)
    text = getattr(resp, "text", None)
    return (text if isinstance(text, str) else str(resp or exc)).strip()
