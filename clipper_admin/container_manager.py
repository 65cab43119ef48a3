"""Clipper's ``clipper_admin.container_manager``: what a container manager is.

Clipper's abstract ``ContainerManager`` class is clipper-core's
:class:`~clipper_core.interfaces.ContainerManager` Protocol; a manager is a
plugin (see the plugin author guide), not a subclass.
"""

from __future__ import annotations

from clipper_core.admin.wire import CONTAINERLESS as CONTAINERLESS_MODEL_IMAGE
from clipper_core.interfaces import ContainerManager

#: Default ports, as Clipper names them.
CLIPPER_QUERY_FRONTEND_PORT = 1337
CLIPPER_MANAGEMENT_FRONTEND_PORT = 1338
CLIPPER_INTERNAL_RPC_PORT = 7000
CLIPPER_INTERNAL_REDIS_PORT = 6379

__all__ = ["CLIPPER_INTERNAL_REDIS_PORT", "CLIPPER_INTERNAL_RPC_PORT",
           "CLIPPER_MANAGEMENT_FRONTEND_PORT", "CLIPPER_QUERY_FRONTEND_PORT",
           "CONTAINERLESS_MODEL_IMAGE", "ContainerManager"]
