"""Clipper's ``clipper_admin.deployers.onnx``: clipper-core's ONNX deployer
(``clipper_core.deployers.onnx``), looked up on first use."""

from ._forward import forwarder

__getattr__, __dir__ = forwarder(__name__, "clipper_core.deployers.onnx")
