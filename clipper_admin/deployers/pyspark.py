"""Clipper's ``clipper_admin.deployers.pyspark``: clipper-core's PySpark deployer
(``clipper_core.deployers.pyspark``), looked up on first use."""

from ._forward import forwarder

__getattr__, __dir__ = forwarder(__name__, "clipper_core.deployers.pyspark")
