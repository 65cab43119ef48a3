"""Clipper's ``clipper_admin.deployers.mxnet``: clipper-core's MXNet deployer
(``clipper_core.deployers.mxnet``), looked up on first use."""

from ._forward import forwarder

__getattr__, __dir__ = forwarder(__name__, "clipper_core.deployers.mxnet")
