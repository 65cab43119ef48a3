"""A fast path from a request body to the wire bytes of its input.

The common request of a numeric model is ``{"input": [x1, ..., xn]}`` with
input type doubles.  Parsed with orjson, each number becomes a Python float
that ``struct`` then packs again: for 784 numbers about 36 us + 14 us.
simdjson (``pysimdjson``) parses the body and copies the array straight
into a buffer of little-endian doubles, which *is* the RPC wire format:
about 16 us, and no Python object per number (bench/HISTORY.md: about 5 %
of the frontend's CPU per 784-number request).

Only bodies of exactly that shape take this path: one JSON object whose
only key is ``"input"``, one ``[`` in the whole body (so no nested arrays,
which simdjson would flatten), and a non-empty array of numbers.  Anything
else, and any body simdjson rejects, returns None, and the caller parses it
the general way, which also words the errors, so both paths answer every
body alike.
"""

from __future__ import annotations

import sys
from typing import Any

try:
    import simdjson
except ImportError:  # pragma: no cover - pysimdjson is a dependency; be safe without it
    simdjson = None  # type: ignore[assignment]

#: simdjson's buffer holds native doubles; the wire wants little-endian ones.
AVAILABLE = simdjson is not None and sys.byteorder == "little"


class DoublesParser:
    """Parses single-input doubles bodies; one per event loop (not thread-safe)."""

    __slots__ = ("_parser",)

    def __init__(self) -> None:
        self._parser = simdjson.Parser() if AVAILABLE else None

    def single_input(self, body: bytes) -> bytes | None:
        """The wire bytes of ``body``'s input, or None to take the general path."""
        parser = self._parser
        if parser is None or body.count(b"[") != 1 or body[:3] == b"\xef\xbb\xbf":
            return None  # (orjson refuses a byte-order mark; simdjson would not)
        try:
            doc: Any = parser.parse(body)
        except RuntimeError:  # a proxy of an earlier document outlived it
            self._parser = simdjson.Parser()
            return None
        except Exception:
            return None
        try:
            if len(doc) != 1:  # other keys ("version", ...) or a repeated "input"
                return None
            array = doc["input"]
            try:
                data = bytes(array.as_buffer(of_type="d"))
            finally:
                del array
        except Exception:  # not an object, no "input", not all numbers
            return None
        finally:
            # The parser refuses to parse again while any proxy of its last
            # document is alive.
            del doc
        return data or None
