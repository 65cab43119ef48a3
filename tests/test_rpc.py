"""The RPC v3 codec and input encoding."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from clipper_core import rpc
from clipper_core.errors import ValidationError
from clipper_core.models import InputType
from clipper_core.runtime import run_batch


def test_request_round_trip() -> None:
    inputs = [rpc.encode_input(InputType.DOUBLES, [1.0, 2.5]), rpc.encode_input(InputType.DOUBLES, [3.0])]
    frames = rpc.predict_request(5, 3, inputs)
    assert frames[:5] == [b"", struct.pack("<I", 3), struct.pack("<I", 1), struct.pack("<I", 5),
                          struct.pack("<I", 0)]
    msg_id, input_type, raw = rpc.parse_predict_request(frames[3:])
    assert (msg_id, input_type) == (struct.pack("<I", 5), 3)
    decoded = rpc.decode_inputs(input_type, raw)
    assert [list(x) for x in decoded] == [[1.0, 2.5], [3.0]]


def test_response_round_trip() -> None:
    frames = rpc.predict_response(struct.pack("<I", 9), [b"a", b"bc"])
    assert frames[:2] == [b"", struct.pack("<I", 1)]
    assert rpc.parse_predict_response(frames[2:]) == (9, [b"a", b"bc"])


@pytest.mark.parametrize("frames", [
    [],
    [struct.pack("<I", 1)],
    [struct.pack("<I", 1), struct.pack("<Q", 16), struct.pack("<2Q", 2, 1), b"x"],
    [struct.pack("<I", 1), struct.pack("<Q", 99), struct.pack("<2Q", 1, 1), b"x"],
    [b"12345", struct.pack("<Q", 16), struct.pack("<2Q", 1, 1), b"x"],
])
def test_malformed_responses_raise_protocol_error(frames: list[bytes]) -> None:
    with pytest.raises(rpc.ProtocolError):
        rpc.parse_predict_response(frames)


@pytest.mark.parametrize("input_type, value, dtype", [
    (InputType.INTS, [1, -2, 2**31 - 1], "<i4"),
    (InputType.FLOATS, [0.5, 1.5], "<f4"),
    (InputType.DOUBLES, [0.1, 1e300], "<f8"),
])
def test_numeric_encoding_is_little_endian_typed(input_type, value, dtype) -> None:
    raw = rpc.encode_input(input_type, value)
    assert np.frombuffer(raw, dtype=dtype).tolist() == pytest.approx(value, rel=1e-6)


@pytest.mark.parametrize("input_type, value", [
    (InputType.INTS, [1.5]),
    (InputType.INTS, [2**31]),
    (InputType.DOUBLES, "1.0"),
    (InputType.DOUBLES, [[1.0]]),
    (InputType.DOUBLES, None),
    (InputType.STRINGS, 5),
    (InputType.BYTES, [1]),
    (InputType.BYTES, "%%%"),
])
def test_wrong_inputs_are_validation_errors(input_type, value) -> None:
    with pytest.raises(ValidationError):
        rpc.encode_input(input_type, value)


def test_run_batch_turns_exceptions_into_error_outputs() -> None:
    def boom(inputs):
        raise RuntimeError("kaput")

    outs = run_batch(boom, 3, [b"\x00" * 8, b"\x00" * 8])
    assert len(outs) == 2
    assert rpc.decode_error(outs[0]) == "RuntimeError: kaput"


def test_run_batch_wrong_output_count_and_unserialisable() -> None:
    outs = run_batch(lambda xs: [1], 3, [b"\x00" * 8, b"\x00" * 8])
    assert all("returned 1 outputs for 2 inputs" in rpc.decode_error(o) for o in outs)
    outs = run_batch(lambda xs: [object()], 3, [b"\x00" * 8])
    assert "not JSON-serialisable" in rpc.decode_error(outs[0])


def test_run_batch_encodes_json_values() -> None:
    outs = run_batch(lambda xs: [{"a": np.float32(1.5)}, "text", [1, 2]], 4,
                     [b"x", b"y", b"z"])
    assert outs == [b'{"a":1.5}', b"text", b"[1,2]"]
