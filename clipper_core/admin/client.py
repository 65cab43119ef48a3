"""``AdminClient``: the management REST API as request and response values.

``ClipperConnection`` calls :meth:`AdminClient.call` with a request value of
:mod:`clipper_core.admin.wire`; the client posts ``to_wire()`` to
``/admin/{path}``, turns an error body back into the
:class:`~clipper_core.errors.ClipperException` subclass its ``"error"`` kind
names, and reads a success with the request's ``response_from_wire``.
"""

from __future__ import annotations

import ssl
from typing import Any, TypeVar

import httpx

from ..errors import KINDS, ClipperException, UnconnectedException
from .wire import Request

R = TypeVar("R")


class AdminClient:
    """An HTTP client of one management frontend.

    :param addr: ``host:port`` of the management frontend (plain HTTP), or
        ``https://host:port`` / ``http://host:port``.
    :param token: bearer token, if the frontend wants one.
    :param timeout: seconds to wait for each call.
    :param verify: how HTTPS is verified: True (the system's CAs), the path of
        a CA bundle (a cluster's own CA), or an ``ssl.SSLContext``.  A CA
        bundle alone makes a bare ``host:port`` HTTPS.
    """

    def __init__(self, addr: str, *, token: str | None = None, timeout: float = 30.0,
                 verify: bool | str | ssl.SSLContext = True) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.addr = addr
        self.base_url = base_url(addr, https=isinstance(verify, (str, ssl.SSLContext)))
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout,
                                  verify=tls_context(verify))

    def close(self) -> None:
        self._http.close()

    def ping(self) -> Any:
        """``GET /admin/ping``; raises when the frontend or its store does not answer."""
        return self._send("GET", "ping", None)

    def call(self, request: Request[R]) -> R:
        """Send ``request`` and return its response value."""
        return request.response_from_wire(self._send("POST", request.path, request.to_wire()))

    def _send(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        url = f"/admin/{path}"
        try:
            resp = self._http.request(method, url, json=body)
        except httpx.HTTPError as exc:
            raise ClipperException(
                f"Management frontend at {self._http.base_url} did not answer {url}: "
                f"{type(exc).__name__}: {exc}", url=str(self._http.base_url)) from exc
        if resp.status_code >= 400:
            raise _error(resp)
        return resp.json()


def base_url(addr: str, *, https: bool = False) -> str:
    """``addr`` with a scheme: kept when given, else ``https://`` when
    ``https``, else ``http://``."""
    if "://" in addr:
        return addr.rstrip("/")
    return f"{'https' if https else 'http'}://{addr}"


def tls_context(verify: bool | str | ssl.SSLContext) -> bool | ssl.SSLContext:
    """What httpx's ``verify`` gets: a context trusting the CA bundle at
    ``verify`` when it is a path, else ``verify`` itself."""
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return verify


def _error(resp: httpx.Response) -> ClipperException:
    """The exception an error response stands for (kind -> class, cause -> message)."""
    kind, cause = "clipper_error", resp.text
    try:
        err = resp.json()
        kind, cause = str(err.get("error", kind)), str(err.get("cause", cause))
    except (ValueError, AttributeError):
        pass
    cls = KINDS.get(kind, ClipperException)
    if cls is UnconnectedException:
        return UnconnectedException(cause)
    return cls(cause, status=resp.status_code)
