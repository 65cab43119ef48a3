"""What the admin boundary lets through to a build or a container runtime.

A model's ``image`` is later run by a container manager, its
``pkgs_to_install`` go into a Dockerfile ``RUN pip install`` line (or a
local ``pip install``), its ``base_image`` into a ``FROM`` line.  Each is
checked here, where it enters, so no later stage can be steered by it:

- :func:`check_image_reference`: the Docker reference grammar
  (``[registry[:port]/]path[:tag][@digest]``, lower-case path components);
  no filesystem path, no whitespace, no option;
- :func:`check_requirements`: every entry one PEP 508 requirement
  (``packaging.requirements.Requirement``) naming a package from an index:
  no pip option (``-e``, ``--index-url``), no direct URL or path, no newline;
- :func:`check_base_image`: a reference, as for images (``"default"`` and
  None stand for the project's model base image).

Each refusal is a :class:`~clipper_core.errors.ValidationError` (HTTP 400)
whose message says what was wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ..errors import ValidationError

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_DOMAIN = (rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9A-Fa-f:]+\])"
           r"(?::[0-9]+)?")
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}"
_REFERENCE = re.compile(
    rf"(?P<name>(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?", re.ASCII)
#: Docker's limit on the name part of a reference.
MAX_NAME_LENGTH = 255

#: Base image values that mean "the project's model base image".
DEFAULT_BASE_IMAGES = (None, "", "default")


def _why_not_reference(value: str) -> str:
    if any(c.isspace() for c in value):
        return "it contains whitespace"
    if value.startswith(("/", ".", "~")) or "\\" in value:
        return "it is a filesystem path, not an image reference"
    if value.startswith("-"):
        return "it starts with '-'"
    return ("it does not follow the Docker reference grammar "
            "[registry[:port]/]name[:tag][@digest] with lower-case name components")


def check_image_reference(value: object, argument: str = "image") -> str:
    """Return ``value`` if it is a Docker image reference, else raise ValidationError."""
    if not isinstance(value, str) or not value:
        raise ValidationError(f"Invalid {argument} {value!r}: must be a non-empty string",
                              argument=argument, value=value)
    match = _REFERENCE.fullmatch(value)
    if match is None:
        raise ValidationError(f"Invalid {argument} {value!r}: {_why_not_reference(value)}",
                              argument=argument, value=value)
    if len(match["name"]) > MAX_NAME_LENGTH:
        raise ValidationError(f"Invalid {argument} {value!r}: the name is longer than "
                              f"{MAX_NAME_LENGTH} characters", argument=argument, value=value)
    return value


def check_base_image(value: object) -> str | None:
    """Return ``value`` if it can be a ``FROM`` line's image (None, ``""`` and
    ``"default"`` pass: the project's model base image), else raise ValidationError."""
    if value in DEFAULT_BASE_IMAGES:
        return None if value is None else str(value)
    return check_image_reference(value, "base_image")


def check_requirement(entry: object) -> str:
    """Return ``entry`` if it is one requirement specifier of a package from
    an index (``numpy==1.26``, ``scikit-learn>=1.3; python_version>'3.8'``)."""
    from packaging.requirements import InvalidRequirement, Requirement

    if not isinstance(entry, str) or not entry.strip():
        raise ValidationError(f"Invalid pkgs_to_install entry {entry!r}: must be a non-empty "
                              "string", argument="pkgs_to_install", value=entry)
    if "\n" in entry or "\r" in entry or "\x00" in entry:
        raise ValidationError(f"Invalid pkgs_to_install entry {entry!r}: it contains a line "
                              "break", argument="pkgs_to_install", value=entry)
    if entry.lstrip().startswith("-"):
        raise ValidationError(f"Invalid pkgs_to_install entry {entry!r}: pip options are not "
                              "accepted, only requirement specifiers",
                              argument="pkgs_to_install", value=entry)
    try:
        req = Requirement(entry)
    except InvalidRequirement as exc:
        raise ValidationError(f"Invalid pkgs_to_install entry {entry!r}: not a requirement "
                              f"specifier ({exc})", argument="pkgs_to_install",
                              value=entry) from None
    if req.url is not None:
        raise ValidationError(f"Invalid pkgs_to_install entry {entry!r}: direct URL or path "
                              "references are not accepted, only packages from the index",
                              argument="pkgs_to_install", value=entry)
    return entry


def check_requirements(entries: Iterable[Any] | None) -> list[str] | None:
    """Return the entries as a list if each is a requirement specifier
    (:func:`check_requirement`); None stays None."""
    if entries is None:
        return None
    if isinstance(entries, (str, bytes)):
        raise ValidationError("pkgs_to_install must be a list of strings",
                              argument="pkgs_to_install", value=entries)
    return [check_requirement(e) for e in entries]
