"""Clipper's ``clipper_admin.deployers.deployer_utils``: the helpers shared by the deployers
(``clipper_core.deployers.deployer_utils``), looked up on first use."""

from ._forward import forwarder

__getattr__, __dir__ = forwarder(__name__, "clipper_core.deployers.deployer_utils")
