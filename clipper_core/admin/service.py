"""The admin domain: Clipper's management rules over a state store.

:class:`AdminService` is what the management frontend's ``/admin/*``
handlers call: each method takes a request value of
:mod:`clipper_core.admin.wire` and returns a response value (or raises a
:class:`~clipper_core.errors.ClipperException` that the frontend maps to a
status).  It holds every rule: which names are valid, an application links
at most one model of its input type, a new or current version keeps the
input type of the apps its model is linked to, and the replica merge.

Lookups never validate names: a name that cannot exist is simply not found
(Clipper validates model names only where it builds or deploys).

Concurrency: the store's writes are atomic and refuse duplicates and
dangling links by themselves; the rules that read several records before
one write run inside the store's guard (:mod:`clipper_core.admin.guards`),
a lock shared by every management process on that store.

Read-your-writes: a configuration write returns once every live query
frontend serves it (:mod:`clipper_core.admin.applied`), or raises
FrontendLagError after ``apply_timeout_s`` with the write done.
"""

from __future__ import annotations

import re
import time
from typing import Any

from ..errors import ConflictError, NotFoundError, PluginError, ValidationError
from ..interfaces import StateStore
from ..models import Application, InputType, ModelVersion, Replica
from ..plugins import get_backend, notify
from . import selection
from .applied import apply_timeout_from_env, wait_applied
from .backup import export_configuration, import_configuration
from .guards import Guard, guard_for
from .inputs import check_image_reference
from .replicas import merge_replicas
from .wire import (
    AddApp,
    AddModel,
    AddModelLinks,
    DeleteApp,
    DeleteModelLinks,
    DeleteVersionedModel,
    Done,
    ExportConfiguration,
    GetAllApplications,
    GetAllContainers,
    GetAllModels,
    GetApplication,
    GetContainer,
    GetLinkedModels,
    GetModel,
    GetSelectionWeights,
    ImportConfiguration,
    ImportSummary,
    ModelInfo,
    Request,
    SetModelVersion,
    SetSelectionPolicy,
)

#: Characters an application name may use: those that stand unescaped in
#: the path ``/{name}/predict`` (RFC 3986 "unreserved").
_APP_NAME = re.compile(r"^[A-Za-z0-9._~-]{1,255}$")
_APP_NAME_RULE = ("1 to 255 letters, digits, '-', '_', '.' or '~' (it is the URL path "
                  "segment of /{name}/predict)")


def validate_app_name(value: object) -> str:
    """Return ``value`` if it can name an application, else raise ValidationError.

    Clipper accepts any string here (``my_app``, ``App1``); only names that
    could never be queried at ``POST /{name}/predict`` are refused.
    """
    if not isinstance(value, str):
        raise ValidationError(
            f"Invalid application name {value!r}: must be a string, got {type(value).__name__}",
            argument="application name", value=value)
    if not _APP_NAME.match(value) or value in (".", ".."):
        raise ValidationError(f"Invalid application name {value!r}: must be {_APP_NAME_RULE}",
                              argument="application name", value=value)
    return value


def new_application(name: object, input_type: object, default_output: object,
                    slo_micros: object) -> Application:
    """Validate the arguments of ``register_application`` and build the value."""
    if not isinstance(default_output, str):
        raise ValidationError("default_output must be a string",
                              argument="default_output", value=default_output)
    return Application(name=validate_app_name(name), input_type=InputType.parse(input_type),
                       default_output=default_output,
                       latency_slo_micros=_slo(slo_micros))


def _slo(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValidationError(f"Invalid slo_micros {value!r}: must be a positive integer",
                              argument="slo_micros", value=value)
    return value


def check_batching_policy(name: str | None) -> None:
    """ValidationError unless ``name`` is None or an installed batching policy."""
    if name is None:
        return
    try:
        get_backend("batching_policies", name)
    except PluginError as exc:
        raise ValidationError(str(exc), argument="batching_policy", value=name) from None


class AdminService:
    """Clipper's management operations on one state store.

    :param store: the cluster's state store (not closed by the service).
    :param guard: the lock for check-then-write rules; by default the one
        :func:`~clipper_core.admin.guards.guard_for` picks for the store.
    :param apply_timeout_s: how long a configuration write waits for the
        query frontends to serve it (0: not at all); by default
        ``CLIPPER_APPLY_TIMEOUT_S`` or 5 s.
    """

    def __init__(self, store: StateStore, *, guard: Guard | None = None,
                 apply_timeout_s: float | None = None) -> None:
        self.store = store
        self.guard = guard if guard is not None else guard_for(store)
        self.apply_timeout_s = (apply_timeout_from_env() if apply_timeout_s is None
                                else apply_timeout_s)

    def handle(self, request: Request[Any]) -> Any:
        """Run ``request`` by its path (``add_app`` -> :meth:`add_app`)."""
        return getattr(self, request.path)(request)

    # -- applications ------------------------------------------------------
    def add_app(self, req: AddApp) -> Done:
        app = new_application(req.name, req.input_type, req.default_output,
                              req.latency_slo_micros)
        app = selection.with_policy(app, req.selection_policy, req.policy_params,
                                    req.confidence_threshold)
        self.store.add_application(app)  # atomic: ConflictError if the name exists
        notify("clipper_application_registered", application=app)
        self._applied()
        return Done(application=app)

    def delete_app(self, req: DeleteApp) -> Done:
        self.store.delete_application(req.name)  # NotFoundError if absent
        notify("clipper_application_deleted", name=req.name)
        self._applied()
        return Done()

    def get_all_applications(self, req: GetAllApplications) -> list[Any]:
        apps = sorted(self.store.list_applications(), key=lambda a: a.name)
        return list(apps) if req.verbose else [a.name for a in apps]

    def get_application(self, req: GetApplication) -> Application | None:
        return self.store.get_application(req.name)

    def get_linked_models(self, req: GetLinkedModels) -> list[str]:
        app = self._app(req.app_name)
        return list(app.linked_models)

    def set_selection_policy(self, req: SetSelectionPolicy) -> Done:
        with self.guard():
            app = selection.with_policy(self._app(req.app_name), req.selection_policy,
                                        req.policy_params, req.confidence_threshold)
            self.store.set_selection(app)
        self._applied()
        return Done(application=app)

    def get_selection_weights(self, req: GetSelectionWeights) -> dict[str, Any]:
        return selection.current_weights(self.store, self._app(req.app_name))

    # -- models ------------------------------------------------------------
    def add_model(self, req: AddModel) -> Done:
        model = ModelVersion.create(req.model_name, req.model_version, req.input_type,
                                    image=req.image, labels=list(req.labels),
                                    batch_size=req.batch_size,
                                    batching_policy=req.batching_policy)
        if model.image is not None:
            check_image_reference(model.image)
        check_batching_policy(model.batching_policy)
        with self.guard():
            if self.store.get_model(model.name, model.version) is not None:
                raise ConflictError(f"Model with name '{model.name}' and version "
                                    f"'{model.version}' already exists",
                                    name=model.name, version=model.version)
            self._check_linked_apps(model)
            self.store.add_model(model, make_current=True)
        notify("clipper_model_registered", model=model)
        self._applied()
        return Done(model=ModelInfo(model=model, is_current_version=True))

    def delete_versioned_model(self, req: DeleteVersionedModel) -> Done:
        self.store.delete_model_version(req.model_name, req.model_version)
        self._applied()
        return Done()

    def set_model_version(self, req: SetModelVersion) -> Done:
        with self.guard():
            versions = self._versions(req.model_name)
            model = next((m for m in versions if m.version == req.model_version), None)
            if model is not None:
                self._check_linked_apps(model)
            # NotFoundError from the store when the version is not registered
            self.store.set_current_version(req.model_name, req.model_version)
        self._applied()
        return Done()

    def get_all_models(self, req: GetAllModels) -> list[Any]:
        models = self.store.list_models()
        if not req.verbose:
            return [f"{m.name}:{m.version}" for m in models]
        currents: dict[str, str | None] = {}
        for m in models:
            if m.name not in currents:
                currents[m.name] = self.store.get_current_version(m.name)
        return [ModelInfo(model=m, is_current_version=currents[m.name] == m.version)
                for m in models]

    def get_model(self, req: GetModel) -> ModelInfo | None:
        model = self.store.get_model(req.model_name, req.model_version)
        if model is None:
            return None
        current = self.store.get_current_version(model.name)
        return ModelInfo(model=model, is_current_version=current == model.version)

    # -- links -------------------------------------------------------------
    def add_model_links(self, req: AddModelLinks) -> Done:
        model_name = self._one_model(req)
        with self.guard():
            app = self._app(req.app_name)
            versions = self._versions(model_name)
            if model_name in app.linked_models:
                return Done()
            new = selection.linked(app, model_name)  # ConflictError on 'single'
            current = self.store.get_current_version(model_name)
            model = next((m for m in versions if m.version == current), versions[-1])
            if model.input_type != app.input_type:
                raise ValidationError(
                    f"Model '{model_name}' has input type {model.input_type.label} but "
                    f"application '{app.name}' has input type {app.input_type.label}; they "
                    "must be the same", app_name=app.name, model_name=model_name)
            if new.selects:
                self.store.set_selection(new)
            else:
                self.store.set_link(app.name, model_name)
        self._applied()
        return Done()

    def delete_model_links(self, req: DeleteModelLinks) -> Done:
        model_name = self._one_model(req)
        with self.guard():
            app = self._app(req.app_name)
            if model_name not in app.linked_models:
                raise NotFoundError(
                    f"Model '{model_name}' is not linked to application '{app.name}'",
                    app_name=app.name, model_name=model_name)
            if app.selects:
                self.store.set_selection(selection.unlinked(app, model_name))
            else:
                self.store.set_link(app.name, None)
        self._applied()
        return Done()

    # -- replicas ----------------------------------------------------------
    def _replicas(self) -> list[Replica]:
        views = merge_replicas(self.store.list_replicas(), now=time.time())
        return [v.record for v in views if v.record is not None]

    def get_all_containers(self, req: GetAllContainers) -> list[Any]:
        replicas = self._replicas()
        if req.verbose:
            return list(replicas)
        return [f"{r.model_name}:{r.model_version}:{r.replica_id}" for r in replicas]

    def get_container(self, req: GetContainer) -> Replica | None:
        key = (req.model_name, req.model_version, req.replica_id)
        return next((r for r in self._replicas()
                     if (r.model_name, r.model_version, r.replica_id) == key), None)

    # -- the whole configuration (clipper_core.admin.backup) ----------------
    def export_configuration(self, req: ExportConfiguration) -> dict[str, Any]:
        return export_configuration(self.store)

    def import_configuration(self, req: ImportConfiguration) -> ImportSummary:
        with self.guard():
            return import_configuration(self.store, req.configuration)

    # -- helpers -----------------------------------------------------------
    def _applied(self) -> None:
        """Read-your-writes: return once every live query frontend serves the
        store's revision (FrontendLagError after ``apply_timeout_s``)."""
        if self.apply_timeout_s > 0:
            wait_applied(self.store, self.store.revision(), timeout_s=self.apply_timeout_s)

    def _app(self, name: str) -> Application:
        app = self.store.get_application(name)
        if app is None:
            raise NotFoundError(f"No application with name '{name}' exists", name=name)
        return app

    def _versions(self, name: str) -> list[ModelVersion]:
        versions = [m for m in self.store.list_models() if m.name == name]
        if not versions:
            raise NotFoundError(f"No model with name '{name}' exists", name=name)
        return versions

    @staticmethod
    def _one_model(req: AddModelLinks) -> str:
        names = req.model_names
        if len(names) != 1 or not isinstance(names[0], str):
            raise ValidationError(
                f"An application links exactly one model; got {len(names)} model names",
                argument="model_names", value=list(names))
        return names[0]

    def _check_linked_apps(self, model: ModelVersion) -> None:
        """A version about to serve ``model.name`` keeps its linked apps' input type."""
        for app in self.store.list_applications():
            if model.name in app.linked_models and app.input_type != model.input_type:
                raise ValidationError(
                    f"Model '{model.name}' is linked to application '{app.name}' with input "
                    f"type {app.input_type.label}; version '{model.version}' has input type "
                    f"{model.input_type.label}, which is not compatible",
                    app_name=app.name, model_name=model.name, version=model.version)
