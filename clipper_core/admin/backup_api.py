"""The backup methods of ``ClipperConnection``: export and import of the
whole configuration (:mod:`clipper_core.admin.backup`).

:class:`BackupAPI` is a base class of
:class:`~clipper_core.connection.ClipperConnection`; it uses the
connection's ``_call`` (from :class:`~clipper_core.admin.replica_api.ReplicaAPI`).
"""

from __future__ import annotations

from typing import Any

from .backup import restore_replica_counts
from .replica_api import requires_connection
from .wire import ExportConfiguration, ImportConfiguration, Request


class BackupAPI:
    """Export the cluster's configuration; import one (restoring replica counts)."""

    def _call(self, request: Request[Any]) -> Any:  # pragma: no cover - ReplicaAPI's
        raise NotImplementedError

    @requires_connection
    def export_configuration(self) -> dict[str, Any]:
        """The whole configuration (applications, links, model versions, the
        current ones, replica counts) as JSON data; see
        :mod:`clipper_core.admin.backup`."""
        data: dict[str, Any] = self._call(ExportConfiguration())
        return data

    @requires_connection
    def import_configuration(self, configuration: dict[str, Any],
                             restore_replicas: bool = True) -> dict[str, Any]:
        """Add an exported configuration to the cluster (what exists and is
        equal is kept; a contradiction is a ConflictError); with
        ``restore_replicas``, scale each model version with an image that
        has fewer replicas than the export records up to that count.
        Returns ``{"success": true, "added": [...], "present": [...]}``."""
        summary = self._call(ImportConfiguration(configuration=dict(configuration)))
        if restore_replicas:
            restore_replica_counts(self, configuration)
        return summary.to_wire()  # type: ignore[no-any-return]
