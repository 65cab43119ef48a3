"""Copying a cluster's configuration from one state store to another.

Used by ``clipper migrate-store SRC DST`` to move a cluster, e.g. from the
embedded SQLite file to a shared Redis.  Replicas are not copied: query
frontends write them again when their replicas reconnect.
"""

from __future__ import annotations

import attrs

from ..errors import ConflictError
from ..interfaces import StateStore
from ..plugins import open_store


@attrs.frozen(kw_only=True)
class CopySummary:
    """What :func:`copy_state` wrote to the destination."""

    applications: int
    models: int
    current_versions: int
    links: int
    #: The source's revision the copy was taken at.
    source_revision: int

    def to_wire(self) -> dict[str, int]:
        return attrs.asdict(self)


def copy_state(src_url: str, dst_url: str) -> CopySummary:
    """Copy applications, model versions (with their current versions) and
    links from the store at ``src_url`` to the store at ``dst_url``.

    Reads one consistent snapshot of the source.  Raises ConflictError,
    before writing anything, if the destination already has an application
    or model version of the same name; StoreUnavailableError if either store
    cannot be reached.  Returns what was copied.
    """
    src = open_store(src_url)
    try:
        dst = open_store(dst_url)
        try:
            return copy_between(src, dst)
        finally:
            dst.close()
    finally:
        src.close()


def copy_between(src: StateStore, dst: StateStore) -> CopySummary:
    """:func:`copy_state` for stores that are already open."""
    snap = src.snapshot()
    existing = dst.snapshot()
    clashes = sorted(f"application {a}" for a in snap.applications if a in existing.applications)
    clashes += sorted(f"model {n}:{v}" for n, v in snap.models if (n, v) in existing.models)
    if clashes:
        raise ConflictError(f"Destination store {dst.url} already has "
                            f"{', '.join(clashes[:10])}"
                            + (f" and {len(clashes) - 10} more" if len(clashes) > 10 else "")
                            + "; nothing was copied", clashes=clashes)
    # Models first (in the source's order), so links and current versions can
    # refer to them; each version becomes current only if it is in the source.
    for model in snap.models.values():
        current = snap.current_versions.get(model.name) == model.version
        dst.add_model(model, make_current=current)
    links = 0
    for app in snap.applications.values():
        dst.add_application(app)
        links += app.linked_model is not None
    return CopySummary(applications=len(snap.applications), models=len(snap.models),
                       current_versions=len(snap.current_versions), links=links,
                       source_revision=snap.revision)
