"""clipper-core: low-latency prediction serving, a plugin-based Clipper.

``ClipperConnection`` (the admin API) is imported on first use, so importing
the package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ClipperException, UnconnectedException

if TYPE_CHECKING:
    from .connection import ClipperConnection

__version__ = "0.4.0"

__all__ = ["ClipperConnection", "ClipperException", "UnconnectedException", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "ClipperConnection":
        from .connection import ClipperConnection

        return ClipperConnection
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
