"""Clipper RPC version 3: the wire format between query frontends and model
containers (SPEC.md section 4), shared by both sides.

All integers are little-endian: u32 for message type, RPC version,
heartbeat type, message id and request type; u64 for header lengths and
header entries.  Every message starts with an empty delimiter frame (after
the ROUTER's identity frame on the frontend side).
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .errors import ValidationError
from .models import InputType

RPC_VERSION = 3

MSG_NEW_CONTAINER = 0
MSG_CONTAINER_CONTENT = 1
MSG_HEARTBEAT = 2

HEARTBEAT_KEEPALIVE = 0
HEARTBEAT_REQUEST_METADATA = 1

REQUEST_PREDICT = 0

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

EMPTY = b""
U32_VERSION = _U32.pack(RPC_VERSION)
U32_NEW_CONTAINER = _U32.pack(MSG_NEW_CONTAINER)
U32_CONTENT = _U32.pack(MSG_CONTAINER_CONTENT)
U32_HEARTBEAT = _U32.pack(MSG_HEARTBEAT)
U32_PREDICT = _U32.pack(REQUEST_PREDICT)

#: numpy dtypes of the numeric input types on the wire.
DTYPES: dict[InputType, np.dtype[Any]] = {
    InputType.INTS: np.dtype("<i4"), InputType.FLOATS: np.dtype("<f4"),
    InputType.DOUBLES: np.dtype("<f8")}
_DTYPES_BY_CODE: dict[int, np.dtype[Any]] = {int(it): dtype for it, dtype in DTYPES.items()}
_STRUCT_CODES = {InputType.INTS: "i", InputType.FLOATS: "f", InputType.DOUBLES: "d"}
#: Packers by (code, length): building a Struct once per input length keeps
#: encoding a request to one C call.
_PACKERS: dict[tuple[str, int], Callable[..., bytes]] = {}


class ProtocolError(ValueError):
    """A message does not follow RPC v3; the receiver logs and drops it."""


def pack_u32(value: int) -> bytes:
    return _U32.pack(value)


def unpack_u32(frame: bytes) -> int:
    if len(frame) != 4:
        raise ProtocolError(f"expected a 4-byte u32 frame, got {len(frame)} bytes")
    value: int = _U32.unpack(frame)[0]
    return value


# ---------------------------------------------------------------------------
# Frontend -> container
# ---------------------------------------------------------------------------

HEARTBEAT_KEEPALIVE_FRAMES = (EMPTY, U32_VERSION, U32_HEARTBEAT, _U32.pack(HEARTBEAT_KEEPALIVE))
HEARTBEAT_METADATA_FRAMES = (EMPTY, U32_VERSION, U32_HEARTBEAT,
                             _U32.pack(HEARTBEAT_REQUEST_METADATA))


def predict_request(msg_id: int, input_type: int, inputs: Sequence[bytes]) -> list[bytes]:
    """Frames of a prediction request (without the ROUTER identity frame)."""
    n = len(inputs)
    header = array("Q", [input_type, n])
    header.extend(len(x) for x in inputs)
    hbytes = header.tobytes() if _LITTLE else _swap(header)
    return [EMPTY, U32_VERSION, U32_CONTENT, _U32.pack(msg_id), U32_PREDICT,
            _U64.pack(len(hbytes)), hbytes, *inputs]


_LITTLE = array("H", [1]).tobytes() == b"\x01\x00"


def _swap(a: array[int]) -> bytes:
    b = array(a.typecode, a)
    b.byteswap()
    return b.tobytes()


def parse_predict_request(frames: Sequence[bytes]) -> tuple[bytes, int, list[bytes]]:
    """Container side: frames after ``["", version, type]`` of a content
    message -> (msg_id bytes, input type, raw inputs)."""
    if len(frames) < 4:
        raise ProtocolError("truncated prediction request")
    msg_id = frames[0]
    if len(msg_id) != 4:
        raise ProtocolError("message id must be 4 bytes")
    if unpack_u32(frames[1]) != REQUEST_PREDICT:
        raise ProtocolError(f"unsupported request type {unpack_u32(frames[1])}")
    hlen = _U64.unpack(frames[2])[0] if len(frames[2]) == 8 else -1
    header = frames[3]
    if hlen != len(header) or hlen % 8 or hlen < 16:
        raise ProtocolError("bad input header length")
    values = array("Q")
    values.frombytes(header)
    if not _LITTLE:
        values.byteswap()
    input_type, n = values[0], values[1]
    inputs = list(frames[4:])
    if n != len(inputs) or len(values) != n + 2:
        raise ProtocolError(f"header announces {n} inputs, message has {len(inputs)}")
    for i, x in enumerate(inputs, 2):
        if values[i] != len(x):
            raise ProtocolError("input size does not match header")
    return msg_id, input_type, inputs


# ---------------------------------------------------------------------------
# Container -> frontend
# ---------------------------------------------------------------------------

HEARTBEAT_FRAMES = (EMPTY, U32_HEARTBEAT)


def new_container(model_name: str, model_version: str, input_type: int) -> list[bytes]:
    return [EMPTY, U32_NEW_CONTAINER, model_name.encode(), str(model_version).encode(),
            str(int(input_type)).encode(), U32_VERSION]


def predict_response(msg_id: bytes, outputs: Sequence[bytes]) -> list[bytes]:
    header = array("Q", [len(outputs)])
    header.extend(len(x) for x in outputs)
    hbytes = header.tobytes() if _LITTLE else _swap(header)
    return [EMPTY, U32_CONTENT, msg_id, _U64.pack(len(hbytes)), hbytes, *outputs]


def parse_predict_response(frames: Sequence[bytes]) -> tuple[int, list[bytes]]:
    """Frontend side: frames after ``["", u32 1]`` -> (msg id, outputs)."""
    if len(frames) < 3:
        raise ProtocolError("truncated prediction response")
    msg_id = unpack_u32(frames[0])
    if len(frames[1]) != 8:
        raise ProtocolError("header length must be a u64")
    hlen = _U64.unpack(frames[1])[0]
    header = frames[2]
    if hlen != len(header) or hlen % 8 or hlen < 8:
        raise ProtocolError("bad output header length")
    sizes = array("Q")
    sizes.frombytes(header)
    if not _LITTLE:
        sizes.byteswap()
    outputs = list(frames[3:])
    if sizes[0] != len(outputs) or len(sizes) != len(outputs) + 1:
        raise ProtocolError(f"header announces {sizes[0]} outputs, message has {len(outputs)}")
    return msg_id, outputs


# ---------------------------------------------------------------------------
# Inputs: JSON values <-> wire bytes
# ---------------------------------------------------------------------------


def may_hold_booleans(text: bytes) -> bool:
    """False when JSON ``text`` holds no ``true`` or ``false``: it has no
    ``f`` and no ``r`` byte (two scans at memory speed, no parse)."""
    return b"f" in text or b"r" in text


def encode_input(input_type: InputType, value: object, may_hold_booleans: bool = True) -> bytes:
    """One JSON input value -> its wire bytes; ValidationError if it does not fit.

    Numbers: a non-empty list of numbers (``true`` and ``false`` refused:
    ``struct`` would pack them as 1 and 0).  Strings: a string.  Bytes: a
    base64 string.  Looking for booleans costs more than packing the
    numbers: a caller that knows the JSON text had none
    (:func:`may_hold_booleans`) passes False to skip the look.
    """
    code = _STRUCT_CODES.get(input_type)
    if code is not None:
        if type(value) is not list or not value:
            raise ValidationError(f"input must be a non-empty list of numbers for input type "
                                  f"{input_type.label}, got {_describe(value)}")
        key = (code, len(value))
        packer = _PACKERS.get(key)
        if packer is None:
            packer = _PACKERS[key] = struct.Struct(f"<{len(value)}{code}").pack
            if len(_PACKERS) > 4096:
                _PACKERS.clear()
        try:
            packed = packer(*value)
        except struct.error:
            packed = b""
        if not packed or (may_hold_booleans and bool in map(type, value)):
            raise ValidationError(
                f"input must be a list of {'32-bit integers' if code == 'i' else 'numbers'} "
                f"for input type {input_type.label}, got {_describe_items(value)}")
        return packed
    if input_type is InputType.STRINGS:
        if type(value) is not str:
            raise ValidationError(f"input must be a string for input type strings, "
                                  f"got {_describe(value)}")
        return value.encode()
    if type(value) is not str:
        raise ValidationError(f"input must be a base64 string for input type bytes, "
                              f"got {_describe(value)}")
    import binascii
    try:
        return binascii.a2b_base64(value.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValidationError(f"input is not valid base64: {exc}") from None


def _describe(value: object) -> str:
    if isinstance(value, list):
        return "an empty list" if not value else f"a list of {type(value[0]).__name__}"
    return f"a {type(value).__name__}" if value is not None else "null"


def _describe_items(value: list[Any]) -> str:
    kinds = sorted({type(v).__name__ for v in value})
    return "a list holding " + ", ".join(kinds)


def decode_inputs(input_type: int, raw: Sequence[bytes]) -> list[Any]:
    """Container side: wire bytes -> what a model's predict function receives:
    numpy arrays for numbers, str for strings, bytes for bytes."""
    dtype = _DTYPES_BY_CODE.get(input_type)
    if dtype is not None:
        return [np.frombuffer(x, dtype=dtype) for x in raw]
    it = InputType(input_type)
    if it is InputType.STRINGS:
        return [bytes(x).decode("utf-8") for x in raw]
    return [bytes(x) for x in raw]


# ---------------------------------------------------------------------------
# Outputs: model results <-> wire strings
# ---------------------------------------------------------------------------

#: A model that raised answers each input of the batch with this JSON object;
#: the frontend turns it into the default output with the error as explanation.
ERROR_KEY = "__clipper_error__"
ERROR_PREFIX = b'{"' + ERROR_KEY.encode() + b'":'


def encode_error(message: str) -> bytes:
    import json

    return b"{" + json.dumps(ERROR_KEY).encode() + b":" + json.dumps(message).encode() + b"}"


def decode_error(output: bytes) -> str | None:
    """The error message if ``output`` is an error marker, else None."""
    if not output.startswith(ERROR_PREFIX):
        return None
    import json

    try:
        return str(json.loads(output)[ERROR_KEY])
    except (ValueError, KeyError, TypeError):
        return None
