"""Reading the fields of a JSON request body, with the error messages the
management API has always given (``Missing field 'name' in request body``,
``Field 'verbose' must be a boolean, got a string``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ValidationError

MISSING: Any = object()

_TYPE_NAMES = {str: "a string", int: "an integer", bool: "a boolean", list: "a list",
               dict: "an object", float: "a number"}


def json_type(value: object) -> str:
    """How a JSON value's type reads in an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    for kind, label in _TYPE_NAMES.items():
        if isinstance(value, kind):
            return label
    return type(value).__name__


def field(body: Mapping[str, Any], name: str, kind: type | tuple[type, ...],
          default: Any = MISSING) -> Any:
    """``body[name]``, checked to be of JSON type ``kind``.

    A missing field is a ValidationError unless ``default`` is given; ``bool``
    never passes for ``int``; ``None`` passes only when there is a default.
    """
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if name not in body or (body[name] is None and default is not MISSING):
        if default is MISSING:
            raise ValidationError(f"Missing field {name!r} in request body", argument=name)
        return default
    value = body[name]
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok:
        expected = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
        raise ValidationError(f"Field {name!r} must be {expected}, got {json_type(value)}",
                              argument=name, value=value)
    return value


def text(body: Mapping[str, Any], name: str) -> str:
    """A string field that may also arrive as an integer (versions, ids)."""
    return str(field(body, name, (str, int)))


def strings(body: Mapping[str, Any], name: str, what: str) -> tuple[str, ...]:
    """A list-of-strings field (missing or null: empty)."""
    values = field(body, name, list, default=[])
    if not all(isinstance(v, str) for v in values):
        raise ValidationError(f"{what} must be a list of strings", argument=name, value=values)
    return tuple(values)
