"""The management wire's building blocks: the response values and the
request base class (:mod:`clipper_core.admin.wire` has the requests)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar

import attrs

from ..models import Application, ModelVersion

R = TypeVar("R")

#: What Clipper's admin client sends as ``container_name`` for a model without one.
CONTAINERLESS = "NO_CONTAINER"


# ---------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------

@attrs.frozen(kw_only=True)
class Done:
    """A write succeeded: ``{"success": true}`` plus what was stored, if any."""

    application: Application | None = None
    model: ModelInfo | None = None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"success": True}
        if self.application is not None:
            out["application"] = self.application.to_wire()
        if self.model is not None:
            out["model"] = self.model.to_wire()
        return out

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Done:
        app, model = data.get("application"), data.get("model")
        return cls(application=Application.from_wire(app) if app else None,
                   model=ModelInfo.from_wire(model) if model else None)


@attrs.frozen(kw_only=True)
class ModelInfo:
    """A registered model version and whether it is the current one."""

    model: ModelVersion
    is_current_version: bool

    def to_wire(self) -> dict[str, Any]:
        return self.model.to_wire(is_current_version=self.is_current_version)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> ModelInfo:
        return cls(model=ModelVersion.from_wire(dict(data)),
                   is_current_version=bool(data.get("is_current_version", False)))


def render(value: object) -> Any:
    """A response value (or a list of them, or a plain JSON value) as JSON data."""
    if isinstance(value, list):
        return [render(v) for v in value]
    to_wire = getattr(value, "to_wire", None)
    return to_wire() if callable(to_wire) else value


def _optional(parse: Any, data: Any) -> Any:
    return None if data is None else parse(data)


# ---------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------

class Request(Generic[R]):
    """Base of every request value: its path under ``/admin/`` and whether
    it changes the store.  Subclasses are frozen attrs classes."""

    path: ClassVar[str]
    writes: ClassVar[bool] = False

    def to_wire(self) -> dict[str, Any]:
        """The JSON body ``ClipperConnection`` sends."""
        return attrs.asdict(self, recurse=False,  # type: ignore[arg-type]
                            value_serializer=lambda _i, _a, v: list(v)
                            if isinstance(v, tuple) else v)

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> Request[R]:  # pragma: no cover
        raise NotImplementedError

    def response_from_wire(self, data: Any) -> R:
        """The JSON answer to this request as its response value."""
        return data  # type: ignore[no-any-return]
