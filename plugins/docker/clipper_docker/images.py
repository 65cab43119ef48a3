"""The project's own images: query frontend, management frontend, model base.

Their tags (:data:`clipper_core.launch.DEFAULT_IMAGES`) are ours, not
Clipper's, and they carry the label
:data:`clipper_core.launch.IMAGE_TITLE_LABEL` that managers check before
using a local image of one of these names.

All three come from one Dockerfile built ``FROM`` a Python base image: a
virtualenv at ``/opt/clipper`` (first on ``PATH``, so ``pip install`` in
images built from them installs there), clipper-core's dependencies
installed with pip (a cached layer), then clipper-core itself from a wheel
built on the host from the project source (``pip wheel --no-deps``).  They
are tagged with ``clipper_core.__version__``.

Build them once with::

    python -m clipper_docker.images --python-base-image python:3.11-slim

or :func:`build_project_images`.  Behind a TLS-intercepting proxy pass
``--ca-bundle`` (or set ``CLIPPER_BUILD_CA_BUNDLE``) and ``--pip-args``
(``CLIPPER_PIP_ARGS``).  :class:`~clipper_docker.manager.DockerContainerManager`
builds them on first use when they are missing.
"""

from __future__ import annotations

import argparse
import email.parser
import fnmatch
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import attrs

import clipper_core
from clipper_core.errors import BuildError
from clipper_core.launch import (
    DEFAULT_IMAGES,
    IMAGE_ROLE_LABEL,
    IMAGE_TITLE,
    IMAGE_TITLE_LABEL,
    ProjectImages,
)

from .builds import CA_FILE, BuildOptions, Progress, build_image
from .engine import connect_engine, log

VERSION = clipper_core.__version__

#: What is not copied from the project checkout when building the wheel.
_NOT_SOURCE = (".git", "build", "dist", "*.egg-info", "__pycache__", ".venv", "venv",
               ".mypy_cache", ".ruff_cache", ".pytest_cache", "results", "clipper_logs")

#: Default tags of the project's images: names of our own, not Clipper's
#: (``clipper/query_frontend:0.4.0`` is Clipper's frontend).
QUERY_FRONTEND_IMAGE = DEFAULT_IMAGES.query_frontend
MGMT_FRONTEND_IMAGE = DEFAULT_IMAGES.management_frontend
MODEL_BASE_IMAGE = DEFAULT_IMAGES.model_base

_DOCKERFILE = """\
FROM {base} AS core
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 VIRTUAL_ENV=/opt/clipper
RUN python3 -m venv /opt/clipper
ENV PATH=/opt/clipper/bin:$PATH
{copy_ca}COPY requirements.txt /tmp/clipper/requirements.txt
RUN {pip_requirements}{rm_ca}
COPY wheels/ /tmp/clipper/wheels/
RUN pip install --no-cache-dir --no-deps --no-index /tmp/clipper/wheels/*.whl \\
    && rm -rf /tmp/clipper
LABEL {title_label}="{title}" \\
      org.opencontainers.image.version="{version}"

FROM core AS query_frontend
LABEL {role_label}="query_frontend"
EXPOSE 1337 7000
ENTRYPOINT ["python", "-m", "clipper_frontends.query"]

FROM core AS management_frontend
LABEL {role_label}="management_frontend"
EXPOSE 1338
ENTRYPOINT ["python", "-m", "clipper_frontends.management"]

FROM core AS model_base
LABEL {role_label}="model_base"
ENV CLIPPER_MODEL_PATH=/model
WORKDIR /model
CMD ["python", "-m", "clipper_core.runtime"]
"""


def project_source() -> Path | None:
    """The source checkout clipper_core was imported from, if it is one
    (a directory with ``pyproject.toml`` naming ``clipper-core``)."""
    root = Path(clipper_core.__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and 'name = "clipper-core"' in pyproject.read_text():
        return root
    return None


def build_wheel(dest: Path, source: Path | None = None) -> Path:
    """A clipper-core wheel in ``dest``: built from ``source`` (default: the
    checkout clipper_core runs from) or, for an installed release, downloaded
    as ``clipper-core==<version>`` from the configured index."""
    source = source or project_source()
    if source is not None:
        # build from a clean copy: setuptools reuses ``build/`` in the tree,
        # which may hold modules deleted since, and others may be building there
        clean = dest / "_source"
        _copy_package_source(source, clean)
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
               "-q", "-w", str(dest), str(clean)]
    else:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "-q", "-d", str(dest), f"clipper-core=={VERSION}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 and source is not None:  # retry with build isolation
        cmd.remove("--no-build-isolation")
        done = subprocess.run(cmd, capture_output=True, text=True)
    shutil.rmtree(dest / "_source", ignore_errors=True)
    wheels = sorted(dest.glob("clipper_core-*.whl"))
    if done.returncode != 0 or not wheels:
        raise BuildError(f"Building the clipper-core wheel failed ({' '.join(cmd)}):\n"
                         f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return wheels[-1]


def _copy_package_source(source: Path, dest: Path) -> None:
    """Copy what building the project's wheel reads: top-level files and the
    package directories ``[tool.setuptools.packages.find]`` names."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: copy everything but the junk
        shutil.copytree(source, dest, ignore=shutil.ignore_patterns(*_NOT_SOURCE))
        return
    config = tomllib.loads((source / "pyproject.toml").read_text())
    find = config.get("tool", {}).get("setuptools", {}).get("packages", {}).get("find", {})
    where = find.get("where", ["."])
    include = find.get("include", ["*"])
    ignore = shutil.ignore_patterns(*_NOT_SOURCE)
    dest.mkdir(parents=True)
    for entry in source.iterdir():
        if entry.is_file():
            shutil.copy2(entry, dest / entry.name)
    for base in where:
        root = (source / base).resolve()
        for entry in root.iterdir():
            if entry.is_dir() and entry.name not in _NOT_SOURCE and any(
                    fnmatch.fnmatch(entry.name, pattern) for pattern in include):
                target = dest / entry.relative_to(source.resolve())
                shutil.copytree(entry, target, ignore=ignore)


def wheel_requirements(wheel: Path) -> list[str]:
    """The wheel's runtime requirements (``Requires-Dist`` without extras)."""
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        message = email.parser.Parser().parsestr(zf.read(meta).decode())
    return [r for r in message.get_all("Requires-Dist") or [] if "extra ==" not in r]


def write_context(context: Path, options: BuildOptions, source: Path | None = None) -> None:
    """Fill ``context`` with the Dockerfile, requirements and the wheel."""
    wheels = context / "wheels"
    wheels.mkdir(parents=True)
    wheel = build_wheel(wheels, source)
    for extra in wheels.iterdir():
        if extra != wheel:
            extra.unlink()
    (context / "requirements.txt").write_text("\n".join(wheel_requirements(wheel)) + "\n")
    copy_ca = options.copy_ca(context)
    (context / "Dockerfile").write_text(_DOCKERFILE.format(
        base=options.python_base_image, copy_ca=copy_ca, version=VERSION,
        title_label=IMAGE_TITLE_LABEL, title=IMAGE_TITLE, role_label=IMAGE_ROLE_LABEL,
        pip_requirements=options.pip_install(["-r", "/tmp/clipper/requirements.txt"]),
        rm_ca=f" && rm -f /tmp/{CA_FILE}" if copy_ca else ""))


def build_project_images(*, python_base_image: str | None = None, ca_bundle: str | None = None,
                         pip_args: list[str] | str | None = None,
                         network_mode: str | None = None, images: ProjectImages | None = None,
                         source: str | Path | None = None, client: Any = None,
                         progress: Progress | None = None) -> ProjectImages:
    """Build the query frontend, management frontend and model base images.

    :param python_base_image: image to build from (default
        ``CLIPPER_PYTHON_BASE_IMAGE`` or ``python:3.11-slim``); it needs
        ``python3`` with ``venv``.
    :param ca_bundle: CA bundle pip trusts in the build (default
        ``CLIPPER_BUILD_CA_BUNDLE``).
    :param pip_args: extra pip arguments (default ``CLIPPER_PIP_ARGS``).
    :param network_mode: build network; default ``CLIPPER_BUILD_NETWORK``, or
        ``host`` when the engine has no default bridge.
    :param images: the tags to give (default ``clipper-core/...:<version>``).
    :param source: project checkout to build clipper-core from.
    :returns: the tags built.  Raises BuildError when a step fails.
    """
    from .engine import has_default_bridge

    client = client or connect_engine()
    options = BuildOptions.from_env(ca_bundle=ca_bundle, pip_args=pip_args,
                                    network_mode=network_mode,
                                    python_base_image=python_base_image)
    if options.network_mode is None and not has_default_bridge(client):
        options = attrs.evolve(options, network_mode="host")
    images = images or ProjectImages()
    with tempfile.TemporaryDirectory(prefix="clipper-images-") as tmp:
        context = Path(tmp)
        write_context(context, options, Path(source) if source else None)
        for target, tag in images.targets().items():
            build_image(client, context, tag, options=options, target=target, progress=progress)
    log.info("built project images %s", ", ".join(images.targets().values()))
    return images


def main(argv: list[str] | None = None) -> int:
    """``python -m clipper_docker.images``: build the project's images."""
    parser = argparse.ArgumentParser(prog="python -m clipper_docker.images",
                                     description=(build_project_images.__doc__ or "").split("\n")[0])
    parser.add_argument("--python-base-image", help="image to build from "
                        "(default $CLIPPER_PYTHON_BASE_IMAGE or python:3.11-slim)")
    parser.add_argument("--ca-bundle", help="CA bundle pip trusts during the build "
                        "(default $CLIPPER_BUILD_CA_BUNDLE)")
    parser.add_argument("--pip-args", help="extra pip install arguments, one string "
                        "(default $CLIPPER_PIP_ARGS)")
    parser.add_argument("--network", dest="network_mode", help="build network mode")
    parser.add_argument("--prefix", default="clipper-core", help="repository prefix of the tags")
    parser.add_argument("--source", help="clipper-core project directory to build from")
    parser.add_argument("-q", "--quiet", action="store_true", help="no build output")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    progress = None if args.quiet else (lambda line: print(line, flush=True))
    try:
        images = build_project_images(
            python_base_image=args.python_base_image, ca_bundle=args.ca_bundle,
            pip_args=args.pip_args, network_mode=args.network_mode,
            images=ProjectImages.with_prefix(args.prefix), source=args.source,
            progress=progress)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for tag in images.targets().values():
        print(tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
