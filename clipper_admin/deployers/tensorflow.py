"""Clipper's ``clipper_admin.deployers.tensorflow``: clipper-core's TensorFlow deployer
(``clipper_core.deployers.tensorflow``), looked up on first use."""

from ._forward import forwarder

__getattr__, __dir__ = forwarder(__name__, "clipper_core.deployers.tensorflow")
