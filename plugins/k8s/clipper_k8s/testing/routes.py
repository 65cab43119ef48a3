"""The HTTP face of the fake API server: the REST paths of ``/api/v1`` and
``/apis/<group>/<version>``, ``Status`` bodies for errors, chunked watch
streams, ``/version`` and the health endpoints."""

from __future__ import annotations

import copy
import http.server
import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

from .apiserver import ApiServer
from .objects import delete_object
from .resources import RESOURCES, ApiError, Obj, Resource, not_found
from .selectors import field_matcher, label_matcher

__all__ = ["handler_for"]


def handler_for(api: ApiServer) -> type[http.server.BaseHTTPRequestHandler]:
    """A request handler class serving ``api``."""
    return type("Handler", (_Handler,), {"api": api})


class _Handler(http.server.BaseHTTPRequestHandler):
    api: ApiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass

    def _send_json(self, code: int, body: Obj) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _read_body(self) -> tuple[bytes, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return raw, None
        try:
            return raw, json.loads(raw)
        except ValueError:
            raise ApiError(400, "BadRequest", "the body of the request could not be decoded "
                           "as JSON") from None

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, verb: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query,
                                                            keep_blank_values=True).items()}
        try:
            self._route(verb, url.path, query)
        except ApiError as exc:
            self._send_json(exc.code, exc.status())
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _route(self, verb: str, path: str, query: dict[str, str]) -> None:
        api = self.api
        if path == "/version":
            self._send_json(200, {"major": "1", "minor": api.k8s_version.split(".")[1],
                                  "gitVersion": f"v{api.k8s_version}-fake",
                                  "platform": "linux/amd64"})
            return
        if path in ("/healthz", "/readyz", "/livez"):
            data = b"ok"
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(data)
            return
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        if parts[:2] == ["api", "v1"]:
            group_version, rest = "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        ns: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        if not rest:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        plural, name = rest[0], rest[1] if len(rest) > 1 else None
        sub, tail = (rest[2] if len(rest) > 2 else None), rest[3:]
        res = RESOURCES.get((group_version, plural))
        if res is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if res.namespaced and ns is None and name is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        raw, body = self._read_body()
        if body is not None:
            api.received.append((verb, path, copy.deepcopy(body)))
        api.authorize(verb, res, ns, name, sub, query)
        if sub == "proxy" and res.plural == "services" and ns is not None and name:
            self._proxy(verb, ns, name, tail, raw)
        elif name is None:
            self._collection(verb, res, ns, query, body)
        elif sub is None:
            self._item(verb, res, ns or "", name, query, body)
        else:
            self._subresource(verb, res, ns or "", name, sub, query, body)

    def _proxy(self, verb: str, ns: str, target: str, tail: list[str], raw: bytes) -> None:
        """``services/<target>/proxy/<tail>``: the request forwarded to the service."""
        rest_path = "/" + "/".join(tail)
        if self.path.endswith("/") and not rest_path.endswith("/"):
            rest_path += "/"
        full = urllib.parse.urlsplit(self.path)
        if full.query:
            rest_path += "?" + full.query
        code, headers, data = self.api.proxy(ns, target, rest_path, verb,
                                             dict(self.headers.items()), raw or None)
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _subresource(self, verb: str, res: Resource, ns: str, name: str, sub: str,
                     query: dict[str, str], body: Any) -> None:
        """``/scale`` of a Deployment, ``/status`` of any object, ``/log`` of a pod."""
        api = self.api
        if sub == "scale" and res.plural == "deployments":
            if verb not in ("GET", "PUT", "PATCH"):
                raise ApiError(405, "MethodNotAllowed", f"{verb} is not supported on scale")
            self._send_json(200, api.scale(ns, name, verb, body,
                                           self.headers.get("Content-Type", "")))
        elif sub == "status" and verb == "GET":
            obj = api.store.get(res.plural, ns, name)
            if obj is None:
                raise not_found(res, name)
            self._send_json(200, obj)
        elif sub == "log" and res.plural == "pods" and verb == "GET":
            text = api.log(ns, name, query).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def _collection(self, verb: str, res: Resource, ns: str | None, query: dict[str, str],
                    body: Any) -> None:
        api = self.api
        if verb == "GET":
            if query.get("watch") in ("true", "1", "True"):
                self._stream(api.watch(res, ns, query))
                return
            labels = label_matcher(query.get("labelSelector"))
            fields = field_matcher(query.get("fieldSelector"))
            with api.store.cond:
                items = [o for o in api.store.list(res.plural, ns)
                         if labels(o["metadata"].get("labels") or {}) and fields(o)]
                rv = str(api.store.rv)
            self._send_json(200, {"kind": f"{res.kind}List", "apiVersion": res.api_version,
                                  "metadata": {"resourceVersion": rv}, "items": items})
        elif verb == "POST":
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the body of the request is missing or not "
                               "an object")
            if res.namespaced and ns is None:
                raise ApiError(404, "NotFound", "the server could not find the requested "
                               "resource")
            self._send_json(201, api.create(res, ns or "", body))
        elif verb == "DELETE":
            if res.namespaced and ns is None:
                raise ApiError(405, "MethodNotAllowed", "deletecollection needs a namespace")
            labels = label_matcher(query.get("labelSelector"))
            fields = field_matcher(query.get("fieldSelector"))
            items = [o for o in api.store.list(res.plural, ns)
                     if labels(o["metadata"].get("labels") or {}) and fields(o)]
            options = body if isinstance(body, dict) else {}
            options = {**options, **{k: v for k, v in query.items()
                                     if k in ("propagationPolicy", "gracePeriodSeconds")}}
            for o in items:
                delete_object(api.store, res, o["metadata"].get("namespace", ""),
                                    o["metadata"]["name"], options)
            self._send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                  "status": "Success"})
        else:
            raise ApiError(405, "MethodNotAllowed", f"{verb} is not allowed on a collection")

    def _item(self, verb: str, res: Resource, ns: str, name: str, query: dict[str, str],
              body: Any) -> None:
        api = self.api
        if verb == "GET":
            obj = api.store.get(res.plural, ns, name)
            if obj is None:
                raise not_found(res, name)
            self._send_json(200, obj)
        elif verb == "PUT":
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the body of the request is not an object")
            self._send_json(200, api.replace(res, ns, name, body))
        elif verb == "PATCH":
            self._send_json(200, api.patch(res, ns, name, body,
                                            self.headers.get("Content-Type", "")))
        elif verb == "DELETE":
            options = body if isinstance(body, dict) else {}
            options = {**options, **{k: v for k, v in query.items()
                                     if k in ("propagationPolicy", "gracePeriodSeconds")}}
            self._send_json(200, api.delete(res, ns, name, options))
        else:
            raise ApiError(405, "MethodNotAllowed", f"{verb} is not allowed on an object")

    def _stream(self, events: Iterator[Obj]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for event in events:
                line = json.dumps(event).encode() + b"\n"
                self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
