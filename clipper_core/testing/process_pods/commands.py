"""A container's command line made local: the interpreter and programs found
here, Kubernetes ``$(VAR)`` expansion, and declared ports replaced by the
local ports the process was given."""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence

__all__ = ["expand_vars", "local_argv", "rewrite_port_env", "rewrite_ports"]


def local_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``python``/``python3`` replaced by this interpreter and
    other programs looked up on PATH (raises FileNotFoundError if missing)."""
    if not argv:
        raise ValueError("empty command")
    first = argv[0]
    if first in ("python", "python3") or re.fullmatch(r"(/usr(/local)?/bin/)?python3?(\.\d+)?",
                                                      first):
        prog = sys.executable
    elif os.path.isabs(first):
        prog = first
    else:
        found = shutil.which(first)
        if found is None:
            raise FileNotFoundError(f"executable file not found in $PATH: {first}")
        prog = found
    return [prog, *argv[1:]]


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand_vars(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: known names are replaced, unknown ones
    left as they are, ``$$`` becomes ``$``."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))
    return _VAR.sub(sub, text)


def rewrite_ports(argv: Sequence[str], ports: Mapping[int, int]) -> list[str]:
    """Replace declared ports in ``argv`` by their local ports.

    ``ports`` maps a declared port (a container port, a task port label's
    value) to the local port.  Only values of flags whose name ends in
    ``port`` are rewritten: ``--port 1337``, ``--rpc-port=7000``.
    """
    out: list[str] = []
    flag_before = False
    for arg in argv:
        if flag_before and arg.isdigit() and int(arg) in ports:
            out.append(str(ports[int(arg)]))
        else:
            m = re.fullmatch(r"(--?[\w-]*port)=(\d+)", arg)
            if m and int(m.group(2)) in ports:
                arg = f"{m.group(1)}={ports[int(m.group(2))]}"
            out.append(arg)
        flag_before = bool(re.fullmatch(r"--?[\w-]*port", arg))
    return out


def rewrite_port_env(env: Mapping[str, str], ports: Mapping[int, int]) -> dict[str, str]:
    """``env`` with the value of every ``*PORT`` variable that names a declared
    port replaced by its local port (``PORT=8080`` -> ``PORT=41234``)."""
    out = dict(env)
    for key, value in env.items():
        if key.upper().endswith("PORT") and value.isdigit() and int(value) in ports:
            out[key] = str(ports[int(value)])
    return out
