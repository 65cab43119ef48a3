"""The error hierarchy and its one table of HTTP statuses."""

from __future__ import annotations

import pytest

import clipper_admin.exceptions
from clipper_core import errors
from clipper_core.errors import (
    KINDS,
    AuthenticationError,
    BuildError,
    ClipperException,
    ClusterStartError,
    ConflictError,
    ContainerError,
    NotFoundError,
    PluginError,
    StoreUnavailableError,
    UnconnectedException,
    ValidationError,
    http_status,
)
from clipper_frontends.http import PayloadTooLargeError, error_response, status_for


def test_everything_is_a_clipper_exception() -> None:
    for cls in KINDS.values():
        assert issubclass(cls, ClipperException)
    assert issubclass(BuildError, ContainerError)
    assert issubclass(ClusterStartError, ContainerError)


def test_kinds_are_unique_and_round_trip() -> None:
    classes = [c for c in vars(errors).values()
               if isinstance(c, type) and issubclass(c, ClipperException)]
    assert len({c.kind for c in classes}) == len(classes)
    for cls in classes:
        assert KINDS[cls.kind] is cls


@pytest.mark.parametrize(("exc", "status"), [
    (ValidationError("x"), 400), (NotFoundError("x"), 404), (ConflictError("x"), 409),
    (AuthenticationError("x"), 401), (StoreUnavailableError("x"), 503),
    (UnconnectedException(), 503), (PluginError("x"), 500), (ContainerError("x"), 500),
    (BuildError("x"), 500), (ClusterStartError("x"), 500), (ClipperException("x"), 400),
])
def test_http_status(exc: ClipperException, status: int) -> None:
    assert http_status(exc) == status
    assert status_for(exc) == status


def test_a_subclass_gets_its_nearest_parents_status() -> None:
    class NoSuchReplicaError(NotFoundError):
        kind = "no_such_replica"

    assert http_status(NoSuchReplicaError("gone")) == 404
    assert status_for(PayloadTooLargeError("big")) == 413
    assert isinstance(PayloadTooLargeError("big"), ValidationError)


def test_fields_message_and_json_body() -> None:
    exc = NotFoundError("No model with name 'm' exists", name="m", version="1")
    assert str(exc) == "No model with name 'm' exists"
    assert (exc.name, exc.version) == ("m", "1")
    assert exc.fields == {"name": "m", "version": "1"}
    resp = error_response(exc)
    assert resp.status_code == 404
    assert resp.body == b'{"error":"not_found","cause":"No model with name \'m\' exists"}'


def test_unconnected_says_what_to_do() -> None:
    assert "ClipperConnection.connect" in str(UnconnectedException())
    assert str(UnconnectedException("custom")) == "custom"


def test_clippers_public_names() -> None:
    assert clipper_admin.exceptions.ClipperException is ClipperException
    assert clipper_admin.exceptions.UnconnectedException is UnconnectedException
    assert clipper_admin.ClipperException is ClipperException
