"""The project's images and how a manager gets a model image built.

Our images have names of their own (not Clipper's ``clipper/...:0.4.0``), so
a cluster never runs Clipper's frontend by mistake; they carry the label
:data:`IMAGE_TITLE_LABEL` = :data:`IMAGE_TITLE`, which a manager checks
before it uses a local image of one of these names.  Clipper's *model*
images still deploy as models (they speak RPC v3).

Building a model image is a model registry backend's job
(``register_registries``): :func:`get_image_builder` finds one by name
(``docker`` from the clipper-docker plugin), so managers that run images
built elsewhere (Kubernetes, Nomad) never import another plugin.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import attrs

from .. import __version__
from ..errors import BuildError, PluginError

#: The label our images carry, and its value.
IMAGE_TITLE_LABEL = "org.opencontainers.image.title"
IMAGE_TITLE = "clipper-core"
#: Which of our images it is (the Dockerfile stage).
IMAGE_ROLE_LABEL = "ai.clipper-core.image"

#: Clipper 0.4's own image names: never our defaults.
CLIPPER_IMAGE_PREFIX = "clipper/"


_PREFIX = "clipper-core"


@attrs.frozen(kw_only=True)
class ProjectImages:
    """Tags of the project's three images (default ``clipper-core/...:<version>``)."""

    query_frontend: str = f"{_PREFIX}/query-frontend:{__version__}"
    management_frontend: str = f"{_PREFIX}/management-frontend:{__version__}"
    model_base: str = f"{_PREFIX}/python-model:{__version__}"

    @classmethod
    def with_prefix(cls, prefix: str = _PREFIX, version: str = __version__) -> ProjectImages:
        """``<prefix>/query-frontend:<version>``, ``<prefix>/management-frontend:...``,
        ``<prefix>/python-model:...``."""
        return cls(query_frontend=f"{prefix}/query-frontend:{version}",
                   management_frontend=f"{prefix}/management-frontend:{version}",
                   model_base=f"{prefix}/python-model:{version}")

    def targets(self) -> dict[str, str]:
        """Dockerfile stage -> tag."""
        return {"query_frontend": self.query_frontend,
                "management_frontend": self.management_frontend,
                "model_base": self.model_base}


DEFAULT_IMAGES = ProjectImages()


def is_project_image(labels: dict[str, str] | None) -> bool:
    """Whether an image with these labels is one of ours."""
    return (labels or {}).get(IMAGE_TITLE_LABEL) == IMAGE_TITLE


@runtime_checkable
class ModelImageBuilder(Protocol):
    """A registry backend that can also build a model image (``docker``)."""

    def build_model(self, name: str, version: str, model_data_path: str, base_image: str,
                    container_registry: str | None = None,
                    pkgs_to_install: list[str] | None = None) -> str:
        """Build ``model_data_path`` on ``base_image`` as ``[registry/]name:version``,
        push it when a registry is given; return the reference to deploy."""


def get_image_builder(name: str = "docker", **options: Any) -> ModelImageBuilder:
    """The model registry backend ``name``, built with ``options``, as a builder.

    BuildError when no installed plugin offers it or it cannot build.
    """
    from ..plugins import get_backend

    try:
        backend = get_backend("registries", name)
    except PluginError as exc:
        raise BuildError(f"Building model images needs the {name!r} model registry "
                         f"(pip install clipper-{name}): {exc}", registry=name) from None
    builder = backend.factory(**options)
    if not isinstance(builder, ModelImageBuilder):
        raise BuildError(f"The {name!r} model registry (plugin {backend.plugin!r}) cannot "
                         "build model images", registry=name)
    return builder
