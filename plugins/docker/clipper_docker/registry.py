"""The ``docker`` model registry: builds model images, tags and pushes them.

Offered through ``register_registries`` as ``docker``, so any container
manager that runs images (Kubernetes, Nomad's docker driver) gets model images
built with :func:`clipper_core.launch.get_image_builder` instead of importing
this plugin.  It also resolves the project's own images
(:meth:`DockerRegistry.project_image`): a local image of one of their names
is used only when its label says it is clipper-core's; a missing one is built
from the installed clipper-core.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import attrs

from clipper_core.errors import BuildError, ContainerError, ValidationError
from clipper_core.launch import DEFAULT_IMAGES, IMAGE_TITLE, IMAGE_TITLE_LABEL, ProjectImages
from clipper_core.launch import is_project_image as has_project_label
from clipper_core.models import validate_name

from .builds import BuildOptions, Progress, build_image, ensure_image, model_dockerfile, push_image
from .engine import connect_engine, docker_errors, has_default_bridge, log


def _split(reference: str) -> tuple[str, str]:
    repository, _, tag = reference.rpartition(":")
    if "/" in tag or not repository:
        return reference, "latest"
    return repository, tag


class DockerRegistry:
    """Implements :class:`clipper_core.interfaces.ModelRegistry` with a Docker
    engine (and an image registry to push to), and builds model images
    (:class:`clipper_core.launch.ModelImageBuilder`).

    :param container_registry: ``host[:port][/path]`` images are pushed to;
        None keeps them on the engine.
    :param client: a ``docker.DockerClient`` (default: from the environment,
        or ``docker_client_kwargs``).
    :param images: tags of the project's images (the model base image is the
        default ``base_image``).
    :param python_base_image, build_ca_bundle, pip_args, build_network: how
        images are built (:class:`clipper_docker.builds.BuildOptions`).
    :param progress: called with each line of build and push output.
    """

    def __init__(self, container_registry: str | None = None, *, client: Any = None,
                 docker_client_kwargs: dict[str, Any] | None = None,
                 images: ProjectImages | None = None, python_base_image: str | None = None,
                 build_ca_bundle: str | None = None, pip_args: list[str] | str | None = None,
                 build_network: str | None = None, progress: Progress | None = None) -> None:
        self.container_registry = container_registry.rstrip("/") if container_registry else None
        self.images = images or DEFAULT_IMAGES
        self.progress = progress
        self._client = client
        self._client_kwargs = dict(docker_client_kwargs or {})
        self._build_args: dict[str, Any] = {
            "ca_bundle": build_ca_bundle, "pip_args": pip_args, "network_mode": build_network,
            "python_base_image": python_base_image}

    @property
    def client(self) -> Any:
        """The docker SDK client, connected on first use."""
        if self._client is None:
            self._client = connect_engine(**self._client_kwargs)
        return self._client

    def build_options(self) -> BuildOptions:
        """Build options from the constructor and the environment; host
        networking for builds when the engine has no default bridge."""
        options = BuildOptions.from_env(**self._build_args)
        if options.network_mode is None and not has_default_bridge(self.client):
            options = attrs.evolve(options, network_mode="host")
        return options

    # -- the project's images -------------------------------------------------
    def project_image(self, image: str | None, default: str,
                      error: type[ContainerError] = ContainerError) -> str:
        """``image`` or ``default``; when it is one of the project's tags, make
        sure the local image is ours (by label), building the project images
        when it is missing.  ``error`` when a local image of that name is not
        clipper-core's."""
        import docker.errors

        image = image or default
        if image not in self.images.targets().values():
            return image
        try:
            found = self.client.images.get(image)
        except docker.errors.ImageNotFound:
            self._build_project_images(image)
            return image
        except docker.errors.DockerException as exc:
            raise error(f"Inspecting image {image} failed: {exc}", image=image) from exc
        if not has_project_label(found.labels):
            raise error(
                f"The local image {image} is not clipper-core's (it lacks the label "
                f"{IMAGE_TITLE_LABEL}={IMAGE_TITLE}); remove or retag it, or pass other "
                "image names", image=image)
        return image

    def _build_project_images(self, image: str) -> None:
        from .images import build_project_images

        log.info("project image %s is missing; building the project images", image)
        opts = self.build_options()
        build_project_images(python_base_image=opts.python_base_image, ca_bundle=opts.ca_bundle,
                             pip_args=list(opts.pip_args), network_mode=opts.network_mode,
                             images=self.images, client=self.client, progress=self.progress)

    # -- model images -----------------------------------------------------------
    def reference(self, name: str, version: str, container_registry: str | None = None) -> str:
        """``[registry/]name:version``."""
        registry = (container_registry or self.container_registry or "").rstrip("/")
        return f"{registry}/{name}:{version}" if registry else f"{name}:{version}"

    def build_model(self, name: str, version: str, model_data_path: str, base_image: str,
                    container_registry: str | None = None,
                    pkgs_to_install: list[str] | None = None) -> str:
        """Build ``FROM base_image`` with ``model_data_path`` at ``/model/`` and
        ``pkgs_to_install`` pip-installed; tag ``[registry/]name:version`` and
        push when a registry is given.  ``base_image="default"`` (or None) is
        the project's model base image.  Returns the tag; BuildError on failure."""
        name = validate_name("model name", name)
        version = validate_name("model version", version)
        source = Path(model_data_path)
        if not source.is_dir():
            raise BuildError(f"model_data_path {model_data_path!r} is not a directory",
                             model_data_path=str(model_data_path))
        if pkgs_to_install is not None and (isinstance(pkgs_to_install, str) or not all(
                isinstance(p, str) for p in pkgs_to_install)):
            raise ValidationError("pkgs_to_install must be a list of strings",
                                  value=pkgs_to_install)
        if base_image in (None, "", "default"):
            base_image = self.project_image(None, self.images.model_base, BuildError)
        else:
            ensure_image(self.client, base_image, error=BuildError)
        tag = self.reference(name, version, container_registry)
        options = self.build_options()
        with tempfile.TemporaryDirectory(prefix="clipper-model-") as tmp:
            context = Path(tmp)
            shutil.copytree(source, context / "model", symlinks=False)
            (context / "Dockerfile").write_text(
                model_dockerfile(base_image, options, context, list(pkgs_to_install or [])))
            (context / ".dockerignore").write_text("")
            build_image(self.client, context, tag, options=options, progress=self.progress)
        if container_registry or self.container_registry:
            push_image(self.client, tag, progress=self.progress)
        return tag

    # -- ModelRegistry ------------------------------------------------------------
    def publish(self, name: str, version: str, artifact: str) -> str:
        """Tag the image ``artifact`` as ``[registry/]name:version`` (and push it
        when this registry has an address); return that reference."""
        name = validate_name("model name", name)
        version = validate_name("model version", version)
        tag = self.reference(name, version)
        repository, label = _split(tag)
        with docker_errors(f"Tagging image {artifact} as {tag}", BuildError, image=artifact):
            self.client.images.get(artifact).tag(repository, tag=label)
        if self.container_registry:
            push_image(self.client, tag, progress=self.progress)
        return tag

    def exists(self, reference: str) -> bool:
        """Whether ``reference`` is on the engine or, with a registry prefix,
        in its registry."""
        import docker.errors

        try:
            self.client.images.get(reference)
            return True
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.DockerException:
            return False
        if "/" not in reference:
            return False
        try:
            self.client.images.get_registry_data(reference)
            return True
        except docker.errors.DockerException:
            return False
