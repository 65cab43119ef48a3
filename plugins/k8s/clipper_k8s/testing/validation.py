"""What the API server refuses with a 422: the real OpenAPI schemas (checked
with ``kubernetes-validate``, strictly: unknown fields are errors) plus the
name, label, selector and port rules the API server adds."""

from __future__ import annotations

import re
from typing import Any

from .resources import ApiError, Obj, Resource, invalid
from .selectors import selector_labels

__all__ = ["semantic_causes", "validate_body"]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def check_name(res: Resource, name: str) -> str | None:
    if res.kind in ("Service",):
        if len(name) > 63 or not _DNS_1035.match(name):
            return ("a DNS-1035 label must consist of lower case alphanumeric characters or "
                    "'-', start with an alphabetic character, and end with an alphanumeric "
                    "character (at most 63 characters)")
    elif res.kind in ("Namespace", "Deployment"):
        # Deployments are subdomains in the schema, but their pods' hostnames
        # must be labels; the API server rejects names longer than 63 in practice.
        if len(name) > 63 or not _DNS_LABEL.match(name):
            return ("a lowercase RFC 1123 label must consist of lower case alphanumeric "
                    "characters or '-', and must start and end with an alphanumeric "
                    "character (at most 63 characters)")
    elif res.kind in ("Role", "RoleBinding"):
        if not name or "/" in name or "%" in name or name in (".", ".."):
            return "may not contain '/' or '%'"
    else:
        if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
            return ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                    "characters, '-' or '.', and must start and end with an alphanumeric "
                    "character")
    return None


def _check_labels(labels: Any, field: str) -> list[tuple[str, str]]:
    causes = []
    for key, value in (labels or {}).items():
        prefix, _, name = key.rpartition("/")
        if (prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix))) or \
                len(name) > 63 or not _LABEL_NAME.match(name):
            causes.append((f"{field}", f"Invalid value: {key!r}: name part must consist of "
                           "alphanumeric characters, '-', '_' or '.' (at most 63)"))
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append((f"{field}", f"Invalid value: {value!r}: a valid label must be an "
                           "empty string or consist of alphanumeric characters, '-', '_' or "
                           "'.' (at most 63)"))
    return causes


def _check_pod_spec(spec: Obj, field: str) -> list[tuple[str, str]]:
    causes = []
    names = set()
    for i, c in enumerate(spec.get("containers") or []):
        name = c.get("name", "")
        if not _DNS_LABEL.match(name) or len(name) > 63:
            causes.append((f"{field}.containers[{i}].name", f"Invalid value: {name!r}"))
        if name in names:
            causes.append((f"{field}.containers[{i}].name", f"Duplicate value: {name!r}"))
        names.add(name)
        if not c.get("image"):
            causes.append((f"{field}.containers[{i}].image", "Required value"))
        for j, e in enumerate(c.get("env") or []):
            if not _ENV_NAME.match(e.get("name", "")):
                causes.append((f"{field}.containers[{i}].env[{j}].name",
                               f"Invalid value: {e.get('name')!r}"))
        for j, p in enumerate(c.get("ports") or []):
            if not 0 < int(p.get("containerPort", 0)) < 65536:
                causes.append((f"{field}.containers[{i}].ports[{j}].containerPort",
                               "Invalid value: must be between 1 and 65535"))
            if "name" in p and (len(p["name"]) > 15 or not _DNS_LABEL.match(p["name"])):
                causes.append((f"{field}.containers[{i}].ports[{j}].name",
                               f"Invalid value: {p['name']!r}: must be an IANA_SVC_NAME"))
    if not spec.get("containers"):
        causes.append((f"{field}.containers", "Required value"))
    return causes


def semantic_causes(res: Resource, obj: Obj) -> list[tuple[str, str]]:
    """The API server's validation beyond the OpenAPI schema, for the kinds used."""
    causes: list[tuple[str, str]] = []
    meta = obj.get("metadata") or {}
    causes += _check_labels(meta.get("labels"), "metadata.labels")
    if res.kind == "Deployment":
        spec = obj.get("spec") or {}
        tmpl_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        causes += _check_labels(tmpl_labels, "spec.template.metadata.labels")
        if not spec.get("selector"):
            causes.append(("spec.selector", "Required value"))
        elif not selector_labels(spec["selector"])(tmpl_labels):
            causes.append(("spec.template.metadata.labels",
                           f"Invalid value: {tmpl_labels!r}: `selector` does not match "
                           "template `labels`"))
        if int(spec.get("replicas", 1)) < 0:
            causes.append(("spec.replicas", "Invalid value: must be greater than or equal to 0"))
        causes += _check_pod_spec((spec.get("template") or {}).get("spec") or {},
                                  "spec.template.spec")
    elif res.kind == "Pod":
        causes += _check_pod_spec(obj.get("spec") or {}, "spec")
    elif res.kind == "Service":
        spec = obj.get("spec") or {}
        ports = spec.get("ports") or []
        if not ports and spec.get("clusterIP") != "None":
            causes.append(("spec.ports", "Required value"))
        seen = set()
        for i, p in enumerate(ports):
            if len(ports) > 1 and not p.get("name"):
                causes.append((f"spec.ports[{i}].name", "Required value"))
            if p.get("name") in seen:
                causes.append((f"spec.ports[{i}].name", f"Duplicate value: {p.get('name')!r}"))
            seen.add(p.get("name"))
            node_port = p.get("nodePort")
            if node_port is not None and not 30000 <= int(node_port) <= 32767:
                causes.append((f"spec.ports[{i}].nodePort",
                               f"Invalid value: {node_port}: provided port is not in the "
                               "valid range. The range of valid ports is 30000-32767"))
        if spec.get("clusterIP") == "None" and spec.get("type") in ("NodePort", "LoadBalancer"):
            causes.append(("spec.clusterIP",
                           "Invalid value: \"None\": may not be set to 'None' for "
                           f"{spec.get('type')} services"))
    return causes


def validate_body(res: Resource, body: Obj, *, k8s_version: str, check_schema: bool = True,
                  name: str | None = None, kind: str | None = None,
                  api_version: str | None = None) -> None:
    """400 if ``body`` names another kind or version, 422 unless it is a valid
    ``res`` (schema + API server rules; with ``check_schema`` false only the
    kind and version are checked).  ``kind``/``api_version`` name a
    subresource's body (``Scale``), validated against its schema only."""
    import kubernetes_validate

    want_kind = kind or res.kind
    want_version = api_version or res.api_version
    if body.get("kind") not in (None, want_kind) or \
            body.get("apiVersion") not in (None, want_version):
        raise ApiError(400, "BadRequest",
                       f"the API version in the data ({body.get('apiVersion')}) does not "
                       f"match the expected API version ({want_version})")
    obj_name = (body.get("metadata") or {}).get("name") or name or ""
    full = {"apiVersion": want_version, "kind": want_kind, **body}
    if not check_schema:
        return
    try:
        kubernetes_validate.validate(full, k8s_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path) or "<root>"
        raise invalid(res, obj_name, [(path, exc.message)]) from None
    if want_kind == res.kind:
        problem = check_name(res, obj_name) if obj_name else None
        causes = ([("metadata.name", f"Invalid value: {obj_name!r}: {problem}")]
                  if problem else [])
        causes += semantic_causes(res, full)
        if causes:
            raise invalid(res, obj_name, causes)
