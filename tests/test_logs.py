"""clipper_core.logs: plain and JSON log lines, chosen by argument or environment."""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import subprocess
import sys

import httpx
import pytest
from conftest import free_port, wait_until

from clipper_core import logs


@pytest.fixture(autouse=True)
def _restore_root_logger():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_level_logger_message_extra_and_traceback():
    out = io.StringIO()
    logs.configure("INFO", "json", stream=out)
    log = logging.getLogger("clipper.test")
    log.debug("not shown")
    log.info("hello %s", "world", extra={"app": "hello", "count": 3})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert first["level"] == "INFO" and first["logger"] == "clipper.test"
    assert first["message"] == "hello world"
    assert (first["app"], first["count"]) == ("hello", 3)
    assert first["pid"] == os.getpid() and first["ts"].endswith("Z")
    assert "exc_info" not in first
    assert second["level"] == "ERROR"
    assert "RuntimeError: boom" in second["exc_info"]


def test_plain_is_the_default_and_configure_twice_prints_once(monkeypatch):
    monkeypatch.delenv(logs.FORMAT_ENV, raising=False)
    out = io.StringIO()
    logs.configure("INFO", stream=out)
    logs.configure("INFO", stream=out)
    logging.getLogger("clipper.test").warning("careful")
    assert out.getvalue().count("careful") == 1
    assert " WARNING clipper.test: careful" in out.getvalue()


def test_environment_picks_the_format(monkeypatch):
    monkeypatch.setenv(logs.FORMAT_ENV, "JSON")
    out = io.StringIO()
    logs.configure(stream=out)
    logging.getLogger("x").info("from env")
    assert json.loads(out.getvalue())["message"] == "from env"
    monkeypatch.setenv(logs.FORMAT_ENV, "xml")
    with pytest.raises(ValueError, match="Unknown log format 'xml'"):
        logs.configure(stream=out)


def test_arguments_default_to_the_environment(monkeypatch):
    monkeypatch.setenv(logs.LEVEL_ENV, "DEBUG")
    parser = argparse.ArgumentParser()
    logs.add_arguments(parser)
    args = parser.parse_args([])
    assert (args.log_level, args.log_format) == ("DEBUG", None)
    assert parser.parse_args(["--log-format", "json"]).log_format == "json"
    with pytest.raises(SystemExit):
        parser.parse_args(["--log-format", "yaml"])


def test_management_frontend_logs_json_lines(tmp_path):
    """A real management process started with --log-format json writes only JSON lines."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipper_frontends.management", "--store",
         f"sqlite:///{tmp_path / 'state.db'}", "--port", str(port), "--log-format", "json"],
        stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200,
                   timeout=30, what="the management frontend")
        httpx.get(f"http://127.0.0.1:{port}/admin/nothing")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert any("clipper management frontend on" in rec["message"] for rec in lines)
    assert any(rec["logger"].startswith("uvicorn") for rec in lines)
    assert all({"ts", "level", "logger", "message"} <= rec.keys() for rec in lines)
