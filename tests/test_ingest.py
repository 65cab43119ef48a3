"""The simdjson fast path of request bodies: it must give exactly the wire
bytes of the general path (orjson + rpc.encode_input), or step aside."""

from __future__ import annotations

import random

import orjson
import pytest

from clipper_core import rpc
from clipper_core.models import InputType
from clipper_frontends.query import ingest
from clipper_frontends.query.ingest import DoublesParser

pytestmark = pytest.mark.skipif(not ingest.AVAILABLE, reason="pysimdjson not importable")


def _general(body: bytes) -> bytes:
    return rpc.encode_input(InputType.DOUBLES, orjson.loads(body)["input"])


@pytest.mark.parametrize("body", [
    b'{"input": [1.0, 2.5, -3.25]}',
    b'{"input":[1,2,3]}',                      # integers are accepted for doubles
    b'{"input": [0.1, 1e-320, -0.0, 1.7976931348623157e308, 9007199254740993]}',
    b' {"input" : [ 4 , 5.5 ] } \n',
    b'{"input": [0.5]}',
])
def test_same_bytes_as_the_general_path(body: bytes) -> None:
    assert DoublesParser().single_input(body) == _general(body)


def test_same_bytes_for_random_vectors() -> None:
    rng = random.Random(20170327)
    parser = DoublesParser()
    for _ in range(300):
        n = rng.choice([1, 4, 17, 784])
        values = [rng.choice([rng.uniform(-1e6, 1e6), rng.randint(-10**9, 10**9),
                              rng.random() * 10 ** rng.randint(-300, 300)]) for _ in range(n)]
        body = orjson.dumps({"input": values})
        assert parser.single_input(body) == _general(body)


@pytest.mark.parametrize("body", [
    b'{"input": []}',                          # empty: the general path words the error
    b'{"input": [[1.0], 2.0]}',                # nested: simdjson would flatten it
    b'{"input": [true, 1.0]}',
    b'{"input": [1.0, "2"]}',
    b'{"input": [1e400]}',
    b'{"input": [18446744073709551616]}',      # beyond 64 bits: simdjson refuses
    b'{"input": [1.0], "version": "2"}',       # pinned version: general path
    b'{"input": [1.0], "input": [2.0]}',       # repeated key: general path's rule
    b'{"input_batch": [[1.0]]}',
    b'{"input": {"a": [1.0]}}',
    b'[1.0, 2.0]',
    b'{"input": [1.0]} trailing',
    b'{"input": [1.0,]}',
    b'not json [',
    b'\xef\xbb\xbf{"input": [1.0]}',        # a byte-order mark: orjson's 400 stands
    b'',
])
def test_steps_aside_for_anything_else(body: bytes) -> None:
    parser = DoublesParser()
    assert parser.single_input(body) is None
    # and it keeps working afterwards (no proxy of a document left behind)
    assert parser.single_input(b'{"input": [1.0]}') == _general(b'{"input": [1.0]}')
