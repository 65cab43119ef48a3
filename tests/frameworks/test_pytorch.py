"""deployers.pytorch end to end: a tiny Linear with fixed weights."""

from __future__ import annotations

import pytest

from clipper_admin.deployers import pytorch as pytorch_deployer

from .conftest import query

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.frameworks


def linear() -> torch.nn.Module:
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [0.25, 3.0, -1.0]]))
        model.bias.copy_(torch.tensor([0.1, -0.2]))
    return model


def predict(model, inputs):
    import numpy as np
    import torch

    with torch.no_grad():
        out = model(torch.tensor(np.stack(inputs), dtype=torch.float32))
    return [row.tolist() for row in out]


def test_deploy_pytorch_model_answers_what_torch_computes(cluster, ask):
    model = linear()
    pytorch_deployer.create_endpoint(cluster, "torch-linear", "doubles", predict, model)
    x = [1.0, 2.0, 3.0]
    expected = model(torch.tensor([x])).detach()[0]
    got = torch.tensor(ask("torch-linear", x))
    # the fixed weights, so the replica restored them rather than a fresh initialisation
    torch.testing.assert_close(got, expected)


def test_a_second_version_with_other_weights_takes_over(cluster):
    model = linear()
    pytorch_deployer.create_endpoint(cluster, "torch-v", "doubles", predict, model)
    with torch.no_grad():
        model.bias.fill_(100.0)
    pytorch_deployer.deploy_pytorch_model(cluster, "torch-v", 2, "doubles", predict, model)
    # the frontends follow the new current version within a second
    query(cluster, "torch-v", [0.0, 0.0, 0.0], until=lambda out: out == [100.0, 100.0])


def test_a_module_class_defined_in_the_test_travels_with_the_model(cluster, ask):
    class Doubler(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.tensor(2.0))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.sum(dim=1) * self.scale

    def run(model, inputs):
        with torch.no_grad():
            return [float(v) for v in model(torch.tensor([list(x) for x in inputs]))]

    pytorch_deployer.create_endpoint(cluster, "torch-custom", "doubles", run, Doubler())
    assert ask("torch-custom", [1.5, 2.5]) == pytest.approx(8.0)


def test_not_a_module_is_refused_and_nothing_is_deployed(cluster):
    from clipper_core.errors import ClipperException

    with pytest.raises(ClipperException, match="torch.nn.Module"):
        pytorch_deployer.create_endpoint(cluster, "torch-bad", "doubles", predict, object())
    assert cluster.get_model_info("torch-bad", 1) is None
