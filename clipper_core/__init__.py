"""clipper-core: low-latency prediction serving, a plugin-based Clipper."""

from .errors import ClipperException, UnconnectedException

__version__ = "0.4.0"

__all__ = ["ClipperException", "UnconnectedException", "__version__"]
