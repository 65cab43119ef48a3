"""The ``directory`` model registry: built artifacts stored as ``ROOT/NAME/VERSION``.

The local equivalent of an image registry.  By default a cluster keeps its
artifacts in its own state directory; passing ``container_registry=PATH`` to
``build_model`` publishes them under ``PATH`` instead (a directory several
clusters, or machines with a shared file system, can deploy from).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from clipper_core.errors import BuildError
from clipper_core.models import validate_name

from .artifacts import ARTIFACT_FILE, Artifact


class DirectoryRegistry:
    """Implements :class:`clipper_core.interfaces.ModelRegistry` on a directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()

    def path_for(self, name: str, version: str) -> Path:
        """Where name:version is (or would be) stored."""
        return self.root / validate_name("model name", name) / validate_name("model version",
                                                                               version)

    def publish(self, name: str, version: str, artifact: str) -> str:
        """Store the artifact directory ``artifact`` as name:version (moving it
        when it lies under this registry's root, copying otherwise), replacing
        an older build of the same version; return the stored path."""
        src = Path(artifact).resolve()
        if not (src / ARTIFACT_FILE).is_file():
            raise BuildError(f"{artifact!r} is not a built model artifact", artifact=artifact)
        dest = self.path_for(name, version)
        if src == dest:
            return str(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            old = dest.with_name(f".old-{dest.name}-{id(self)}")
            dest.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        if src.is_relative_to(self.root):
            src.rename(dest)
        else:
            shutil.copytree(src, dest, symlinks=True)
        return str(dest)

    def exists(self, reference: str) -> bool:
        """True if ``reference`` is a stored artifact (a path, or ``name:version``)."""
        if ":" in reference and not Path(reference).exists():
            name, _, version = reference.rpartition(":")
            try:
                reference = str(self.path_for(name, version))
            except Exception:  # noqa: BLE001 - not a name:version
                return False
        path = Path(reference)
        try:
            return (path / ARTIFACT_FILE).is_file() and Artifact.load(str(path)) is not None
        except Exception:  # noqa: BLE001 - unreadable artifact
            return False
