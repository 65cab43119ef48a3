"""The shared model registry contract on the ``directory`` registry."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from clipper_local_process.artifacts import build_artifact

from clipper_core.testing.registry import MakeArtifact, RegistryContract


class TestDirectoryRegistryContract(RegistryContract):
    registry_name = "directory"

    @pytest.fixture
    def registry_options(self, tmp_path: Path) -> dict[str, Any]:
        return {"root": str(tmp_path / "registry")}

    @pytest.fixture
    def make_artifact(self, tmp_path: Path) -> MakeArtifact:
        def make(tag: str) -> str:
            model = tmp_path / "models" / tag
            model.mkdir(parents=True, exist_ok=True)
            (model / "predict.py").write_text(f"def predict(xs):\n    return [{tag!r}] * len(xs)\n")
            return str(build_artifact("m", tag, str(model), tmp_path / "staging", None,
                                      sys.executable, progress=lambda _line: None))
        return make
