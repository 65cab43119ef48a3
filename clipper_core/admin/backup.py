"""The whole configuration of a cluster as one JSON document: export, import, restore.

:func:`export_configuration` reads applications (with their links), model
versions (with which is current) and the replicas the query frontends
report per model version; :func:`import_configuration` writes them into a
store, adding what is missing and refusing what contradicts it.  The
management frontend keeps a backup file of the export up to date after
every configuration change (``--backup PATH``, written 0600), and the
admin API serves both (``/admin/export_configuration``,
``/admin/import_configuration``; ``ClipperConnection.export_configuration``
and ``import_configuration``).

One command restores a cluster from its backup::

    python -m clipper_core.admin.backup restore BACKUP.json --admin HOST:PORT
    python -m clipper_core.admin.backup restore BACKUP.json --store URL

(through a running management frontend, with ``CLIPPER_ADMIN_TOKEN`` and
``--ca-bundle`` as needed, or straight into a store).  The format::

    {"format": 1, "revision": the store's configuration revision,
     "applications": [app.to_wire()...],
     "models": [model.to_wire(is_current_version=...)...],
     "replicas": {"name:version": connected replica count}}
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

import attrs

from ..errors import ConflictError, ValidationError
from ..interfaces import StateStore
from ..models import Application, ModelVersion
from ..secrets import write_private
from .replicas import merge_replicas
from .wire import ImportSummary

FORMAT = 1


def export_configuration(store: StateStore, *, now: float | None = None) -> dict[str, Any]:
    """The store's whole configuration as JSON data (see the module docstring)."""
    revision = store.revision()
    apps = sorted(store.list_applications(), key=lambda a: a.name)
    models = sorted(store.list_models(), key=lambda m: (m.name, m.version))
    currents = {name: store.get_current_version(name) for name in {m.name for m in models}}
    views = merge_replicas(store.list_replicas(), now=time.time() if now is None else now)
    counts = Counter(f"{v.record.model_name}:{v.record.model_version}" for v in views
                     if v.record is not None and v.record.connected)
    return {"format": FORMAT, "revision": revision,
            "applications": [a.to_wire() for a in apps],
            "models": [m.to_wire(is_current_version=currents[m.name] == m.version)
                       for m in models],
            "replicas": dict(sorted(counts.items()))}


def _parse(data: Mapping[str, Any]) -> tuple[list[Application], list[tuple[ModelVersion, bool]]]:
    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
        raise ValidationError(f"Not a configuration export of format {FORMAT} (a JSON object "
                              "with \"format\": 1)", argument="configuration")
    try:
        apps = [Application.from_wire(dict(a)) for a in data.get("applications") or []]
        models = [(ModelVersion.from_wire(dict(m)), bool(m.get("is_current_version")))
                  for m in data.get("models") or []]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValidationError(f"Malformed configuration export: {type(exc).__name__}: {exc}",
                              argument="configuration") from None
    return apps, models


def import_configuration(store: StateStore, data: Mapping[str, Any]) -> ImportSummary:
    """Write the configuration ``data`` into ``store``: missing model versions,
    applications, links and current versions are added; an entry that exists
    and is equal is left alone; one that differs is a ConflictError (nothing
    of it is overwritten).  Replica counts are not the store's: a container
    manager restores them (``ClipperConnection.import_configuration``)."""
    from .inputs import check_image_reference

    apps, models = _parse(data)
    added: list[str] = []
    present: list[str] = []
    for model, _current in models:
        if model.image is not None:
            check_image_reference(model.image)
        existing = store.get_model(model.name, model.version)
        key = f"model {model.name}:{model.version}"
        if existing is None:
            store.add_model(model, make_current=False)
            added.append(key)
        elif existing != model:
            raise ConflictError(f"{key} exists with other settings; not imported",
                                name=model.name, version=model.version)
        else:
            present.append(key)
    for model, current in models:
        if current and store.get_current_version(model.name) != model.version:
            store.set_current_version(model.name, model.version)
    for app in apps:
        existing_app = store.get_application(app.name)
        key = f"application {app.name}"
        if existing_app is None:
            store.add_application(attrs.evolve(app, linked_model=None))
            added.append(key)
        elif attrs.evolve(existing_app, linked_model=None) != attrs.evolve(app,
                                                                          linked_model=None):
            raise ConflictError(f"{key} exists with other settings; not imported",
                                name=app.name)
        else:
            present.append(key)
        linked = store.get_application(app.name)
        if app.linked_model and linked is not None and linked.linked_model != app.linked_model:
            if linked.linked_model is not None:
                raise ConflictError(f"{key} is linked to {linked.linked_model!r}, the export "
                                    f"to {app.linked_model!r}; not imported", name=app.name)
            store.set_link(app.name, app.linked_model)
    revision = data.get("revision")
    if isinstance(revision, int) and not isinstance(revision, bool) and revision >= 0:
        # Past the backup's revision: query frontends that served the lost
        # configuration take the restored one as newer (they refuse a store
        # that went back in time).
        store.advance_revision(revision + 1)
    return ImportSummary(added=tuple(added), present=tuple(present))


def replica_counts(data: Mapping[str, Any]) -> dict[tuple[str, str], int]:
    """``(name, version) -> replicas`` recorded in an export."""
    out: dict[tuple[str, str], int] = {}
    for key, count in (data.get("replicas") or {}).items():
        name, _, version = str(key).rpartition(":")
        if name and isinstance(count, int) and count > 0:
            out[(name, version)] = count
    return out


def restore_replica_counts(conn: Any, data: Mapping[str, Any]) -> None:
    """Scale each model version of the export that has an image and fewer
    replicas than the export records up to that count (``conn`` is a
    connected ``ClipperConnection``)."""
    for (name, version), count in replica_counts(data).items():
        info = conn.get_model_info(name, version)
        if info and info.get("image") and conn.get_num_replicas(name, version) < count:
            conn.set_num_replicas(name, count, version)


def write_backup(path: str | os.PathLike[str], store: StateStore) -> None:
    """Export ``store`` into ``path`` (0600), keeping the previous backup as ``path.1``."""
    text = json.dumps(export_configuration(store), indent=1, sort_keys=True)
    target = os.fspath(path)
    try:
        with open(target, encoding="utf-8") as fh:
            previous = fh.read()
    except FileNotFoundError:
        previous = None
    if previous == text:
        return
    if previous is not None:
        write_private(f"{target}.1", previous)
    write_private(target, text)


def _restore(args: argparse.Namespace, data: dict[str, Any]) -> ImportSummary:
    if args.store:
        from ..plugins import open_store
        from ..secrets import store_url_from_env

        store = open_store(store_url_from_env(args.store) or args.store)
        try:
            return import_configuration(store, data)
        finally:
            store.close()
    from ..secrets import ADMIN_TOKEN_ENV, read_secret
    from .client import AdminClient
    from .wire import ImportConfiguration

    client = AdminClient(args.admin, token=read_secret(ADMIN_TOKEN_ENV),
                         verify=args.ca_bundle or True)
    try:
        summary: ImportSummary = client.call(ImportConfiguration(configuration=data))
        return summary
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m clipper_core.admin.backup restore FILE (--admin ADDR | --store URL)``."""
    parser = argparse.ArgumentParser(prog="python -m clipper_core.admin.backup",
                                     description="Restore a cluster's configuration from "
                                                 "its backup file")
    sub = parser.add_subparsers(dest="command", required=True)
    restore = sub.add_parser("restore", help="import a backup into a cluster")
    restore.add_argument("file", help="the backup file (JSON export)")
    where = restore.add_mutually_exclusive_group(required=True)
    where.add_argument("--admin", help="management frontend [https://]host:port "
                                       "(token: env CLIPPER_ADMIN_TOKEN or _FILE)")
    where.add_argument("--store", help="state store URL to write into directly "
                                       "(password: env CLIPPER_STORE_PASSWORD)")
    restore.add_argument("--ca-bundle", default=os.environ.get("CLIPPER_CA_BUNDLE"),
                         help="CA certificates to verify an HTTPS management frontend")
    args = parser.parse_args(argv)
    with open(args.file, encoding="utf-8") as fh:
        data = json.load(fh)
    summary = _restore(args, data)
    print(f"restored: {len(summary.added)} added, {len(summary.present)} already present")
    for name in summary.added:
        print(f"  + {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
