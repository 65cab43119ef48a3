"""Label and field selectors, as list, watch and delete-collection requests
and a Deployment's ``spec.selector`` use them."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .resources import ApiError, Obj

__all__ = ["field_matcher", "label_matcher", "selector_labels"]


def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def label_matcher(selector: str | None) -> Callable[[Mapping[str, str]], bool]:
    """A predicate for a label selector string (=, ==, !=, in, notin, exists, !exists)."""
    if not selector:
        return lambda _labels: True
    tests: list[Callable[[Mapping[str, str]], bool]] = []
    for req in _split_top(selector):
        m = re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", req)
        if m:
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if op == "in":
                tests.append(lambda lb, k=key, vs=values: lb.get(k) in vs)
            else:
                tests.append(lambda lb, k=key, vs=values: lb.get(k) not in vs)
            continue
        m = re.fullmatch(r"([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)", req)
        if m:
            key, op, value = m.groups()
            if op == "!=":
                tests.append(lambda lb, k=key, v=value: lb.get(k) != v)
            else:
                tests.append(lambda lb, k=key, v=value: lb.get(k) == v)
            continue
        m = re.fullmatch(r"(!?)([\w./-]+)", req)
        if m:
            neg, key = m.groups()
            tests.append(lambda lb, k=key, n=bool(neg): (k in lb) != n)
            continue
        raise ApiError(400, "BadRequest", f"unable to parse requirement: {req!r}")
    return lambda labels: all(t(labels) for t in tests)


def _field(obj: Obj, path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def field_matcher(selector: str | None) -> Callable[[Obj], bool]:
    """A predicate for a field selector (``metadata.name=x,involvedObject.kind!=Pod``)."""
    if not selector:
        return lambda _obj: True
    tests = []
    for req in _split_top(selector):
        m = re.fullmatch(r"([\w.]+)\s*(==|=|!=)\s*(.*)", req)
        if not m:
            raise ApiError(400, "BadRequest", f"invalid field selector: {req!r}")
        path, op, value = m.groups()
        if op == "!=":
            tests.append(lambda o, p=path, v=value: str(_field(o, p) or "") != v)
        else:
            tests.append(lambda o, p=path, v=value: str(_field(o, p) or "") == v)
    return lambda obj: all(t(obj) for t in tests)


def selector_labels(selector: Obj | None) -> Callable[[Mapping[str, str]], bool]:
    """A predicate for a LabelSelector object (matchLabels + matchExpressions)."""
    if not selector:
        return lambda _labels: False
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr["operator"], expr["key"], expr.get("values") or []
        parts.append({"In": f"{key} in ({','.join(values)})",
                      "NotIn": f"{key} notin ({','.join(values)})",
                      "Exists": key, "DoesNotExist": f"!{key}"}[op])
    return label_matcher(",".join(parts))
