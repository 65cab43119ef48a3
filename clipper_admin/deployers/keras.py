"""Clipper's ``clipper_admin.deployers.keras``: clipper-core's Keras deployer
(``clipper_core.deployers.keras``), looked up on first use."""

from ._forward import forwarder

__getattr__, __dir__ = forwarder(__name__, "clipper_core.deployers.keras")
