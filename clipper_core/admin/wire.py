"""The management wire: one attrs value per ``/admin/*`` request and response.

``ClipperConnection`` builds a request value and sends ``to_wire()``; the
management frontend reads the same class with ``from_wire(body)``, hands it
to :class:`~clipper_core.admin.service.AdminService`, and renders what comes
back with :func:`render`; the connection reads the answer back with the
request's ``response_from_wire``.  Field names, JSON types and the error
messages for a malformed body live here once, so the two sides cannot drift.

Request values check JSON types only (a string where a string belongs);
names, input types and limits are the service's rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from ..models import Application, Replica
from .fields import field, labels, text
from .wire_base import CONTAINERLESS, Done, ModelInfo, R, Request, _optional, render
from .wire_config import (
    ExportConfiguration,
    GetSelectionWeights,
    ImportConfiguration,
    ImportSummary,
    SetSelectionPolicy,
    selection_fields,
)

__all__ = ["CONTAINERLESS", "Done", "ExportConfiguration", "GetSelectionWeights",
           "ImportConfiguration", "ImportSummary", "ModelInfo", "R", "REQUESTS", "Request",
           "SetSelectionPolicy", "render", "selection_fields"]


@attrs.frozen(kw_only=True)
class AddApp(Request[Done]):
    """Register an application (``/admin/add_app``)."""

    path: ClassVar[str] = "add_app"
    writes: ClassVar[bool] = True
    name: str
    input_type: str | int
    default_output: str
    latency_slo_micros: int
    #: the model-selection layer (optional: ``single``, no parameters)
    selection_policy: str | None = None
    policy_params: dict[str, Any] | None = None
    confidence_threshold: float | None = None

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> AddApp:
        return cls(name=field(body, "name", str), input_type=field(body, "input_type", (str, int)),
                   default_output=field(body, "default_output", str),
                   latency_slo_micros=field(body, "latency_slo_micros", int),
                   **selection_fields(body))

    def to_wire(self) -> dict[str, Any]:
        # Clipper's four fields alone unless the app names a selection policy.
        return {k: v for k, v in super().to_wire().items() if v is not None}

    def response_from_wire(self, data: Any) -> Done:
        return Done.from_wire(data)


@attrs.frozen(kw_only=True)
class DeleteApp(Request[Done]):
    """Delete an application and its link (``/admin/delete_app``)."""

    path: ClassVar[str] = "delete_app"
    writes: ClassVar[bool] = True
    name: str

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> DeleteApp:
        return cls(name=field(body, "name", str))

    def response_from_wire(self, data: Any) -> Done:
        return Done.from_wire(data)


@attrs.frozen(kw_only=True)
class AddModel(Request[Done]):
    """Register a model version, which becomes current (``/admin/add_model``).

    Clipper's clients send the image as ``container_name`` (``"NO_CONTAINER"``
    for none); ours send ``image``.  Both are read; ``image`` wins.
    """

    path: ClassVar[str] = "add_model"
    writes: ClassVar[bool] = True
    model_name: str
    model_version: str
    input_type: str | int
    image: str | None = None
    labels: tuple[str, ...] = ()
    batch_size: int = -1
    batching_policy: str | None = None

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> AddModel:
        image = field(body, "image", str, default=None)
        if image is None:
            image = field(body, "container_name", str, default=None)
        return cls(model_name=field(body, "model_name", str),
                   model_version=text(body, "model_version"),
                   input_type=field(body, "input_type", (str, int)),
                   image=None if image in ("", CONTAINERLESS) else image,
                   labels=labels(body),
                   batch_size=field(body, "batch_size", int, default=-1),
                   batching_policy=field(body, "batching_policy", str, default=None))

    def response_from_wire(self, data: Any) -> Done:
        return Done.from_wire(data)


@attrs.frozen(kw_only=True)
class DeleteVersionedModel(Request[Done]):
    """Unregister one model version (``/admin/delete_versioned_model``)."""

    path: ClassVar[str] = "delete_versioned_model"
    writes: ClassVar[bool] = True
    model_name: str
    model_version: str

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> DeleteVersionedModel:
        return cls(model_name=field(body, "model_name", str),
                   model_version=text(body, "model_version"))

    def response_from_wire(self, data: Any) -> Done:
        return Done.from_wire(data)


@attrs.frozen(kw_only=True)
class AddModelLinks(Request[Done]):
    """Link an application to a model (``/admin/add_model_links``).  The wire
    carries a list, as Clipper's; an application links exactly one model."""

    path: ClassVar[str] = "add_model_links"
    writes: ClassVar[bool] = True
    app_name: str
    model_names: tuple[str, ...]

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> AddModelLinks:
        return cls(app_name=field(body, "app_name", str),
                   model_names=tuple(field(body, "model_names", list)))

    def response_from_wire(self, data: Any) -> Done:
        return Done.from_wire(data)


@attrs.frozen(kw_only=True)
class DeleteModelLinks(AddModelLinks):
    """Remove an application's link (``/admin/delete_model_links``)."""

    path: ClassVar[str] = "delete_model_links"

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> DeleteModelLinks:
        return cls(app_name=field(body, "app_name", str),
                   model_names=tuple(field(body, "model_names", list)))


@attrs.frozen(kw_only=True)
class SetModelVersion(Request[Done]):
    """Make a registered version current (``/admin/set_model_version``)."""

    path: ClassVar[str] = "set_model_version"
    writes: ClassVar[bool] = True
    model_name: str
    model_version: str

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> SetModelVersion:
        return cls(model_name=field(body, "model_name", str),
                   model_version=text(body, "model_version"))

    def response_from_wire(self, data: Any) -> Done:
        return Done.from_wire(data)


@attrs.frozen(kw_only=True)
class GetAllApplications(Request[list[Any]]):
    """Names, or Application values when ``verbose`` (``/admin/get_all_applications``)."""

    path: ClassVar[str] = "get_all_applications"
    verbose: bool = False

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> GetAllApplications:
        return cls(verbose=field(body, "verbose", bool, default=False))

    def response_from_wire(self, data: Any) -> list[Any]:
        return [Application.from_wire(d) for d in data] if self.verbose else list(data)


@attrs.frozen(kw_only=True)
class GetApplication(Request["Application | None"]):
    """One application, or None (``/admin/get_application``)."""

    path: ClassVar[str] = "get_application"
    name: str

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> GetApplication:
        return cls(name=field(body, "name", str))

    def response_from_wire(self, data: Any) -> Application | None:
        return _optional(Application.from_wire, data)  # type: ignore[no-any-return]


@attrs.frozen(kw_only=True)
class GetLinkedModels(Request[list[str]]):
    """Names of the models linked to an application (``/admin/get_linked_models``)."""

    path: ClassVar[str] = "get_linked_models"
    app_name: str

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> GetLinkedModels:
        return cls(app_name=field(body, "app_name", str))

    def response_from_wire(self, data: Any) -> list[str]:
        return [str(name) for name in data or []]


@attrs.frozen(kw_only=True)
class GetAllModels(Request[list[Any]]):
    """``"name:version"`` strings, or ModelInfo values when ``verbose``."""

    path: ClassVar[str] = "get_all_models"
    verbose: bool = False

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> GetAllModels:
        return cls(verbose=field(body, "verbose", bool, default=False))

    def response_from_wire(self, data: Any) -> list[Any]:
        return [ModelInfo.from_wire(d) for d in data] if self.verbose else list(data)


@attrs.frozen(kw_only=True)
class GetModel(Request["ModelInfo | None"]):
    """One model version, or None (``/admin/get_model``)."""

    path: ClassVar[str] = "get_model"
    model_name: str
    model_version: str

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> GetModel:
        return cls(model_name=field(body, "model_name", str),
                   model_version=text(body, "model_version"))

    def response_from_wire(self, data: Any) -> ModelInfo | None:
        return _optional(ModelInfo.from_wire, data)  # type: ignore[no-any-return]


@attrs.frozen(kw_only=True)
class GetAllContainers(Request[list[Any]]):
    """Replicas the query frontends report, one per (model, version, id):
    ``"name:version:id"`` strings, or Replica values when ``verbose``."""

    path: ClassVar[str] = "get_all_containers"
    verbose: bool = False

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> GetAllContainers:
        return cls(verbose=field(body, "verbose", bool, default=False))

    def response_from_wire(self, data: Any) -> list[Any]:
        return [Replica.from_wire(d) for d in data] if self.verbose else list(data)


@attrs.frozen(kw_only=True)
class GetContainer(Request["Replica | None"]):
    """One replica as the query frontends report it, or None."""

    path: ClassVar[str] = "get_container"
    model_name: str
    model_version: str
    replica_id: str

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> GetContainer:
        return cls(model_name=field(body, "model_name", str),
                   model_version=text(body, "model_version"),
                   replica_id=text(body, "replica_id"))

    def response_from_wire(self, data: Any) -> Replica | None:
        return _optional(Replica.from_wire, data)  # type: ignore[no-any-return]



#: Every ``POST /admin/{path}`` endpoint: path -> request class.
REQUESTS: dict[str, type[Request[Any]]] = {cls.path: cls for cls in (
    AddApp, DeleteApp, AddModel, DeleteVersionedModel, AddModelLinks, DeleteModelLinks,
    SetModelVersion, GetAllApplications, GetApplication, GetLinkedModels, GetAllModels,
    GetModel, GetAllContainers, GetContainer, ExportConfiguration, ImportConfiguration,
    SetSelectionPolicy, GetSelectionWeights)}
