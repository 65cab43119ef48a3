"""The model directory contract shared by the framework deployers: the manifest,
loading once at start-up, and the errors.  No framework needed (not marked)."""

from __future__ import annotations

import sys
import types

import cloudpickle
import pytest

from clipper_core import runtime
from clipper_core.deployers import deployer_utils as du
from clipper_core.errors import ClipperException


def test_manifest_round_trip_and_unknown_framework(tmp_path):
    assert du.read_manifest(tmp_path) is None
    du.write_manifest(tmp_path, "pytorch", model="m.pkl")
    assert du.read_manifest(tmp_path) == {"framework": "pytorch", "format": 1, "model": "m.pkl"}
    with pytest.raises(ValueError, match="unknown framework 'caffe'"):
        du.write_manifest(tmp_path, "caffe")
    (tmp_path / du.MANIFEST_FILE).write_text('{"framework": "caffe"}')
    with pytest.raises(ClipperException, match="names no known framework"):
        du.read_manifest(tmp_path)


def test_runtime_loads_the_model_once_and_binds_it_first(tmp_path, monkeypatch):
    loads = []

    def load_model_args(model_dir, manifest):
        loads.append(manifest["weights"])
        return ("spark", {"w": manifest["weights"]})

    fake = types.ModuleType("fake_loader")
    fake.load_model_args = load_model_args
    monkeypatch.setitem(sys.modules, "fake_loader", fake)
    monkeypatch.setitem(du.LOADERS, "pyspark", "fake_loader")
    (tmp_path / du.FUNC_FILE).write_bytes(cloudpickle.dumps(
        lambda spark, model, xs: [f"{spark}:{model['w']}:{x}" for x in xs]))
    du.write_manifest(tmp_path, "pyspark", weights=3)
    predict = runtime.load_model(tmp_path)
    assert predict([1, 2]) == ["spark:3:1", "spark:3:2"]
    assert predict([5]) == ["spark:3:5"]
    assert loads == [3]


def test_a_plain_python_model_is_untouched(tmp_path):
    (tmp_path / du.FUNC_FILE).write_bytes(cloudpickle.dumps(lambda xs: [len(xs)] * len(xs)))
    assert runtime.load_model(tmp_path)([1, 2]) == [2, 2]


def test_require_names_the_package_to_install():
    with pytest.raises(ClipperException, match="pip install no-such-framework"):
        du.require("no_such_framework_module", "Nothing", "no-such-framework")


def test_deploy_with_model_cleans_up_when_saving_fails(tmp_path):
    seen = []

    def save(model_dir):
        seen.append(model_dir)
        raise ClipperException("cannot save")

    with pytest.raises(ClipperException, match="cannot save"):
        du.deploy_with_model(object(), "m", 1, "doubles", len, save, base_image=None,
                             labels=None, registry=None, num_replicas=1, batch_size=-1,
                             pkgs_to_install=None)
    assert seen and not seen[0].exists()
