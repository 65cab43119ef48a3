"""What an image means on this machine: an entrypoint and, for a model image,
the local directory that stands for its ``/model``."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

import attrs

__all__ = ["MODEL_RUNTIME", "ImageSpec", "ImageTable"]

#: The runtime command a model image's entrypoint runs (SPEC.md, architecture.md).
MODEL_RUNTIME = ("python", "-m", "clipper_core.runtime")


@attrs.frozen(kw_only=True)
class ImageSpec:
    """What running an image means on this machine.

    ``entrypoint`` is used when the container gives no ``command`` (like a
    Docker ENTRYPOINT); ``model_dir`` is the directory the image would hold at
    ``/model`` (``CLIPPER_MODEL_PATH`` is set to it).  ``cwd`` is the working
    directory of the process (default: the caller's).
    """

    entrypoint: tuple[str, ...] = ()
    model_dir: str | None = None
    cwd: str | None = None

    @classmethod
    def model(cls, model_dir: str | os.PathLike[str]) -> ImageSpec:
        """A model image: runs the model runtime on ``model_dir``."""
        return cls(entrypoint=MODEL_RUNTIME, model_dir=str(model_dir))

    @classmethod
    def python(cls) -> ImageSpec:
        """An image holding this Python environment (frontends): the container's
        own ``command`` says what to run."""
        return cls(entrypoint=("python",))


class ImageTable:
    """Image name -> :class:`ImageSpec`, thread-safe; tests add entries at any time."""

    def __init__(self, entries: Mapping[str, ImageSpec] | None = None) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, ImageSpec] = dict(entries or {})

    def add(self, image: str, spec: ImageSpec) -> None:
        with self._lock:
            self._entries[image] = spec

    def resolve(self, image: str) -> ImageSpec | None:
        """The spec for ``image`` (also tried without a ``docker.io/`` prefix), or None."""
        with self._lock:
            for name in (image, image.removeprefix("docker.io/"),
                         image.removeprefix("docker.io/library/")):
                if name in self._entries:
                    return self._entries[name]
        return None
