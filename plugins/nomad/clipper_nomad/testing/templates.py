"""Nomad's runtime ``${...}`` interpolation and the subset of
consul-template the fake renders (``env``, ``range ... nomadService``)."""

from __future__ import annotations

import re
from typing import Any

from .allocations import NODE_ID, NODE_NAME, DriverError

__all__ = ["interpolate", "render"]

_VAR = re.compile(r"\$\{([^}]+)\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Nomad's ``${...}`` interpolation of runtime variables (unknown ones stay)."""
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name.startswith("NOMAD_"):
            return env.get(name, m.group(0))
        if name.startswith("env."):
            return env.get(name[4:], m.group(0))
        return {"node.unique.name": NODE_NAME, "node.unique.id": NODE_ID,
                "node.datacenter": env.get("NOMAD_DC", "dc1")}.get(name, m.group(0))
    return _VAR.sub(sub, text)


_RANGE = re.compile(
    r'\{\{-?\s*range\s+\$(\w+),\s*\$(\w+)\s*:=\s*nomadService\s+"([^"]+)"\s*-?\}\}'
    r'(.*?)\{\{-?\s*end\s*-?\}\}(?!.*\{\{-?\s*end)', re.S)
_ENV = re.compile(r'\{\{-?\s*env\s+"([^"]+)"\s*-?\}\}')


def render(text: str, env: dict[str, str], services: dict[str, list[dict[str, Any]]]) -> str:
    """Render the consul-template subset the fake understands: ``env "X"`` and
    ``range $i, $s := nomadService "name"`` whose body uses ``$s.Address``,
    ``$s.Port`` and ``if ne $i 0``.  Anything else fails like a template error."""

    def render_range(m: re.Match[str]) -> str:
        ivar, svar, name, body = m.groups()
        out = []
        for i, entry in enumerate(services.get(name, [])):
            first = i == 0
            part = re.sub(r'\{\{-?\s*if\s+ne\s+\$' + ivar + r'\s+0\s*-?\}\}(.*?)'
                          r'\{\{-?\s*end\s*-?\}\}',
                          lambda mm, first=first: "" if first else mm.group(1),
                          body, flags=re.S)
            part = re.sub(r'\{\{-?\s*\$' + svar + r'\.Address\s*-?\}\}', entry["Address"], part)
            part = re.sub(r'\{\{-?\s*\$' + svar + r'\.Port\s*-?\}\}', str(entry["Port"]), part)
            out.append(part)
        return "".join(out)

    text = _ENV.sub(lambda m: env.get(m.group(1), ""), text)
    text = _RANGE.sub(render_range, text)
    if "{{" in text:
        raise DriverError(f"Template failed: the fake cannot render {text!r}")
    return text
