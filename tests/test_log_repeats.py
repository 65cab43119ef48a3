"""clipper_core.logs.RepeatFilter: repeated warnings from one peer rate-limited."""

from __future__ import annotations

import io
import json
import logging

import pytest

from clipper_core import logs


@pytest.fixture(autouse=True)
def _restore_root_logger():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(logs.time, "monotonic", lambda: now[0])
    return now


def lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


def test_one_line_per_peer_per_period_with_the_count(clock, monkeypatch):
    monkeypatch.delenv(logs.REPEAT_ENV, raising=False)
    out = io.StringIO()
    logs.configure("INFO", "plain", stream=out)
    log = logging.getLogger("clipper.rpc")
    for i in range(200):  # 200 malformed messages from one peer, each with its own bytes
        log.warning("malformed message %r", bytes([i]), extra={"peer": b"peer-a"})
    log.warning("malformed message %r", b"x", extra={"peer": b"peer-b"})
    assert len(lines(out)) == 2
    clock[0] += 59.0
    log.warning("malformed message %r", b"y", extra={"peer": b"peer-a"})
    assert len(lines(out)) == 2
    clock[0] += 1.0
    log.warning("malformed message %r", b"z", extra={"peer": b"peer-a"})
    last = lines(out)[-1]
    assert "malformed message b'z' (200 more like this since the last one)" in last
    assert len(lines(out)) == 3


def test_different_messages_without_a_peer_are_not_merged(clock):
    out = io.StringIO()
    logs.configure("INFO", "plain", stream=out)
    log = logging.getLogger("clipper.query")
    for name in ("a", "b", "c"):
        log.warning("replica %s lost", name)
    log.warning("replica %s lost", "a")
    assert [line.split(": ", 1)[1] for line in lines(out)] == [
        "replica a lost", "replica b lost", "replica c lost"]


def test_info_lines_and_other_loggers_pass(clock):
    out = io.StringIO()
    logs.configure("INFO", "plain", stream=out)
    for _ in range(5):
        logging.getLogger("clipper.one").info("same")
        logging.getLogger("clipper.one").warning("same", extra={"peer": "p"})
        logging.getLogger("clipper.two").warning("same", extra={"peer": "p"})
    assert len(lines(out)) == 5 + 2


def test_json_carries_the_count(clock):
    out = io.StringIO()
    logs.configure("INFO", "json", stream=out)
    log = logging.getLogger("clipper.rpc")
    for _ in range(4):
        log.warning("bad frame", extra={"peer": "10.0.0.1:5000"})
    clock[0] += 61.0
    log.warning("bad frame", extra={"peer": "10.0.0.1:5000"})
    first, second = (json.loads(x) for x in lines(out))
    assert first["peer"] == "10.0.0.1:5000" and "suppressed" not in first
    assert second["suppressed"] == 3


def test_zero_period_turns_it_off(clock, monkeypatch):
    monkeypatch.setenv(logs.REPEAT_ENV, "0")
    out = io.StringIO()
    logs.configure("INFO", "plain", stream=out)
    for _ in range(10):
        logging.getLogger("clipper.x").warning("again")
    assert len(lines(out)) == 10


def test_memory_is_bounded(clock):
    flt = logs.RepeatFilter(period_s=60.0, max_keys=100)
    log = logging.getLogger("clipper.many")
    for i in range(1000):
        record = log.makeRecord(log.name, logging.WARNING, __file__, 1, "bad", (), None,
                                extra={"peer": f"peer-{i}"})
        assert flt.filter(record)
    assert len(flt._seen) <= 100
