"""Models of the raw_exec driver: model directories on the Nomad client.

``build_model`` copies a model directory to ``build_dir/<name>/<version>`` and
names it ``local/<name>:<version>``: the admin API takes image references,
never paths, and only this manager resolves the reference (to that
directory) when it writes the model's job.
"""

from __future__ import annotations

import shutil
from pathlib import Path

#: the prefix of a raw_exec model built by this manager
LOCAL_REFERENCE = "local/"


def copy_model(build_dir: Path, name: str, version: str, source: Path) -> str:
    """Copy ``source`` into ``build_dir``; return its ``local/`` reference."""
    dest = build_dir / name / version
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, dest)
    return f"{LOCAL_REFERENCE}{name}:{version}"


def model_dir(build_dir: Path, image: str) -> str:
    """The directory a ``local/<name>:<version>`` reference names (any other
    image as it is)."""
    if image.startswith(LOCAL_REFERENCE):
        name, _, version = image[len(LOCAL_REFERENCE):].rpartition(":")
        return str(build_dir / name / version)
    return image
