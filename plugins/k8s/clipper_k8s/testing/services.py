"""Services: ClusterIPs, NodePorts and load balancers as local TCP
forwarders (kube-proxy) to the ready pods behind each service, service
names in a container's env and args made local addresses ("DNS"), and the
API server's service proxy (``/api/v1/namespaces/NS/services/NAME:PORT/proxy``).

Because one name cannot resolve to several local ports, a model container
whose ``CLIPPER_IP`` names a headless service gets ``CLIPPER_FRONTENDS``
listing every ready pod behind it.
"""

from __future__ import annotations

import http.client
import random
import re
import socket
import threading
from collections.abc import Mapping

from clipper_core.testing.process_pods import allocate_port

from .forwarders import TcpForwarder
from .kubelet import Kubelet
from .resources import (
    BY_PLURAL,
    NODE_EXTERNAL_IP,
    NODE_INTERNAL_IP,
    ApiError,
    Obj,
    invalid,
    not_found,
)
from .selectors import label_matcher
from .store import Store

__all__ = ["ServiceNetwork"]


class ServiceNetwork:
    """The cluster network of every Service in ``store``, routed to the pods
    ``kubelet`` runs."""

    def __init__(self, store: Store, kubelet: Kubelet) -> None:
        self.store = store
        self.kubelet = kubelet
        #: (ns, service) -> (service port, forwarder) for each listener
        self.forwarders: dict[tuple[str, str], list[tuple[int | str, TcpForwarder]]] = {}
        #: (ns, service, port) -> local ClusterIP forwarder port
        self.cluster_ports: dict[tuple[str, str, int], int] = {}
        self._lock = threading.RLock()
        self._ip_counter = 0

    def default_service(self, ns: str, body: Obj) -> None:
        """Fill a new Service's defaults: its ClusterIP, NodePorts (422 if taken),
        a load balancer's ingress IP."""
        spec = body.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec.get("clusterIP") != "None":
            with self._lock:
                self._ip_counter += 1
                n = self._ip_counter
            spec["clusterIP"] = f"10.96.{n // 250}.{n % 250 + 2}"
        spec["clusterIPs"] = [spec["clusterIP"]]
        used = {p.get("nodePort") for s in self.store.list("services")
                for p in s["spec"].get("ports") or []}
        for p in spec.get("ports") or []:
            p.setdefault("protocol", "TCP")
            p.setdefault("targetPort", p["port"])
            if spec["type"] in ("NodePort", "LoadBalancer"):
                if p.get("nodePort") is not None and p["nodePort"] in used:
                    raise invalid(BY_PLURAL["services"], body["metadata"]["name"], [
                        ("spec.ports[0].nodePort", f"Invalid value: {p['nodePort']}: provided "
                         "port is already allocated")])
                if not p.get("nodePort"):
                    p["nodePort"] = allocate_port(NODE_INTERNAL_IP, 30000, 32767)
        body["status"] = {"loadBalancer": {}}
        if spec["type"] == "LoadBalancer":
            body["status"]["loadBalancer"] = {"ingress": [{"ip": self._lb_ip(spec),
                                                           "ipMode": "VIP"}]}

    def _lb_ip(self, spec: Obj) -> str:
        ports = [int(p["port"]) for p in spec.get("ports") or []]
        for _ in range(100):
            ip = f"127.{random.randint(1, 254)}.{random.randint(0, 254)}.{random.randint(2, 254)}"
            try:
                for port in ports:
                    with socket.socket() as s:
                        s.bind((ip, port))
                return ip
            except OSError:
                continue
        raise ApiError(500, "InternalError", "no address for the load balancer")

    def sync(self) -> None:
        """Open the listeners of new services, close those of deleted ones."""
        services = {(s["metadata"]["namespace"], s["metadata"]["name"]): s
                    for s in self.store.list("services")}
        with self._lock:
            for key in [k for k in self.forwarders if k not in services]:
                for _, f in self.forwarders.pop(key):
                    f.close()
                for ck in [c for c in self.cluster_ports if c[:2] == key]:
                    del self.cluster_ports[ck]
            for key, svc in services.items():
                if key in self.forwarders:
                    continue
                self.forwarders[key] = fwds = []
                spec = svc["spec"]
                if spec.get("clusterIP") == "None":
                    continue
                ns, name = key
                for p in spec.get("ports") or []:
                    target = p.get("targetPort", p["port"])

                    def backends(ns: str = ns, name: str = name,
                                 target: int | str = target) -> list[int]:
                        current = self.store.get("services", ns, name)
                        return self.endpoints(ns, current, target) if current else []

                    local = allocate_port()
                    fwds.append((p["port"], TcpForwarder("127.0.0.1", local, backends)))
                    self.cluster_ports[(ns, name, int(p["port"]))] = local
                    if p.get("nodePort"):
                        for host in (NODE_INTERNAL_IP, NODE_EXTERNAL_IP):
                            fwds.append((p["port"], TcpForwarder(host, p["nodePort"], backends)))
                    lb = spec.get("type") == "LoadBalancer"
                    ingress = (((svc.get("status") or {}).get("loadBalancer") or {})
                               .get("ingress") or [{}])[0].get("ip")
                    if lb and ingress:
                        fwds.append((p["port"], TcpForwarder(ingress, int(p["port"]), backends)))

    def close(self) -> None:
        """Close every listener."""
        with self._lock:
            for fwds in self.forwarders.values():
                for _, f in fwds:
                    f.close()
            self.forwarders.clear()

    def _service_names(self, ns: str) -> list[tuple[str, Obj]]:
        """(name, service) of every service in ``ns``."""
        return [(s["metadata"]["name"], s) for s in self.store.list("services", ns)]

    def endpoints(self, ns: str, service: Obj, target: int | str | None = None) -> list[int]:
        """Local ports of the ready pods behind ``service`` for ``target`` (a
        targetPort; default the first port's)."""
        spec = service.get("spec") or {}
        if not spec.get("selector"):
            return []
        if target is None:
            ports = spec.get("ports") or [{}]
            target = ports[0].get("targetPort", ports[0].get("port"))
        match = label_matcher(",".join(f"{k}={v}" for k, v in spec["selector"].items()))
        runners = self.kubelet.runners_in(ns)
        out = []
        for r in runners:
            if (r.ready or spec.get("publishNotReadyAddresses")) and \
                    match(r.pod["metadata"].get("labels") or {}):
                pod = self.store.get("pods", ns, r.name)
                if pod is None or "deletionTimestamp" in pod["metadata"]:
                    continue
                port = r.local_port(target) if target is not None else None
                if port is not None:
                    out.append(port)
        return out

    def service_port(self, service: Obj, port: int | str | None) -> Obj | None:
        """The entry of ``service``'s ports named or numbered ``port`` (None: the first)."""
        for p in (service.get("spec") or {}).get("ports") or []:
            if port is None or p.get("port") == port or p.get("name") == port or \
                    str(p.get("port")) == str(port):
                return p
        return None

    def resolve_services(self, text: str, ns: str) -> str:
        """Replace ``<service>[.<ns>[.svc[.cluster.local]]]:<port>`` by a local address."""
        for name, svc in self._service_names(ns):
            pattern = re.compile(
                rf"(?<![\w.-]){re.escape(name)}(\.{re.escape(ns)}(\.svc(\.cluster\.local)?)?)?"
                r":(\d+)")

            def sub(m: re.Match[str], svc: Obj = svc, name: str = name) -> str:
                port = int(m.group(4))
                local = self.cluster_ports.get((ns, name, port))
                if local is None:  # headless: the first ready endpoint
                    p = self.service_port(svc, port)
                    eps = self.endpoints(ns, svc, p.get("targetPort", port) if p else port)
                    local = eps[0] if eps else None
                return f"127.0.0.1:{local}" if local is not None else m.group(0)

            text = pattern.sub(sub, text)
        return text

    def resolve_clipper_frontends(self, env: dict[str, str], ns: str) -> None:
        """``CLIPPER_IP`` naming a service -> local address(es), see module docstring."""
        host = env.get("CLIPPER_IP")
        if not host or "CLIPPER_FRONTENDS" in env:
            return
        short = host.split(".")[0]
        svc = self.store.get("services", ns, short)
        if svc is None or host not in (short, f"{short}.{ns}", f"{short}.{ns}.svc",
                                       f"{short}.{ns}.svc.cluster.local"):
            return
        port = int(env.get("CLIPPER_PORT", "7000"))
        if svc["spec"].get("clusterIP") == "None":
            p = self.service_port(svc, port)
            eps = self.endpoints(ns, svc, p.get("targetPort", port) if p else port)
            if eps:
                env["CLIPPER_FRONTENDS"] = ",".join(f"127.0.0.1:{e}" for e in eps)
                env["CLIPPER_IP"] = "127.0.0.1"
        else:
            local = self.cluster_ports.get((ns, short, port))
            if local is not None:
                env["CLIPPER_IP"] = "127.0.0.1"
                env["CLIPPER_PORT"] = str(local)

    def proxy(self, ns: str, target: str, rest: str, method: str, headers: Mapping[str, str],
              body: bytes | None) -> tuple[int, list[tuple[str, str]], bytes]:
        """Forward an HTTP request to a service, as the API server's proxy does."""
        parts = target.split(":")
        name = parts[0] if len(parts) < 3 else parts[1]
        port: int | str | None = parts[-1] if len(parts) > 1 else None
        if isinstance(port, str) and port.isdigit():
            port = int(port)
        svc = self.store.get("services", ns, name)
        if svc is None:
            raise not_found(BY_PLURAL["services"], name)
        p = self.service_port(svc, port)
        if p is None:
            raise ApiError(503, "ServiceUnavailable", f'no endpoints available for service '
                           f'"{name}:{port}"')
        eps = self.endpoints(ns, svc, p.get("targetPort", p["port"]))
        if not eps:
            raise ApiError(503, "ServiceUnavailable", f'no endpoints available for service '
                           f'"{name}"')
        conn = http.client.HTTPConnection("127.0.0.1", random.choice(eps), timeout=60)
        try:
            fwd = {k: v for k, v in headers.items() if k.lower() in (
                "content-type", "authorization", "accept", "user-agent")}
            conn.request(method, rest, body=body, headers=fwd)
            resp = conn.getresponse()
            data = resp.read()
            out_headers = [(k, v) for k, v in resp.getheaders()
                           if k.lower() in ("content-type",)]
            return resp.status, out_headers, data
        except OSError as exc:
            raise ApiError(503, "ServiceUnavailable", f"error trying to reach service: {exc}") \
                from None
        finally:
            conn.close()
