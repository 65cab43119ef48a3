"""Clipper's ``clipper_admin.version``: ``__version__`` and ``__registry__``."""

from __future__ import annotations

import os

from clipper_core import __version__

#: Where Clipper looks for its images (Docker Hub namespace), from
#: ``CLIPPER_REGISTRY`` as in Clipper.  Our managers default to our own
#: image names (see the migration guide); this names the namespace a
#: Clipper script may build its own image references from.
__registry__ = os.environ.get("CLIPPER_REGISTRY", "clipper")

__all__ = ["__registry__", "__version__"]
