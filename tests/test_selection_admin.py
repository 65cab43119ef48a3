"""The admin side of model selection: register with a policy, link several
models, change the policy, read the weights (management frontend in-process)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from clipper_frontends.management import create_app


@pytest.fixture
def admin() -> Iterator[TestClient]:
    with TestClient(create_app("memory://")) as client:
        for name in ("m-a", "m-b", "m-c"):
            assert client.post("/admin/add_model", json={
                "model_name": name, "model_version": "1", "input_type": "doubles"}
                ).status_code == 200
        yield client


def post(client: TestClient, path: str, body: dict[str, Any]) -> Any:
    return client.post(f"/admin/{path}", json=body)


APP = {"name": "app", "input_type": "doubles", "default_output": "-1",
       "latency_slo_micros": 100000}


def test_single_keeps_one_model_and_clippers_wire(admin: TestClient) -> None:
    assert post(admin, "add_app", APP).status_code == 200
    assert post(admin, "add_model_links", {"app_name": "app", "model_names": ["m-a"]}
                ).status_code == 200
    second = post(admin, "add_model_links", {"app_name": "app", "model_names": ["m-b"]})
    assert second.status_code == 409 and "at most one model" in second.text
    info = post(admin, "get_application", {"name": "app"}).json()
    assert info == {**APP, "linked_models": ["m-a"], "candidate_model_names": ["m-a"]}


def test_a_policy_links_several_models_and_shows_weights(admin: TestClient) -> None:
    body = {**APP, "selection_policy": "exp3", "policy_params": {"eta": 0.2}}
    assert post(admin, "add_app", body).status_code == 200
    for name in ("m-a", "m-b", "m-c"):
        assert post(admin, "add_model_links", {"app_name": "app", "model_names": [name]}
                    ).status_code == 200
    assert post(admin, "get_linked_models", {"app_name": "app"}).json() == [
        "m-a", "m-b", "m-c"]
    info = post(admin, "get_application", {"name": "app"}).json()
    assert info["selection_policy"] == "exp3" and info["policy_params"] == {"eta": 0.2}
    weights = post(admin, "get_selection_weights", {"app_name": "app"}).json()
    assert weights["weights"] == {"m-a": pytest.approx(1 / 3, abs=1e-5),
                                  "m-b": pytest.approx(1 / 3, abs=1e-5),
                                  "m-c": pytest.approx(1 / 3, abs=1e-5)}
    # Unlinking the primary promotes the next model.
    assert post(admin, "delete_model_links", {"app_name": "app", "model_names": ["m-a"]}
                ).status_code == 200
    assert post(admin, "get_linked_models", {"app_name": "app"}).json() == ["m-b", "m-c"]


def test_set_selection_policy_checks_policy_and_params(admin: TestClient) -> None:
    assert post(admin, "add_app", APP).status_code == 200
    assert post(admin, "add_model_links", {"app_name": "app", "model_names": ["m-a"]}
                ).status_code == 200
    unknown = post(admin, "set_selection_policy", {"app_name": "app",
                                                   "selection_policy": "nope"})
    assert unknown.status_code == 400 and "exp4" in unknown.text
    bad = post(admin, "set_selection_policy", {"app_name": "app", "selection_policy": "split",
                                               "policy_params": {"weights": {"zz": 1}}})
    assert bad.status_code == 400 and "not linked" in bad.text
    ok = post(admin, "set_selection_policy", {"app_name": "app", "selection_policy": "exp4",
                                              "confidence_threshold": 0.5})
    assert ok.status_code == 200
    assert post(admin, "add_model_links", {"app_name": "app", "model_names": ["m-b"]}
                ).status_code == 200
    back = post(admin, "set_selection_policy", {"app_name": "app",
                                                "selection_policy": "single"})
    assert back.status_code == 400 and "unlink the others" in back.text
    info = post(admin, "get_application", {"name": "app"}).json()
    assert info["selection_policy"] == "exp4" and info["confidence_threshold"] == 0.5
    assert post(admin, "set_selection_policy", {"app_name": "nope"}).status_code == 404
