"""Test support for clipper-nomad: a fake Nomad agent that runs allocations
as local processes (:class:`FakeNomad`), and what an image means locally
(:class:`ImageSpec`, :class:`ImageTable`).

Test support, not product code: nothing in the plugin imports it.
"""

from __future__ import annotations

from clipper_core.testing.process_pods import ImageSpec, ImageTable

from .fake_api import FakeNomad

__all__ = ["FakeNomad", "ImageSpec", "ImageTable"]
