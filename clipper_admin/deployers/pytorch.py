"""Clipper's ``clipper_admin.deployers.pytorch``: clipper-core's PyTorch deployer
(``clipper_core.deployers.pytorch``), looked up on first use."""

from ._forward import forwarder

__getattr__, __dir__ = forwarder(__name__, "clipper_core.deployers.pytorch")
