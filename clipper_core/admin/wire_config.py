"""The management wire, continued: the requests of whole-configuration export
and import and of the selection layer (see :mod:`clipper_core.admin.wire`,
which lists every request in its ``REQUESTS`` table)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from .fields import field
from .wire_base import Done, Request


@attrs.frozen(kw_only=True)
class ExportConfiguration(Request[dict[str, Any]]):
    """The whole configuration as JSON data (``/admin/export_configuration``;
    :mod:`clipper_core.admin.backup`)."""

    path: ClassVar[str] = "export_configuration"

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> ExportConfiguration:
        return cls()


@attrs.frozen(kw_only=True)
class ImportConfiguration(Request[Any]):
    """Add an exported configuration to the store (``/admin/import_configuration``)."""

    path: ClassVar[str] = "import_configuration"
    writes: ClassVar[bool] = True
    configuration: dict[str, Any]

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> ImportConfiguration:
        return cls(configuration=field(body, "configuration", dict))

    def response_from_wire(self, data: Any) -> Any:
        return ImportSummary.from_wire(data)


@attrs.frozen(kw_only=True)
class ImportSummary:
    """What :func:`import_configuration` did: names added and already present."""

    added: tuple[str, ...] = ()
    present: tuple[str, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        return {"success": True, "added": list(self.added), "present": list(self.present)}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> ImportSummary:
        return cls(added=tuple(data.get("added") or ()), present=tuple(data.get("present") or ()))


def selection_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """The optional selection fields of a request body, JSON types checked."""
    return {"selection_policy": field(body, "selection_policy", str, default=None),
            "policy_params": field(body, "policy_params", dict, default=None),
            "confidence_threshold": field(body, "confidence_threshold", (int, float),
                                          default=None)}


@attrs.frozen(kw_only=True)
class SetSelectionPolicy(Request[Done]):
    """Change an application's selection policy (``/admin/set_selection_policy``);
    parameters and threshold left out keep their values."""

    path: ClassVar[str] = "set_selection_policy"
    writes: ClassVar[bool] = True
    app_name: str
    selection_policy: str | None = None
    policy_params: dict[str, Any] | None = None
    confidence_threshold: float | None = None

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> SetSelectionPolicy:
        return cls(app_name=field(body, "app_name", str), **selection_fields(body))

    def response_from_wire(self, data: Any) -> Done:
        return Done.from_wire(data)


@attrs.frozen(kw_only=True)
class GetSelectionWeights(Request[dict[str, Any]]):
    """An application's current selection weights by model, from its stored
    policy state (``/admin/get_selection_weights``)."""

    path: ClassVar[str] = "get_selection_weights"
    app_name: str

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> GetSelectionWeights:
        return cls(app_name=field(body, "app_name", str))
