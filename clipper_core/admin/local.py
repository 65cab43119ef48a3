"""Checks that run on the caller's machine, without a cluster."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ClipperException, ValidationError
from ..models import InputType


def _inputs(query: Any) -> list[Any]:
    queries = query if isinstance(query, list) else [query]
    inputs: list[Any] = []
    for q in queries:
        if not isinstance(q, dict) or not ({"input", "input_batch"} & q.keys()):
            raise ValidationError(
                "query must be {'input': x} or {'input_batch': [x, ...]} (or a list of them)",
                argument="query", value=q)
        if "input" in q:
            inputs.append(q["input"])
        else:
            batch = q["input_batch"]
            if not isinstance(batch, list):
                raise ValidationError("input_batch must be a list", argument="query")
            inputs.extend(batch)
    return inputs


def check_predict_function(query: Any, func: Callable[[list[Any]], Any],
                           input_type: str) -> list[Any]:
    """Run ``func`` after a cloudpickle round trip on the inputs of ``query``
    (``{"input": x}`` or ``{"input_batch": [...]}``, decoded as the query
    frontend does: bytes are base64) and return its outputs.

    Raises ClipperException when the query does not match ``input_type`` or
    ``func`` does not return one output per input.
    """
    import cloudpickle

    from ..rpc import decode_inputs, encode_input

    kind = InputType.parse(input_type)
    inputs = decode_inputs(kind, [encode_input(kind, x) for x in _inputs(query)])
    reloaded = cloudpickle.loads(cloudpickle.dumps(func))
    outputs = reloaded(inputs)
    try:
        outputs = list(outputs)
    except TypeError:
        raise ClipperException(
            f"The predict function returned {type(outputs).__name__}, not a list "
            "with one output per input") from None
    if len(outputs) != len(inputs):
        raise ClipperException(
            f"The predict function returned {len(outputs)} outputs for {len(inputs)} "
            "inputs; it must return one output per input")
    return outputs
