"""Building the plugin manager and looking backends up by name.

The core's own backends (memory and SQLite stores, the batching policies) are
plugins registered exactly like third-party ones (:data:`DEFAULT_PLUGINS`);
installed distributions announce theirs through the ``clipper`` entry-point
group.  ``CLIPPER_PLUGINS`` (comma-separated entry-point names; empty = none)
limits which entry points load.  ``CLIPPER_TRACE_HOOKS=1`` logs every hook call.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import logging
import os
from collections.abc import Callable
from typing import Any

import attrs
import pluggy
from pluggy import HookCaller

from . import hookspecs
from .errors import PluginError

log = logging.getLogger("clipper.plugins")

ENTRY_POINT_GROUP = "clipper"

DEFAULT_PLUGINS = (
    "clipper_core.stores.memory",
    "clipper_core.stores.sqlite",
    "clipper_core.stores.redis",
    "clipper_core.batching",
    "clipper_core.selection",
)

KINDS = ("container_managers", "state_stores", "registries", "batching_policies",
         "selection_policies")


@attrs.frozen(kw_only=True)
class Backend:
    """One backend offered by one plugin."""

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str


@attrs.frozen(kw_only=True)
class PluginInfo:
    """What ``clipper plugins`` and ``/admin/plugins`` show."""

    name: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]
    builtin: bool

    def to_wire(self) -> dict[str, Any]:
        return attrs.asdict(self, value_serializer=lambda _i, _a, v: list(v)
                            if isinstance(v, tuple) else v)


class ClipperPluginManager(pluggy.PluginManager):
    """A pluggy manager that remembers which distribution each plugin came from."""

    def __init__(self) -> None:
        super().__init__("clipper")
        self.distributions: dict[str, importlib.metadata.Distribution] = {}


def build_plugin_manager(*, load_entry_points: bool = True,
                         only: list[str] | None = None) -> ClipperPluginManager:
    """Return a new plugin manager with the built-in plugins and, unless told
    not to, every installed ``clipper`` entry point.

    :param only: entry-point names to load; default from ``CLIPPER_PLUGINS``
        (unset = all).  Raises :class:`PluginError` naming the plugin and its
        distribution when one cannot be imported or implements a hook wrongly.
    """
    pm = ClipperPluginManager()
    pm.add_hookspecs(hookspecs)
    for modname in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(modname), name=modname)
    if load_entry_points:
        if only is None and "CLIPPER_PLUGINS" in os.environ:
            only = [x.strip() for x in os.environ["CLIPPER_PLUGINS"].split(",") if x.strip()]
        _load_entry_points(pm, only)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or repr(exc.plugin)
        dist = pm.distributions.get(name)
        dist_name = dist.name if dist is not None else (
            "clipper-core" if name in DEFAULT_PLUGINS else "unknown distribution")
        raise PluginError(f"Plugin {name!r} from distribution {dist_name!r} implements an "
                          f"unknown hook: {exc}", plugin=name, distribution=dist_name) from exc
    if os.environ.get("CLIPPER_TRACE_HOOKS"):
        pm.trace.root.setwriter(log.info)
        pm.enable_tracing()
    return pm


def _load_entry_points(pm: ClipperPluginManager, only: list[str] | None) -> None:
    seen: set[str] = set()
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in seen or (only is not None and ep.name not in only):
            continue
        seen.add(ep.name)
        dist = ep.dist.name if ep.dist is not None else "unknown distribution"
        try:
            plugin = ep.load()
        except Exception as exc:
            raise PluginError(
                f"Plugin {ep.name!r} from distribution {dist!r} failed to load "
                f"({ep.value}): {type(exc).__name__}: {exc}", plugin=ep.name,
                distribution=dist) from exc
        try:
            pm.register(plugin, name=ep.name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            raise PluginError(
                f"Plugin {ep.name!r} from distribution {dist!r} is incompatible with "
                f"this clipper-core: {exc}", plugin=ep.name, distribution=dist) from exc
        if ep.dist is not None:
            pm.distributions[ep.name] = ep.dist


@functools.cache
def get_plugin_manager() -> ClipperPluginManager:
    """The process-wide plugin manager, built on first use (never at import)."""
    return build_plugin_manager()


def list_plugins(pm: pluggy.PluginManager | None = None) -> list[PluginInfo]:
    """Every loaded plugin with its distribution, version and hooks."""
    pm = pm or get_plugin_manager()
    dists = getattr(pm, "distributions", {})
    out = []
    for name, plugin in pm.list_name_plugin():
        hooks = tuple(sorted(h.name for h in pm.get_hookcallers(plugin) or ()))
        dist = dists.get(name)
        builtin = name in DEFAULT_PLUGINS
        if dist is None and builtin:
            dist_name, version = "clipper-core", _version("clipper-core")
        elif dist is not None:
            dist_name, version = dist.name, dist.version
        else:
            dist_name, version = None, None
        out.append(PluginInfo(name=name, distribution=dist_name, version=version,
                              hooks=hooks, builtin=builtin))
    return out


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def backends(kind: str, pm: pluggy.PluginManager | None = None) -> dict[str, Backend]:
    """All backends of ``kind`` (one of :data:`KINDS`) by name.

    The same name offered by two plugins is a :class:`PluginError` naming both.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown backend kind {kind!r}; kinds: {', '.join(KINDS)}")
    pm = pm or get_plugin_manager()
    found: dict[str, Backend] = {}
    for plugin, caller in _callers_by_plugin(pm, f"register_{kind}"):
        def register(name: str, factory: Callable[..., Any], _plugin: str = plugin) -> None:
            if name in found:
                raise PluginError(
                    f"{_label(kind)} {name!r} is offered by two plugins: "
                    f"{found[name].plugin!r} and {_plugin!r}; uninstall one or limit "
                    "CLIPPER_PLUGINS", name=name, plugins=(found[name].plugin, _plugin))
            found[name] = Backend(kind=kind, name=name, factory=factory, plugin=_plugin)
        caller(register=register)
    return found


def _callers_by_plugin(pm: pluggy.PluginManager, hook: str) -> list[tuple[str, HookCaller]]:
    """For each plugin implementing ``hook`` (in registration order), its name
    and a hook caller that runs only that plugin's implementation.

    The callers come from :meth:`pluggy.PluginManager.subset_hook_caller`, so a
    call goes through the plugin manager like any other: ``CLIPPER_TRACE_HOOKS``
    tracing and hook-call monitoring see it.  Calling plugins one at a time is
    what lets the core name the plugin behind a backend and keep one failing
    event hook from stopping the others.
    """
    implementers: dict[int, object] = {}
    for impl in getattr(pm.hook, hook).get_hookimpls():
        implementers.setdefault(id(impl.plugin), impl.plugin)
    out = []
    for plugin in implementers.values():
        others = [p for p in implementers.values() if p is not plugin]
        caller = pm.subset_hook_caller(hook, remove_plugins=others)
        stray = sorted({i.plugin_name for i in caller.get_hookimpls() if i.plugin is not plugin})
        if stray:
            # pluggy only leaves out plugins having an attribute named like the
            # hook, so an implementation renamed with ``specname`` stays in.
            raise PluginError(
                f"Plugin {stray[0]!r} implements {hook} under another name (specname); "
                "clipper-core calls each plugin's hook alone and needs the hook's own name",
                plugin=stray[0], hook=hook)
        out.append((pm.get_name(plugin) or repr(plugin), caller))
    return out


def _label(kind: str) -> str:
    """``"batching_policies"`` -> ``"batching policy"``: one backend of ``kind``."""
    singular = kind[:-3] + "y" if kind.endswith("ies") else kind[:-1]
    return singular.replace("_", " ")


def get_backend(kind: str, name: str, pm: pluggy.PluginManager | None = None) -> Backend:
    """The backend of ``kind`` called ``name``; an unknown name lists the known ones."""
    found = backends(kind, pm)
    try:
        return found[name]
    except KeyError:
        label = _label(kind)
        known = ", ".join(sorted(found)) or "none"
        raise PluginError(f"Unknown {label} {name!r}. Installed: {known}", name=name,
                          known=sorted(found)) from None


def get_container_manager(name: str, **options: Any) -> Any:
    """Build the container manager called ``name`` with ``options``."""
    return get_backend("container_managers", name).factory(**options)


def open_store(url: str, pm: pluggy.PluginManager | None = None) -> Any:
    """Open the state store for ``url``; the scheme picks the backend."""
    scheme = url.split("://", 1)[0] if "://" in url else url
    return get_backend("state_stores", scheme, pm).factory(url)


def notify(event: str, *, pm: pluggy.PluginManager | None = None, **kwargs: Any) -> None:
    """Fire the event hook ``event`` with ``kwargs`` (the hook's arguments).

    Each plugin's implementation is called on its own, through the plugin
    manager; one that raises is logged and never propagated, and the others
    still run.  ``pm`` defaults to the process-wide manager.
    """
    pm = pm or get_plugin_manager()
    for plugin, caller in _callers_by_plugin(pm, event):
        try:
            caller(**kwargs)
        except Exception:
            log.exception("plugin %r failed in %s", plugin, event)
