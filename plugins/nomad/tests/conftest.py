"""Fixtures of the nomad plugin's tests: a fake Nomad agent per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from nomad_helpers import SUM_MODEL, FakeNomad


@pytest.fixture
def fake_nomad(tmp_path: Path) -> Iterator[FakeNomad]:
    """A fake Nomad agent for one test; every task process is killed after it."""
    fake = FakeNomad(tmp_path / "nomad").start()
    try:
        yield fake
    finally:
        fake.stop()
    assert fake.pids() == [], "the fake left task processes running"


@pytest.fixture
def sum_model_dir(tmp_path: Path) -> Path:
    """A model directory whose predict() answers {"version", "sum"}."""
    path = tmp_path / "sum-model"
    path.mkdir()
    (path / "predict.py").write_text(SUM_MODEL)
    return path
