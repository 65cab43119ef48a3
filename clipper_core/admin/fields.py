"""Reading the fields of a JSON request body, with the error messages the
management API has always given (``Missing field 'name' in request body``,
``Field 'verbose' must be a boolean, got a string``).

Every string read here is bounded: at most :data:`MAX_TEXT` characters and
no control characters but tab and line breaks; labels at most
:data:`MAX_LABELS` of :data:`MAX_LABEL_LENGTH` characters each, from
letters, digits and ``. _ - : / = + @``.  A refusal is a ValidationError
(400) that says which field and why."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import ValidationError

MISSING: Any = object()

#: The longest string any admin field accepts (names have their own rule).
MAX_TEXT = 4096
MAX_LABELS = 64
MAX_LABEL_LENGTH = 128
_LABEL = re.compile(r"[A-Za-z0-9._\-:/=+@]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

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
    if isinstance(value, str):
        check_text(name, value)
    return value


def check_text(name: str, value: str) -> str:
    """``value``, unless it is longer than :data:`MAX_TEXT` or holds a control
    character (tab and line breaks allowed): then a ValidationError."""
    if len(value) > MAX_TEXT:
        raise ValidationError(f"Field {name!r} is {len(value)} characters long; at most "
                              f"{MAX_TEXT} are accepted", argument=name)
    bad = _CONTROL.search(value)
    if bad is not None:
        raise ValidationError(f"Field {name!r} holds the control character "
                              f"{bad.group()!r} at {bad.start()}", argument=name)
    return value


def text(body: Mapping[str, Any], name: str) -> str:
    """A string field that may also arrive as an integer (versions, ids)."""
    return str(field(body, name, (str, int)))


def strings(body: Mapping[str, Any], name: str, what: str) -> tuple[str, ...]:
    """A list-of-strings field (missing or null: empty)."""
    values = field(body, name, list, default=[])
    if not all(isinstance(v, str) for v in values):
        raise ValidationError(f"{what} must be a list of strings", argument=name, value=values)
    for value in values:
        check_text(name, value)
    return tuple(values)


def labels(body: Mapping[str, Any], name: str = "labels") -> tuple[str, ...]:
    """A list of labels (missing or null: empty), each checked (see the module)."""
    values = strings(body, name, name)
    if len(values) > MAX_LABELS:
        raise ValidationError(f"Field {name!r} has {len(values)} labels; at most "
                              f"{MAX_LABELS} are accepted", argument=name)
    for value in values:
        if len(value) > MAX_LABEL_LENGTH:
            raise ValidationError(f"Label {value[:32]!r}... is {len(value)} characters long; "
                                  f"at most {MAX_LABEL_LENGTH} are accepted", argument=name)
        if not _LABEL.fullmatch(value):
            raise ValidationError(f"Label {value!r} may hold only letters, digits and "
                                  ". _ - : / = + @ (and may not be empty)", argument=name)
    return values
