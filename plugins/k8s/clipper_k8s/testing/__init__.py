"""Test support for clipper-k8s: a fake Kubernetes API server that runs pods
as local processes (:class:`FakeKubernetes`), and what an image means
locally (:class:`ImageSpec`, :class:`ImageTable`).

Test support, not product code: nothing in the plugin imports it.
"""

from __future__ import annotations

from clipper_core.testing.process_pods import ImageSpec, ImageTable

from .fake_api import FakeKubernetes

__all__ = ["FakeKubernetes", "ImageSpec", "ImageTable"]
