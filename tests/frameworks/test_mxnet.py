"""deployers.mxnet: retired upstream, says so and what to use instead."""

from __future__ import annotations

import inspect

import pytest

from clipper_admin.deployers import mxnet as mxnet_deployer
from clipper_core.errors import ClipperException

pytestmark = pytest.mark.frameworks


def test_deploy_and_create_endpoint_raise_naming_the_replacement():
    calls = [lambda: mxnet_deployer.deploy_mxnet_model(None, "m", 1, "doubles", print, None,
                                                       None),
             lambda: mxnet_deployer.create_endpoint(None, "m", "doubles", print, None, None)]
    for call in calls:
        with pytest.raises(ClipperException) as info:
            call()
        assert "retired" in str(info.value) and "ONNX" in str(info.value)
        assert "deploy_onnx_model" in str(info.value)


def test_clippers_parameters_are_accepted():
    params = list(inspect.signature(mxnet_deployer.deploy_mxnet_model).parameters)
    assert params == ["clipper_conn", "name", "version", "input_type", "func", "mxnet_model",
                      "mxnet_data_shapes", "base_image", "labels", "registry", "num_replicas",
                      "batch_size", "pkgs_to_install"]
