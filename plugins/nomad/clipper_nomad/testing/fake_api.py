"""The fake agent's public names, for imports written before it was split into
modules (see the package docstring for the map)."""

from __future__ import annotations

from clipper_core.testing.process_pods import ImageSpec, ImageTable

from .allocations import Allocation, TaskRun
from .server import FakeNomad

__all__ = ["Allocation", "FakeNomad", "ImageSpec", "ImageTable", "TaskRun"]
