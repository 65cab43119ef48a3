"""Clipper's ``clipper_admin.clipper_admin``: the connection and its constants."""

from __future__ import annotations

import os
import tempfile

from clipper_core.connection import DEFAULT_CACHE_SIZE, ClipperConnection
from clipper_core.errors import ClipperException, UnconnectedException

from .container_manager import CONTAINERLESS_MODEL_IMAGE
from .version import __registry__, __version__

#: Labels a model gets when none are given.
DEFAULT_LABEL: list[str] = []
#: The prediction cache of ``start_clipper`` when none is given: 32 MiB.
DEFAULT_PREDICTION_CACHE_SIZE_BYTES = DEFAULT_CACHE_SIZE
#: Where deployers write a model's files before building it.
CLIPPER_TEMP_DIR = os.path.join(tempfile.gettempdir(), "clipper")

__all__ = ["CLIPPER_TEMP_DIR", "CONTAINERLESS_MODEL_IMAGE", "DEFAULT_LABEL",
           "DEFAULT_PREDICTION_CACHE_SIZE_BYTES", "ClipperConnection", "ClipperException",
           "UnconnectedException", "__registry__", "__version__"]
