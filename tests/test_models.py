"""Values crossing boundaries: validation, wire form, immutability."""

from __future__ import annotations

import attrs
import pytest

from clipper_core.errors import ValidationError
from clipper_core.models import (
    Application,
    InputType,
    ModelVersion,
    Replica,
    ReplicaStatus,
    Snapshot,
    validate_name,
)


@pytest.mark.parametrize(("value", "expected"), [
    ("m", "m"), ("model-1", "model-1"), ("1", "1"), (1, "1"), (0, "0"), ("a" * 63, "a" * 63),
    ("9lives", "9lives"),
])
def test_valid_names(value: object, expected: str) -> None:
    assert validate_name("model name", value) == expected


@pytest.mark.parametrize("value", ["", "M", "my_model", "-m", "m-", "a.b", "a b", "a" * 64,
                                   "ü"])
def test_invalid_names_say_which_name_and_which_rule(value: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_name("model version", value)
    assert f"Invalid model version {value!r}" in str(info.value)
    assert "DNS-1123" in str(info.value)
    assert info.value.argument == "model version"


@pytest.mark.parametrize("value", [None, True, 1.0, ["m"], b"m"])
def test_names_must_be_strings_or_ints(value: object) -> None:
    with pytest.raises(ValidationError, match="must be a string"):
        validate_name("application name", value)


@pytest.mark.parametrize(("value", "expected"), [
    ("integers", InputType.INTS), ("ints", InputType.INTS), ("int", InputType.INTS),
    ("floats", InputType.FLOATS), ("doubles", InputType.DOUBLES), (" Doubles ", InputType.DOUBLES),
    ("bytes", InputType.BYTES), ("strings", InputType.STRINGS), (0, InputType.BYTES),
    (4, InputType.STRINGS), (InputType.FLOATS, InputType.FLOATS),
])
def test_input_types(value: object, expected: InputType) -> None:
    assert InputType.parse(value) is expected


@pytest.mark.parametrize("value", ["tensor", 5, -1, True, None, 2.0])
def test_bad_input_types(value: object) -> None:
    with pytest.raises(ValidationError, match="Invalid input type"):
        InputType.parse(value)


def test_wire_codes_and_labels() -> None:
    assert [int(t) for t in InputType] == [0, 1, 2, 3, 4]
    assert [t.label for t in InputType] == ["bytes", "integers", "floats", "doubles", "strings"]


def test_application_create_and_wire() -> None:
    app = Application.create("app", "ints", "-1", 20000)
    assert app.input_type is InputType.INTS and app.linked_model is None
    linked = attrs.evolve(app, linked_model="m")
    wire = linked.to_wire()
    assert wire == {"name": "app", "input_type": "integers", "default_output": "-1",
                    "latency_slo_micros": 20000, "linked_models": ["m"],
                    "candidate_model_names": ["m"]}
    assert Application.from_wire(wire) == linked
    assert Application.from_wire(app.to_wire()) == app
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        app.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(("args", "match"), [
    (("App", "ints", "-1", 1), "application name"),
    (("app", "ints", -1, 1), "default_output"),
    (("app", "ints", "-1", 0), "slo_micros"),
    (("app", "ints", "-1", "100"), "slo_micros"),
    (("app", "ints", "-1", True), "slo_micros"),
])
def test_application_validation(args: tuple[object, ...], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        Application.create(*args)


def test_model_version_create_and_wire() -> None:
    m = ModelVersion.create("m", 2, "floats", image="img:2", labels=["a", "b"], batch_size=16)
    assert (m.version, m.labels, m.policy_name) == ("2", ("a", "b"), "fixed")
    wire = m.to_wire(is_current_version=True)
    assert wire == {"model_name": "m", "model_version": "2", "input_type": "floats",
                    "image": "img:2", "labels": ["a", "b"], "batch_size": 16,
                    "batching_policy": "fixed", "is_current_version": True}
    assert ModelVersion.from_wire(wire) == m
    adaptive = ModelVersion.create("m", "1", "doubles")
    assert (adaptive.image, adaptive.batch_size, adaptive.policy_name) == (None, -1, "aimd")
    delayed = ModelVersion.create("m", "1", "doubles", batching_policy="delayed", image="")
    assert delayed.image is None
    assert ModelVersion.from_wire(delayed.to_wire()) == delayed


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"batch_size": 0}, "batch_size"), ({"batch_size": -2}, "batch_size"),
    ({"batch_size": 1.5}, "batch_size"), ({"labels": "abc"}, "labels"),
    ({"labels": [1]}, "labels"), ({"image": 5}, "image"), ({"batching_policy": 1}, "batching"),
])
def test_model_version_validation(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        ModelVersion.create("m", "1", "doubles", **kwargs)


def test_replica_wire() -> None:
    r = Replica(model_name="m", model_version="1", replica_id="r0", input_type=InputType.BYTES,
                connected=False, frontend="qf", last_seen=3.5)
    wire = r.to_wire()
    assert wire["model_replica_id"] == "r0" and wire["connected"] is False
    assert wire["is_connected"] is False and wire["input_type"] == "bytes"
    assert Replica.from_wire(wire) == r
    status = ReplicaStatus(model_name="m", model_version="1", replica_id="r0",
                           status="running", restarts=2, handle="pid:1")
    assert status.to_wire() == {"model_name": "m", "model_version": "1",
                                "model_replica_id": "r0", "status": "running",
                                "restarts": 2, "handle": "pid:1"}


def test_snapshot_linked_version() -> None:
    m1 = ModelVersion.create("m", "1", "doubles")
    m2 = ModelVersion.create("m", "2", "doubles")
    app = Application.create("app", "doubles", "-1", 1000)
    snap = Snapshot(revision=3, applications={"app": attrs.evolve(app, linked_model="m")},
                    models={("m", "1"): m1, ("m", "2"): m2}, current_versions={"m": "1"})
    assert snap.linked_version(snap.applications["app"]) == m1
    assert snap.linked_version(app) is None
    no_current = attrs.evolve(snap, current_versions={})
    assert no_current.linked_version(snap.applications["app"]) is None
