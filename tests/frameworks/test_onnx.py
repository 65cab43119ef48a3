"""deployers.onnx end to end: a PyTorch export and a .onnx file, on ONNX Runtime."""

from __future__ import annotations

import pytest

from clipper_admin.deployers import onnx as onnx_deployer
from clipper_core.errors import ClipperException

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytestmark = pytest.mark.frameworks


def mlp() -> torch.nn.Module:
    torch.manual_seed(7)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))


def predict(model, inputs):
    import numpy as np

    (out,) = model.run(np.stack(inputs))  # doubles in, the float32 model's input type
    return [float(v[0]) for v in out]


def test_pytorch_model_exported_to_onnx_answers_what_torch_computes(cluster, ask):
    model = mlp()
    onnx_deployer.create_pytorch_endpoint(cluster, "onnx-mlp", "doubles", torch.zeros(1, 4),
                                          predict, model)
    for x in ([1.0, -2.0, 0.5, 3.0], [0.0, 0.25, 4.0, -1.0]):
        expected = float(model(torch.tensor([x])).detach()[0, 0])
        assert ask("onnx-mlp", x) == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_an_onnx_file_deploys_directly(cluster, ask, tmp_path):
    model = mlp()
    path = tmp_path / "mlp.onnx"
    torch.onnx.export(model, (torch.zeros(2, 4),), str(path), input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
                      dynamo=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = [2.0, 1.0, -1.0, 0.5]
    expected = float(session.run(["y"], {"x": torch.tensor([x]).numpy()})[0][0, 0])

    def by_name(model, inputs):
        import numpy as np

        return [float(v[0]) for v in model.run({"x": np.stack(inputs)})[0]]

    onnx_deployer.create_endpoint(cluster, "onnx-file", "doubles", by_name, str(path))
    assert ask("onnx-file", x) == pytest.approx(expected, rel=1e-6)


def test_unknown_backend_and_broken_file_are_refused(cluster, tmp_path):
    with pytest.raises(ClipperException, match="ONNX backend 'tensorrt' is not supported"):
        onnx_deployer.deploy_pytorch_model(cluster, "onnx-trt", 1, "doubles", torch.zeros(1, 4),
                                           predict, mlp(), onnx_backend="tensorrt")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ClipperException, match="ONNX Runtime cannot load the model"):
        onnx_deployer.deploy_onnx_model(cluster, "onnx-junk", 1, "doubles", predict, str(junk))
    assert cluster.get_model_info("onnx-junk", 1) is None
