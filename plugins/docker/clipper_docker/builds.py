"""Image builds and pushes: options, Dockerfiles, streamed progress, errors.

Every image the plugin builds (a model image, the project's own images) goes
through :func:`build_image`, which streams the engine's output to the
``clipper.docker`` logger (and an optional ``progress`` callback) and turns a
failed step into :class:`~clipper_core.errors.BuildError` with the tail of the
output.  :class:`BuildOptions` holds what corporate networks need: a CA bundle
that pip inside the build trusts, pip arguments (index URL, proxies...), and
the build's network mode.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs

from clipper_core.errors import BuildError, ContainerError

from .engine import docker_errors, log

#: Environment variables read by :meth:`BuildOptions.from_env`.
ENV_CA_BUNDLE = "CLIPPER_BUILD_CA_BUNDLE"
ENV_PIP_ARGS = "CLIPPER_PIP_ARGS"
ENV_PIP_INDEX_URL = "CLIPPER_PIP_INDEX_URL"
ENV_BUILD_NETWORK = "CLIPPER_BUILD_NETWORK"
ENV_PYTHON_BASE_IMAGE = "CLIPPER_PYTHON_BASE_IMAGE"

#: The official image real users build from (Docker Hub).
DEFAULT_PYTHON_BASE_IMAGE = "python:3.11-slim"

#: Where a CA bundle is copied inside a build context.
CA_FILE = "clipper-build-ca.crt"

Progress = Callable[[str], None]


@attrs.frozen(kw_only=True)
class BuildOptions:
    """How images are built.

    ``ca_bundle``: a PEM file pip inside the build trusts (copied into the
    context, used with ``--cert``, not left in the image's environment).
    ``pip_args``: extra ``pip install`` arguments, e.g.
    ``("--index-url", "https://pypi.corp/simple")``.  ``network_mode``: the
    build's network (None = the engine's default; ``"host"`` when the engine
    has no default bridge).  ``python_base_image``: the image the project's
    images start from.
    """

    ca_bundle: str | None = None
    pip_args: tuple[str, ...] = ()
    network_mode: str | None = None
    python_base_image: str = DEFAULT_PYTHON_BASE_IMAGE

    @classmethod
    def from_env(cls, *, ca_bundle: str | None = None, pip_args: Iterable[str] | str | None = None,
                 network_mode: str | None = None,
                 python_base_image: str | None = None) -> BuildOptions:
        """Options from arguments, falling back to ``CLIPPER_BUILD_CA_BUNDLE``,
        ``CLIPPER_PIP_ARGS`` (shell-split), ``CLIPPER_PIP_INDEX_URL``,
        ``CLIPPER_BUILD_NETWORK`` and ``CLIPPER_PYTHON_BASE_IMAGE``."""
        ca = ca_bundle or os.environ.get(ENV_CA_BUNDLE) or None
        if ca is not None and not Path(ca).is_file():
            raise BuildError(f"CA bundle {ca!r} (build option ca_bundle / {ENV_CA_BUNDLE}) "
                             "is not a file", ca_bundle=ca)
        if pip_args is None:
            args = shlex.split(os.environ.get(ENV_PIP_ARGS, ""))
            index = os.environ.get(ENV_PIP_INDEX_URL)
            if index:
                args = ["--index-url", index, *args]
        elif isinstance(pip_args, str):
            args = shlex.split(pip_args)
        else:
            args = [str(a) for a in pip_args]
        return cls(ca_bundle=ca, pip_args=tuple(args),
                   network_mode=network_mode or os.environ.get(ENV_BUILD_NETWORK) or None,
                   python_base_image=(python_base_image or os.environ.get(ENV_PYTHON_BASE_IMAGE)
                                      or DEFAULT_PYTHON_BASE_IMAGE))

    def pip_install(self, args: Iterable[str]) -> str:
        """A shell command running ``pip install`` with these options."""
        cert = ("--cert", f"/tmp/{CA_FILE}") if self.ca_bundle else ()
        parts = ["pip", "install", "--no-cache-dir", "--disable-pip-version-check", *cert,
                 *self.pip_args, *args]
        return " ".join(shlex.quote(p) for p in parts)

    def copy_ca(self, context: Path) -> str:
        """Copy the CA bundle into ``context``; return the Dockerfile line (or "")."""
        if not self.ca_bundle:
            return ""
        shutil.copyfile(self.ca_bundle, context / CA_FILE)
        return f"COPY {CA_FILE} /tmp/{CA_FILE}\n"


def model_dockerfile(base_image: str, options: BuildOptions, context: Path,
                     pkgs_to_install: list[str] | None) -> str:
    """The Dockerfile of a model image (SPEC.md section 6): ``FROM`` the base,
    the model directory (already in ``context/model``) copied to ``/model/``,
    ``pkgs_to_install`` installed with pip."""
    lines = [f"FROM {base_image}\n", "COPY model /model/\n"]
    if pkgs_to_install:
        lines.append(options.copy_ca(context))
        rm = f" && rm -f /tmp/{CA_FILE}" if options.ca_bundle else ""
        lines.append(f"RUN {options.pip_install(pkgs_to_install)}{rm}\n")
    return "".join(lines)


def _progress_line(chunk: dict[str, Any]) -> str | None:
    if "stream" in chunk:
        text = str(chunk["stream"]).rstrip()
        return text or None
    if "status" in chunk:
        parts = [chunk.get("id"), chunk["status"], chunk.get("progress")]
        return " ".join(str(p) for p in parts if p)
    return None


def build_image(client: Any, context: Path, tag: str, *, options: BuildOptions,
                target: str | None = None, progress: Progress | None = None,
                buildargs: dict[str, str] | None = None) -> str:
    """Build ``context`` (with its ``Dockerfile``) as ``tag``; return the image id.

    Output streams to the ``clipper.docker`` logger at INFO and to
    ``progress``.  A failed step raises BuildError with the last lines.
    """
    tail: list[str] = []
    image_id = ""
    log.info("building image %s from %s", tag, context)
    with docker_errors(f"Building image {tag}", BuildError):
        stream = client.api.build(path=str(context), tag=tag, rm=True, forcerm=True,
                                  decode=True, target=target, buildargs=buildargs,
                                  network_mode=options.network_mode)
        for chunk in stream:
            line = _progress_line(chunk)
            if line:
                tail = (tail + line.splitlines())[-40:]
                log.info("[build %s] %s", tag, line)
                if progress is not None:
                    progress(line)
            if "aux" in chunk and isinstance(chunk["aux"], dict):
                image_id = chunk["aux"].get("ID", image_id)
            if "error" in chunk:
                detail = "\n".join(tail[-25:])
                raise BuildError(f"Building image {tag} failed: {chunk['error'].strip()}\n"
                                 f"last build output:\n{detail}", image=tag)
    if not image_id:
        with docker_errors(f"Inspecting image {tag}", BuildError):
            image_id = client.images.get(tag).id
    return image_id


def push_image(client: Any, tag: str, *, progress: Progress | None = None) -> None:
    """Push ``tag`` (``registry/name:version``) with progress; BuildError on failure."""
    repository, _, version = tag.rpartition(":")
    if "/" in version or not repository:
        repository, version = tag, "latest"
    log.info("pushing image %s", tag)
    last = ""
    with docker_errors(f"Pushing image {tag}", BuildError):
        for chunk in client.api.push(repository, tag=version, stream=True, decode=True):
            if "error" in chunk:
                raise BuildError(f"Pushing image {tag} failed: {chunk['error']}", image=tag)
            line = _progress_line(chunk)
            if line and line != last:
                last = line
                log.info("[push %s] %s", tag, line)
                if progress is not None:
                    progress(line)


def ensure_image(client: Any, image: str, *, error: type[ContainerError] = ContainerError,
                 hint: str = "") -> None:
    """Make ``image`` present on the engine, pulling it when missing."""
    import docker.errors

    try:
        client.images.get(image)
        return
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.DockerException as exc:
        raise error(f"Inspecting image {image} failed: {exc}", image=image) from exc
    log.info("pulling image %s", image)
    repository, _, tag = image.rpartition(":")
    if "/" in tag or not repository:
        repository, tag = image, "latest"
    try:
        client.images.pull(repository, tag=tag)
    except docker.errors.DockerException as exc:
        raise error(f"Image {image} is not on the engine and pulling it failed: {exc}"
                    + (f". {hint}" if hint else ""), image=image) from exc
