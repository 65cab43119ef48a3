"""Where clients reach a cluster's services: API server proxy, NodePort, LoadBalancer.
"""

from __future__ import annotations

import time

from clipper_core.errors import ContainerError

from .objects import KubeObjects


class ServiceAddresses(KubeObjects):
    """Service addresses of the manager (cached per service)."""

    kubernetes_proxy_addr: str | None
    use_internal_ip: bool
    start_timeout: float
    _addrs: dict[str, str]

    def _service_addr(self, service: str, port: int) -> str:
        """``host:port`` (or ``host:port/path`` through a proxy) of a service."""
        if service in self._addrs:
            return self._addrs[service]
        if self.kubernetes_proxy_addr:
            proxy = self.kubernetes_proxy_addr.removeprefix("http://")
            addr = f"{proxy}/api/v1/namespaces/{self.namespace}/services/{service}:{port}/proxy"
            self._addrs[service] = addr
            return addr
        with self._errors(f"Reading Service {service!r}"):
            svc = self.core.read_namespaced_service(service, self.namespace)
        type_ = svc.spec.type
        if type_ == "LoadBalancer":
            addr = self._load_balancer_addr(service, port)
        elif type_ == "NodePort":
            node_port = next(p.node_port for p in svc.spec.ports if p.port == port)
            addr = f"{self._node_ip()}:{node_port}"
        else:
            raise ContainerError(
                f"Service {service!r} is of type {type_}, reachable only inside the cluster; "
                "pass kubernetes_proxy_addr (e.g. from `kubectl proxy`)", service=service)
        self._addrs[service] = addr
        return addr

    def _load_balancer_addr(self, service: str, port: int) -> str:
        deadline = time.monotonic() + self.start_timeout
        while True:
            with self._errors(f"Reading Service {service!r}"):
                svc = self.core.read_namespaced_service(service, self.namespace)
            lb = svc.status.load_balancer if svc.status else None
            for ingress in (lb.ingress or []) if lb else []:
                host = ingress.ip or ingress.hostname
                if host:
                    return f"{host}:{port}"
            if time.monotonic() > deadline:
                raise ContainerError(f"LoadBalancer Service {service!r} got no ingress address "
                                     f"within {self.start_timeout:.0f}s", service=service)
            time.sleep(1.0)

    def _node_ip(self) -> str:
        with self._errors("Listing nodes (NodePort addresses need read access to nodes)"):
            nodes = self.core.list_node().items
        wanted = ("InternalIP",) if self.use_internal_ip else ("ExternalIP", "InternalIP")
        for kind in wanted:
            for node in nodes:
                for address in (node.status.addresses or []) if node.status else []:
                    if address.type == kind:
                        return address.address
        raise ContainerError("No node has an " + " or ".join(wanted) + " address for "
                             "NodePort services; use kubernetes_proxy_addr or a LoadBalancer")
