"""The dashboard: one page of the management frontend for a person.

``GET /dashboard`` is a static page (``index.html`` beside this module: HTML,
CSS and inline JavaScript, charts drawn on ``<canvas>`` by its own code, no
build step, nothing fetched from elsewhere).  It holds no data: the page asks
for the admin token once, keeps it in ``sessionStorage`` and polls
``GET /dashboard/state`` with ``Authorization: Bearer <token>`` every second.

``/dashboard/state`` answers what the page shows: applications, model
versions and replicas (from the admin service, as ``/admin/*`` does) and the
JSON ``/metrics`` of every query frontend the management frontend was told
about (``--query-url``, env ``CLIPPER_QUERY_URLS``).  The management frontend
knows the query frontends only through the store, which holds no address, so
it fetches their metrics itself and the browser needs to reach nothing but
the management frontend.  The page computes throughput and the default rate
from the request counters between two polls.

Secure by default: the state needs the admin token, and when the management
frontend has no token the dashboard is refused (403), never open.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

import httpx
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from clipper_core.admin import wire
from clipper_core.admin.service import AdminService
from clipper_core.errors import AuthenticationError, ClipperException

from ..http import error_response, json_response

#: Env of the query frontends' base URLs (comma-separated), when no --query-url.
QUERY_URLS_ENV = "CLIPPER_QUERY_URLS"
#: Env of the bearer token the query frontends want on ``/metrics``, if any.
QUERY_TOKEN_ENV = "CLIPPER_QUERY_TOKEN"
#: Seconds to wait for one query frontend's ``/metrics``.
METRICS_TIMEOUT_S = 2.0

NO_TOKEN = ("The dashboard needs an admin token: start the management frontend with "
            "CLIPPER_ADMIN_TOKEN set (every manager of clipper-core sets one)")


def page() -> bytes:
    """The dashboard's HTML."""
    return resources.files(__package__).joinpath("index.html").read_bytes()


def parse_urls(values: Sequence[str]) -> list[str]:
    """Base URLs from ``--query-url`` values (each may be comma-separated);
    ``host:port`` gets ``http://``; trailing slashes go."""
    urls: list[str] = []
    for value in values:
        for part in value.split(","):
            url = part.strip().rstrip("/")
            if url:
                urls.append(url if "://" in url else f"http://{url}")
    return urls


async def frontend_metrics(client: httpx.AsyncClient, url: str,
                           token: str | None) -> dict[str, Any]:
    """One query frontend's ``/metrics``, or why it could not be read."""
    headers = {"accept": "application/json"}  # the JSON metrics, not another exposition
    if token:
        headers["authorization"] = f"Bearer {token}"
    try:
        resp = await client.get(f"{url}/metrics", headers=headers, timeout=METRICS_TIMEOUT_S)
        resp.raise_for_status()
        return {"url": url, "ok": True, "metrics": resp.json()}
    except (httpx.HTTPError, ValueError) as exc:
        return {"url": url, "ok": False, "error": f"{type(exc).__name__}: {exc}"}


def configuration(service: AdminService) -> dict[str, Any]:
    """Applications, model versions and replicas, as ``/admin/*`` renders them."""
    def ask(request: wire.Request[Any]) -> Any:
        return wire.render(service.handle(request))

    return {"applications": ask(wire.GetAllApplications(verbose=True)),
            "models": ask(wire.GetAllModels(verbose=True)),
            "replicas": ask(wire.GetAllContainers(verbose=True))}


def routes(service: Callable[[], AdminService], token: str | None,
           query_urls: Sequence[str], query_token: str | None = None) -> list[Route]:
    """``GET /dashboard`` and ``GET /dashboard/state``.

    :param service: the admin service of the management frontend (called in
        a worker thread; it may open the store).
    :param token: the admin token; None refuses the state (403).
    :param query_urls: base URLs of the query frontends whose metrics to show.
    :param query_token: bearer token for the query frontends' ``/metrics``.
    """
    expected = f"Bearer {token}".encode() if token else None
    html = page()
    client = httpx.AsyncClient()

    async def dashboard(request: Request) -> Response:
        return Response(html, media_type="text/html; charset=utf-8",
                        headers={"cache-control": "no-store",
                                 "content-security-policy": "default-src 'self'; "
                                 "script-src 'unsafe-inline'; style-src 'unsafe-inline'"})

    async def state(request: Request) -> Response:
        if expected is None:
            return json_response({"error": "forbidden", "cause": NO_TOKEN}, status=403)
        given = request.headers.get("authorization", "").encode("latin-1", "replace")
        if not hmac.compare_digest(given, expected):
            return error_response(AuthenticationError(
                "Missing or wrong bearer token: send 'Authorization: Bearer <token>'"))
        try:
            config, fronts = await asyncio.gather(
                run_in_threadpool(lambda: configuration(service())),
                asyncio.gather(*(frontend_metrics(client, u, query_token)
                                 for u in query_urls)))
        except ClipperException as exc:
            return error_response(exc)
        return json_response({"time": time.time(), **config, "frontends": list(fronts)})

    return [Route("/dashboard", dashboard, methods=["GET"]),
            Route("/dashboard/state", state, methods=["GET"])]


__all__ = ["QUERY_TOKEN_ENV", "QUERY_URLS_ENV", "page", "parse_urls", "routes"]
