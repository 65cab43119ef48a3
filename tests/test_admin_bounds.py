"""Labels and other admin strings are bounded at the admin boundary: 400 with the cause."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from clipper_core.admin import fields
from clipper_core.plugins import open_store
from clipper_frontends.management import create_app

MODEL = {"model_name": "m", "model_version": "1", "input_type": "doubles",
         "container_name": "img:1"}
APP = {"name": "app1", "input_type": "doubles", "default_output": "-1",
       "latency_slo_micros": 100000}


@pytest.fixture
def store() -> Iterator[Any]:
    s = open_store("memory://")
    yield s
    s.close()


@pytest.fixture
def client(store: Any) -> Iterator[TestClient]:
    with TestClient(create_app(store)) as c:
        yield c


def refused(client: TestClient, path: str, body: dict[str, Any], cause: str) -> None:
    resp = client.post(f"/admin/{path}", json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_argument"
    assert cause in resp.json()["cause"]


def test_good_labels_are_stored(client: TestClient, store: Any) -> None:
    labels = ["team=search", "v1.2", "owner@example.org", "a/b:c+d_e-f", "x" * 128]
    assert client.post("/admin/add_model", json={**MODEL, "labels": labels}).status_code == 200
    assert list(store.get_model("m", "1").labels) == labels


def test_too_many_labels(client: TestClient, store: Any) -> None:
    labels = [f"l{i}" for i in range(fields.MAX_LABELS + 1)]
    refused(client, "add_model", {**MODEL, "labels": labels}, "65 labels; at most 64")
    assert store.get_model("m", "1") is None


def test_a_label_too_long(client: TestClient) -> None:
    refused(client, "add_model", {**MODEL, "labels": ["x" * 129]},
            "129 characters long; at most 128")


@pytest.mark.parametrize("label", ["", "has space", "new\nline", "<script>", "naïve", "a;b"])
def test_a_label_with_other_characters(client: TestClient, label: str) -> None:
    refused(client, "add_model", {**MODEL, "labels": [label]}, "may hold only letters")


def test_an_admin_string_too_long(client: TestClient, store: Any) -> None:
    refused(client, "add_app", {**APP, "default_output": "d" * (fields.MAX_TEXT + 1)},
            "'default_output' is 4097 characters long; at most 4096")
    assert store.get_application("app1") is None


@pytest.mark.parametrize("bad", ["\x00", "\x1b[2J", "\x7f"])
def test_an_admin_string_with_a_control_character(client: TestClient, bad: str) -> None:
    refused(client, "add_app", {**APP, "default_output": f"x{bad}y"},
            "'default_output' holds the control character")


def test_tabs_and_line_breaks_pass(client: TestClient) -> None:
    resp = client.post("/admin/add_app", json={**APP, "default_output": "a\tb\r\nc"})
    assert resp.status_code == 200, resp.text


def test_a_huge_name_is_refused_before_its_own_rule(client: TestClient) -> None:
    refused(client, "add_app", {**APP, "name": "a" * 100_000}, "at most 4096")
