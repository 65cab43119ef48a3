"""Model artifacts on disk and the ``directory`` registry."""

from __future__ import annotations

import json

import pytest
from clipper_local_process import DirectoryRegistry, LocalProcessContainerManager
from clipper_local_process.artifacts import Artifact

from clipper_core.errors import BuildError, ContainerError, ValidationError
from clipper_core.plugins import get_backend


@pytest.fixture
def model_dir(tmp_path):
    path = tmp_path / "src"
    (path / "pkg").mkdir(parents=True)
    (path / "predict.py").write_text("def predict(xs):\n    return [str(x) for x in xs]\n")
    (path / "pkg" / "data.txt").write_text("weights")
    (path / "__pycache__").mkdir()
    (path / "__pycache__" / "junk.pyc").write_bytes(b"x")
    return path


@pytest.fixture
def manager(tmp_path):
    return LocalProcessContainerManager(cluster_name="art", state_dir=tmp_path / "state",
                                        progress=lambda _m: None)


def test_the_backends_implement_the_core_protocols(manager, tmp_path):
    from clipper_core.interfaces import ContainerManager, ModelRegistry

    assert isinstance(manager, ContainerManager)
    assert isinstance(DirectoryRegistry(tmp_path), ModelRegistry)
    assert get_backend("container_managers", "local_process").factory \
        is LocalProcessContainerManager


def test_build_model_makes_a_versioned_copy(manager, model_dir, tmp_path):
    ref = manager.build_model("m", "1", str(model_dir), "default")
    assert ref == "local/m:1"
    art = manager.resolve_artifact(ref)
    assert art.path == (tmp_path / "state" / "models" / "m" / "1").resolve()
    assert (art.model_path / "predict.py").is_file()
    assert (art.model_path / "pkg" / "data.txt").read_text() == "weights"
    assert not (art.model_path / "__pycache__").exists()
    assert art.python is None
    meta = json.loads((art.path / "artifact.json").read_text())
    assert meta["name"] == "m" and meta["version"] == "1" and meta["packages"] == []
    # the copy is independent of the source
    (model_dir / "predict.py").write_text("changed")
    assert "def predict" in (art.model_path / "predict.py").read_text()


def test_rebuild_replaces_the_version_and_keeps_others(manager, model_dir):
    one = manager.build_model("m", "1", str(model_dir), "default")
    (model_dir / "extra.txt").write_text("new")
    again = manager.build_model("m", "1", str(model_dir), "default")
    two = manager.build_model("m", "2", str(model_dir), "default")
    assert one == again and one != two
    assert (manager.resolve_artifact(again).model_path / "extra.txt").exists()
    assert not list((manager.state_dir / "models").glob(".staging-*"))


def test_build_into_a_registry_directory(manager, model_dir, tmp_path):
    ref = manager.build_model("m", "3", str(model_dir), "default",
                              container_registry=str(tmp_path / "registry"))
    assert ref == str((tmp_path / "registry" / "m" / "3").resolve())
    registry = get_backend("registries", "directory").factory(root=tmp_path / "registry")
    assert isinstance(registry, DirectoryRegistry)
    assert registry.exists(ref) and registry.exists("m:3")
    assert not registry.exists("m:4")


def test_publish_copies_an_artifact_from_elsewhere(manager, model_dir, tmp_path):
    ref = str(manager.resolve_artifact(manager.build_model("m", "1", str(model_dir),
                                                           "default")).path)
    other = DirectoryRegistry(tmp_path / "other")
    copied = other.publish("m", "1", ref)
    assert copied != ref and other.exists(copied) and Artifact.load(ref)


def test_missing_model_dir_is_a_build_error(manager, tmp_path):
    with pytest.raises(BuildError, match="is not a directory"):
        manager.build_model("m", "1", str(tmp_path / "nope"), "default")


def test_bad_names_are_rejected(manager, model_dir):
    with pytest.raises(ValidationError, match="model name"):
        manager.build_model("Bad_Name", "1", str(model_dir), "default")


def test_pip_failure_is_a_build_error_with_pips_output(manager, model_dir):
    with pytest.raises(BuildError, match="pip install") as info:
        manager.build_model("m", "1", str(model_dir), "default",
                            pkgs_to_install=["definitely-not-a-package-clipper-xyz"])
    assert "definitely-not-a-package-clipper-xyz" in str(info.value)
    assert not list((manager.state_dir / "models").glob(".staging-*"))


def test_a_plain_model_dir_runs_as_is_but_an_image_cannot(model_dir):
    assert Artifact.load(str(model_dir)).model_path == model_dir
    with pytest.raises(ContainerError, match="cannot run 'clipper/noop:1'"):
        Artifact.load("clipper/noop:1")


def test_build_refuses_pip_options_and_paths(manager, model_dir):
    for bad in ("./definitely-not-a-package-dir", "--index-url=http://x", "numpy\nx"):
        with pytest.raises(ValidationError, match="pkgs_to_install"):
            manager.build_model("m", "1", str(model_dir), "default", pkgs_to_install=[bad])
