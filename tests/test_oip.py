"""The Open Inference Protocol v2 (REST) on a real query frontend, called by
a real client (``tritonclient.http``): the same outputs as ``/predict``."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from serving import Serving, write_model

th = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

SUM = """
def predict(xs):
    return [str(sum(x)) for x in xs]
"""
REVERSE = """
def predict(xs):
    return [x[::-1] for x in xs]
"""
HEX = """
def predict(xs):
    return [x.hex() for x in xs]
"""
FAILS = """
def predict(xs):
    raise RuntimeError("boom")
"""
#: app -> (input type, model source)
APPS = {"doubles": ("doubles", SUM), "ints": ("ints", SUM), "floats": ("floats", SUM),
        "strings": ("strings", REVERSE), "bytes": ("bytes", HEX)}
DTYPES = {"doubles": (np.float64, "FP64"), "ints": (np.int32, "INT32"),
          "floats": (np.float32, "FP32")}


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serving]:
    tmp = tmp_path_factory.mktemp("oip")
    s = Serving(tmp, frontend_args=("--prometheus-port", "0"))
    try:
        s.start_frontend()
        for app, (input_type, source) in APPS.items():
            model_dir = write_model(tmp / app, source)
            s.deploy(app, f"{app}-model", input_type=input_type)
            s.start_replica(model_dir, f"{app}-model", "1", input_type=input_type)
        s.deploy("pinned", "pinned-model", "1")
        s.deploy("pinned", "pinned-model", "2")
        s.start_replica(write_model(tmp / "p1", SUM), "pinned-model", "1")
        s.deploy("failing", "failing-model")
        s.start_replica(write_model(tmp / "f", FAILS), "failing-model", "1")
        s.deploy("unlinked", "nothing", link=False)
        for app in APPS:
            s.wait_connected(f"{app}-model")
        s.wait_connected("pinned-model")
        s.wait_connected("failing-model")
        yield s
    finally:
        s.close()


@pytest.fixture
def client(serving: Serving) -> Iterator[th.InferenceServerClient]:
    c = th.InferenceServerClient(f"127.0.0.1:{serving.port}")
    yield c
    c.close()


def _tensor(values: np.ndarray, datatype: str, binary: bool = False) -> th.InferInput:
    tensor = th.InferInput("input", list(values.shape), datatype)
    tensor.set_data_from_numpy(values, binary_data=binary)
    return tensor


def _infer(client: th.InferenceServerClient, app: str, tensor: th.InferInput,
           **kw: object) -> th.InferResult:
    return client.infer(app, [tensor], outputs=[th.InferRequestedOutput("output",
                                                                        binary_data=False)],
                        **kw)


def _texts(values: np.ndarray) -> list[str]:
    """A BYTES output as strings (tritonclient gives str from JSON)."""
    return [v.decode() if isinstance(v, bytes) else v for v in values.tolist()]


def test_health_and_server_metadata(client: th.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.get_server_metadata()["name"] == "clipper"


def test_model_metadata_and_readiness(client: th.InferenceServerClient) -> None:
    meta = client.get_model_metadata("doubles")
    assert meta["name"] == "doubles" and meta["versions"] == ["1"]
    assert meta["inputs"][0]["datatype"] == "FP64"
    assert client.get_model_metadata("strings")["inputs"][0]["datatype"] == "BYTES"
    assert client.is_model_ready("doubles")
    assert client.is_model_ready("pinned", model_version="1")
    assert not client.is_model_ready("unlinked")
    assert client.get_model_metadata("pinned", model_version="2")["versions"] == ["2"]
    with pytest.raises(InferenceServerException, match="not found"):
        client.get_model_metadata("nope")


@pytest.mark.parametrize("app", ["doubles", "ints", "floats"])
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_numeric_apps_answer_as_predict(serving: Serving, client: th.InferenceServerClient,
                                        app: str, binary: bool) -> None:
    dtype, datatype = DTYPES[app]
    rows = [[1, 2, 3], [4, 5, 7]]
    expected = [p["output"] for p in serving.post(app, {"input_batch": rows})
                .json()["batch_predictions"]]
    result = _infer(client, app, _tensor(np.array(rows, dtype=dtype), datatype, binary))
    assert result.as_numpy("output").tolist() == expected
    one = _infer(client, app, _tensor(np.array([[1, 2, 3]], dtype=dtype), datatype, binary))
    assert one.as_numpy("output").tolist() == expected[:1]
    flat = _infer(client, app, _tensor(np.array([4, 5, 7], dtype=dtype), datatype, binary))
    assert flat.as_numpy("output").tolist() == expected[1:]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_strings_app_answers_as_predict(serving: Serving, client: th.InferenceServerClient,
                                        binary: bool) -> None:
    words = ["hello", "clipper"]
    expected = [p["output"] for p in serving.post("strings", {"input_batch": words})
                .json()["batch_predictions"]]
    result = _infer(client, "strings", _tensor(np.array(words, dtype=object), "BYTES", binary))
    assert _texts(result.as_numpy("output")) == expected == ["olleh", "reppilc"]


def test_bytes_app_answers_as_predict(serving: Serving, client: th.InferenceServerClient) -> None:
    raw = [b"\x00\x01\xfe\xff", b"xyz"]
    expected = [p["output"] for p in serving.post(
        "bytes", {"input_batch": [base64.b64encode(r).decode() for r in raw]})
        .json()["batch_predictions"]]
    # binary: the elements' own bytes
    result = _infer(client, "bytes", _tensor(np.array(raw, dtype=object), "BYTES", True))
    assert _texts(result.as_numpy("output")) == expected == ["0001feff", "78797a"]
    # JSON: base64 with the content_type parameter
    r = serving.http.post("/v2/models/bytes/infer", json={"inputs": [
        {"name": "input", "shape": [2], "datatype": "BYTES",
         "data": [base64.b64encode(x).decode() for x in raw],
         "parameters": {"content_type": "base64"}}]})
    assert r.json()["outputs"][0]["data"] == expected


def test_version_in_the_path_pins_the_model_version(client: th.InferenceServerClient) -> None:
    tensor = _tensor(np.array([[1.0, 2.0]]), "FP64")
    result = _infer(client, "pinned", tensor, model_version="1")
    assert result.get_response()["model_version"] == "1"
    assert result.as_numpy("output").tolist() == [3.0]
    with pytest.raises(InferenceServerException, match="Requested version: 9 does not exist"):
        _infer(client, "pinned", tensor, model_version="9")


def test_defaults_are_outputs_with_parameters(client: th.InferenceServerClient) -> None:
    result = _infer(client, "failing", _tensor(np.array([[1.0]]), "FP64"))
    answer = result.get_response()
    assert answer["parameters"]["defaults"] == 1
    assert "boom" in answer["parameters"]["default_explanation"]
    assert _texts(result.as_numpy("output")) == ["default"]


def test_request_id_is_echoed(client: th.InferenceServerClient) -> None:
    result = _infer(client, "doubles", _tensor(np.array([[1.0]]), "FP64"), request_id="r-7")
    assert result.get_response()["id"] == "r-7"


def test_errors_as_the_protocol_says(serving: Serving, client: th.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException, match=r"\[404\].*not found"):
        _infer(client, "nope", _tensor(np.array([[1.0]]), "FP64"))
    with pytest.raises(InferenceServerException, match=r"\[400\].*datatype 'BYTES'"):
        _infer(client, "doubles", _tensor(np.array(["x"], dtype=object), "BYTES"))
    http = serving.http
    for body, needle in [(b"{", "not valid JSON"), (b"[]", "JSON object"),
                         (b'{"inputs": []}', "exactly one input"),
                         (b'{"inputs": [{"name": "input", "shape": [2], "datatype": "FP64",'
                          b' "data": [1.0]}]}', "holds 2 elements"),
                         (b'{"inputs": [{"name": "input", "shape": [0], "datatype": "FP64",'
                          b' "data": []}]}', "positive"),
                         (b'{"inputs": [{"name": "input", "shape": [1], "datatype": "FP64",'
                          b' "data": [1.0]}], "outputs": [{"name": "other"}]}',
                          "unknown output")]:
        r = http.post("/v2/models/doubles/infer", content=body)
        assert r.status_code == 400, body
        assert set(r.json()) == {"error"} and needle in r.json()["error"]
    r = http.get("/v2/models/doubles/versions/1/nope")
    assert r.status_code == 404 and "error" in r.json()
    r = http.post("/v2/models/doubles/ready", content=b"{}")
    assert r.status_code == 404


def test_oip_requests_count_in_the_apps_metrics(serving: Serving,
                                                client: th.InferenceServerClient) -> None:
    before = serving.metrics()["applications"]["ints"]["requests"]
    _infer(client, "ints", _tensor(np.array([[9, 9], [8, 8]], dtype=np.int32), "INT32"))
    assert serving.metrics()["applications"]["ints"]["requests"] == before + 2


def test_the_asgi_adapter_serves_the_same_routes(tmp_path: Path) -> None:
    s = Serving(tmp_path, http_server="uvicorn", frontend_args=("--prometheus-port", "0"))
    try:
        s.start_frontend()
        s.deploy("strings", "m", input_type="strings")
        s.start_replica(write_model(tmp_path / "m", REVERSE), "m", "1", input_type="strings")
        s.wait_connected("m")
        client = th.InferenceServerClient(f"127.0.0.1:{s.port}")
        assert client.is_server_live() and client.is_model_ready("strings")
        result = _infer(client, "strings", _tensor(np.array(["abc"], dtype=object), "BYTES"))
        assert _texts(result.as_numpy("output")) == ["cba"]
        client.close()
    finally:
        s.close()
