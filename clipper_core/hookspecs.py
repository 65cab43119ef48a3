"""Every hook clipper-core calls, in one flat file.

Backends are announced with ``register_*`` hooks, which receive a
``register(name, factory)`` callback: one plugin can offer several backends,
and the core knows which plugin offered each (see ``plugins.py``).  Event
hooks are named for the moment they fire and must return quickly; they run in
the process where the event happens and an exception in one is logged, never
propagated.

Every hook is documented in ``docs/plugins.md`` and tested in
``tests/test_hookspecs.py``; ``tests/test_docs.py`` fails when one is not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

from .models import Application, ModelVersion, Replica

hookspec = pluggy.HookspecMarker("clipper")
hookimpl = pluggy.HookimplMarker("clipper")

Register = Callable[[str, Callable[..., Any]], None]

# ---------------------------------------------------------------------------
# Discovery: announce backends by name
# ---------------------------------------------------------------------------


@hookspec
def register_container_managers(register: Register) -> None:
    """Announce container managers.

    :param register: call ``register(name, cls)`` once per manager; ``cls(**options)``
        must return an object implementing
        :class:`clipper_core.interfaces.ContainerManager`.
    :returns: nothing.
    Called once when the plugin manager is built, before any manager is
    looked up by name (``get_container_manager("docker")``).
    """


@hookspec
def register_state_stores(register: Register) -> None:
    """Announce state stores.

    :param register: call ``register(scheme, factory)``; ``factory(url: str)``
        returns a :class:`clipper_core.interfaces.StateStore` for URLs of the
        form ``<scheme>://...``.
    :returns: nothing.
    Called once when the plugin manager is built; stores are looked up by
    the scheme of a store URL.
    """


@hookspec
def register_registries(register: Register) -> None:
    """Announce model registries (where built models are stored).

    :param register: call ``register(name, cls)``; ``cls(**options)`` returns a
        :class:`clipper_core.interfaces.ModelRegistry`.
    :returns: nothing.
    Called once when the plugin manager is built.
    """


@hookspec
def register_batching_policies(register: Register) -> None:
    """Announce batching policies.

    :param register: call ``register(name, factory)``; ``factory(model, **options)``
        returns a :class:`clipper_core.interfaces.BatchingPolicy` for one model
        version in one query frontend.
    :returns: nothing.
    Called once per query frontend process at start-up.  A model picks its
    policy by name (``ModelVersion.batching_policy``), defaulting to
    ``"aimd"`` for ``batch_size=-1`` and ``"fixed"`` otherwise.
    """


@hookspec
def register_selection_policies(register: Register) -> None:
    """Announce model-selection policies.

    :param register: call ``register(name, factory)``; ``factory(models, params)``
        (the application's linked model names, primary first, and its
        ``policy_params`` dict) returns a
        :class:`clipper_core.interfaces.SelectionPolicy`, or raises
        :class:`clipper_core.errors.ValidationError` for bad parameters.
    :returns: nothing.
    Called in the management frontend to check an application's policy and
    parameters, and once per query frontend at start-up.  An application
    picks its policy by name (``Application.selection_policy``), defaulting
    to ``"single"``.
    """


# ---------------------------------------------------------------------------
# Events: the cluster's configuration changed
# ---------------------------------------------------------------------------


@hookspec
def clipper_application_registered(application: Application) -> None:
    """An application was registered.

    :param application: the :class:`clipper_core.models.Application`.
    :returns: nothing (return values are ignored).
    Called in the management frontend after the store accepted the app.
    """


@hookspec
def clipper_application_deleted(name: str) -> None:
    """An application was deleted.

    :param name: the application's name.
    :returns: nothing.
    Called in the management frontend after the store removed it.
    """


@hookspec
def clipper_model_registered(model: ModelVersion) -> None:
    """A model version was registered.

    :param model: the :class:`clipper_core.models.ModelVersion`.
    :returns: nothing.
    Called in the management frontend after the store accepted it.
    """


@hookspec
def clipper_model_deployed(model: ModelVersion, num_replicas: int) -> None:
    """Replicas of a model version were started by a container manager.

    :param model: the :class:`clipper_core.models.ModelVersion`.
    :param num_replicas: how many replicas were asked for.
    :returns: nothing.
    Called in the process that called ``ClipperConnection.deploy_model``.
    """


# ---------------------------------------------------------------------------
# Events: replicas come and go
# ---------------------------------------------------------------------------


@hookspec
def clipper_replica_connected(replica: Replica) -> None:
    """A model replica connected to a query frontend and sent its metadata.

    :param replica: the :class:`clipper_core.models.Replica`.
    :returns: nothing.
    Called in the query frontend's event loop: do not block.
    """


@hookspec
def clipper_replica_lost(replica: Replica, reason: str) -> None:
    """A query frontend dropped a replica.

    :param replica: the :class:`clipper_core.models.Replica`.
    :param reason: why, e.g. ``"heartbeat timeout"``.
    :returns: nothing.
    Called in the query frontend's event loop: do not block.
    """
