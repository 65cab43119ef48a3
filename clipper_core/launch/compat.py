"""Clipper parameters a manager accepts but cannot honour.

Existing Clipper scripts pass them, so they must not be a TypeError; a value
other than Clipper's default warns once per (component, parameter) in a
process, saying why it has no effect.
"""

from __future__ import annotations

import threading
import warnings

_warned: set[tuple[str, str]] = set()
_lock = threading.Lock()


def ignored_parameter(component: str, name: str, value: object, default: object,
                      reason: str, *, stacklevel: int = 3) -> bool:
    """Warn (``UserWarning``, once per ``component``/``name``) when ``value``
    is not ``default``; return whether it warned."""
    if value == default:
        return False
    with _lock:
        if (component, name) in _warned:
            return False
        _warned.add((component, name))
    warnings.warn(f"{component}: {name}={value!r} is accepted for compatibility with "
                  f"Clipper but has no effect: {reason}", UserWarning, stacklevel=stacklevel)
    return True


def reset_warnings() -> None:
    """Forget which parameters warned (for tests)."""
    with _lock:
        _warned.clear()
