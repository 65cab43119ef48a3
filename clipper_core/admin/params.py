"""Clipper parameters we accept but cannot honour.

Clipper scripts pass arguments that mean nothing here (a thread pool size
for a C++ HTTP server, the image of a metrics exporter we do not need).
They are accepted so no script breaks; given a value other than Clipper's
default, they warn once per process and parameter with
:class:`UnsupportedParameterWarning`, saying why they are ignored.
"""

from __future__ import annotations

import threading
import warnings

_warned: set[str] = set()
_lock = threading.Lock()


class UnsupportedParameterWarning(UserWarning):
    """A Clipper parameter was given a value this system ignores."""


def ignore_parameter(where: str, name: str, value: object, default: object,
                     reason: str, *, stacklevel: int = 3) -> None:
    """Warn once that ``where``'s parameter ``name`` is ignored, unless
    ``value`` is its default (``==``).

    :param where: the function, e.g. ``"ClipperConnection.start_clipper"``.
    :param reason: why it is ignored, and what to do instead.
    """
    if value == default:
        return
    key = f"{where}({name})"
    with _lock:
        if key in _warned:
            return
        _warned.add(key)
    warnings.warn(f"{where}: {name}={value!r} is accepted for compatibility with Clipper "
                  f"and ignored: {reason}", UnsupportedParameterWarning, stacklevel=stacklevel)


def reset_warnings() -> None:
    """Forget which parameters warned already (for tests)."""
    with _lock:
        _warned.clear()
