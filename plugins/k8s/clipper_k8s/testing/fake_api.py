"""The fake API server's public names, for imports written before it was split
into modules (see the package docstring for the map)."""

from __future__ import annotations

from clipper_core.testing.process_pods import ImageSpec, ImageTable

from .resources import RESOURCES, Resource
from .server import FakeKubernetes

__all__ = ["FakeKubernetes", "ImageSpec", "ImageTable", "RESOURCES", "Resource"]
