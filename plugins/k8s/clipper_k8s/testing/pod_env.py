"""What a container process is given: its command line and environment
(``env`` values with ``$(VAR)`` expansion, ``valueFrom`` field, Secret and
ConfigMap references), its declared ports made local, and service names made
local addresses ("DNS")."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from typing import Protocol

from clipper_core.testing.process_pods import (
    ImageSpec,
    expand_vars,
    local_argv,
    rewrite_port_env,
    rewrite_ports,
)

from .resources import NODE_INTERNAL_IP, NODE_NAME, Obj
from .store import Store

__all__ = ["ServiceResolver", "container_command", "value_from"]


class ServiceResolver(Protocol):
    """The cluster's "DNS": service names in a container's env and args turned
    into local addresses (implemented by the services part)."""

    def resolve_services(self, text: str, ns: str) -> str:
        """``<service>[.<ns>[.svc[.cluster.local]]]:<port>`` -> ``127.0.0.1:<local>``."""
        ...

    def resolve_clipper_frontends(self, env: dict[str, str], ns: str) -> None:
        """``CLIPPER_IP`` naming a service -> local address(es), in place."""
        ...


def container_command(spec: Obj, ports: Mapping[int, int], image: ImageSpec, *, pod: Obj,
                      store: Store, api_port: int,
                      dns: ServiceResolver) -> tuple[list[str], dict[str, str], str | None]:
    """The local ``(argv, env, cwd)`` of container ``spec`` of ``pod`` running
    ``image``; ``ports`` maps its declared ports to local ones, ``api_port`` is
    the API server's.  Raises FileNotFoundError, ValueError or KeyError when
    the container cannot be created (missing program, reference)."""
    meta = pod["metadata"]
    ns = meta["namespace"]
    env: dict[str, str] = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                           "HOME": os.environ.get("HOME", "/tmp"),
                           "HOSTNAME": meta["name"], "PYTHONUNBUFFERED": "1",
                           "KUBERNETES_SERVICE_HOST": "127.0.0.1",
                           "KUBERNETES_SERVICE_PORT": str(api_port)}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    for item in spec.get("env") or []:
        if "value" in item:
            env[item["name"]] = expand_vars(str(item["value"]), env)
        elif "valueFrom" in item:
            env[item["name"]] = value_from(item["valueFrom"], pod, store)
    if image.model_dir is not None:
        env["CLIPPER_MODEL_PATH"] = image.model_dir
    command = spec.get("command") or list(image.entrypoint)
    args = spec.get("args") or ([] if spec.get("command") else [])
    argv = [expand_vars(a, env) for a in [*command, *args]]
    argv = local_argv(argv)
    argv = rewrite_ports(argv, ports)
    env = rewrite_port_env(env, ports)
    env = {k: dns.resolve_services(v, ns) for k, v in env.items()}
    argv = [argv[0], *[dns.resolve_services(a, ns) for a in argv[1:]]]
    dns.resolve_clipper_frontends(env, ns)
    return argv, env, image.cwd


def value_from(source: Obj, pod: Obj, store: Store) -> str:
    """An ``env[].valueFrom``: a field of ``pod``, a Secret's or ConfigMap's key."""
    meta = pod["metadata"]
    ns = meta["namespace"]
    if "fieldRef" in source:
        path = source["fieldRef"]["fieldPath"]
        values = {"metadata.name": meta["name"], "metadata.namespace": ns,
                  "metadata.uid": meta["uid"], "status.podIP": "127.0.0.1",
                  "status.hostIP": NODE_INTERNAL_IP, "spec.nodeName": NODE_NAME,
                  "spec.serviceAccountName": pod["spec"].get("serviceAccountName",
                                                             "default")}
        if path not in values:
            m = re.fullmatch(r"metadata\.labels\['(.+)'\]", path)
            if m:
                return str((meta.get("labels") or {}).get(m.group(1), ""))
            raise KeyError(f"fieldRef {path} is not supported by the fake")
        return str(values[path])
    if "secretKeyRef" in source or "configMapKeyRef" in source:
        ref = source.get("secretKeyRef") or source["configMapKeyRef"]
        plural = "secrets" if "secretKeyRef" in source else "configmaps"
        obj = store.get(plural, ns, ref["name"])
        if obj is None:
            raise KeyError(f'{plural[:-1]} "{ref["name"]}" not found')
        if plural == "secrets":
            data = obj.get("data") or {}
            if ref["key"] in data:
                return base64.b64decode(data[ref["key"]]).decode()
            return str((obj.get("stringData") or {})[ref["key"]])
        return str((obj.get("data") or {})[ref["key"]])
    raise KeyError(f"unsupported valueFrom {sorted(source)}")
