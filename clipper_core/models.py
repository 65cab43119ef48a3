"""Values that cross boundaries: applications, model versions, replicas.

All are frozen, keyword-only attrs classes.  Use :func:`attrs.evolve` to
change one.  ``to_wire()`` gives the JSON dict of SPEC.md; ``from_wire()``
reads it back.  Names are validated once, here, so nothing invalid reaches a
store or a container manager.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from typing import Any

import attrs

from .errors import ValidationError

#: DNS-1123 label: what Clipper (and Kubernetes) accept for names and versions.
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_RULE = ("a DNS-1123 label: lower-case letters, digits and '-', starting and "
                 "ending with a letter or digit, at most 63 characters")


def validate_name(kind: str, value: object) -> str:
    """Return ``value`` as a string if it is a valid ``kind`` name, else raise.

    ``kind`` is what the name names ("application name", "model version"...),
    used in the error message.  Ints are accepted (versions ``1`` -> ``"1"``);
    bools are not.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValidationError(
            f"Invalid {kind} {value!r}: must be a string, got {type(value).__name__}",
            argument=kind, value=value)
    text = str(value)
    if len(text) > 63 or not _DNS1123.match(text):
        raise ValidationError(f"Invalid {kind} {text!r}: must be {_DNS1123_RULE}",
                              argument=kind, value=text)
    return text


class InputType(enum.IntEnum):
    """Input types and their RPC wire codes (SPEC.md section 1)."""

    BYTES = 0
    INTS = 1
    FLOATS = 2
    DOUBLES = 3
    STRINGS = 4

    @property
    def label(self) -> str:
        """The canonical name used in the admin API (``"doubles"``...)."""
        return _LABELS[self]

    @classmethod
    def parse(cls, value: object) -> InputType:
        """Accept a canonical name, an alias, an InputType or a wire code."""
        if isinstance(value, InputType):
            return value
        if isinstance(value, str):
            found = _ALIASES.get(value.strip().lower())
            if found is not None:
                return found
        elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 4:
            return cls(value)
        raise ValidationError(
            f"Invalid input type {value!r}: must be one of integers, floats, doubles, "
            "bytes, strings", argument="input_type", value=value)


_LABELS = {InputType.BYTES: "bytes", InputType.INTS: "integers", InputType.FLOATS: "floats",
           InputType.DOUBLES: "doubles", InputType.STRINGS: "strings"}
_ALIASES = {
    "bytes": InputType.BYTES, "byte": InputType.BYTES,
    "integers": InputType.INTS, "ints": InputType.INTS, "int": InputType.INTS,
    "floats": InputType.FLOATS, "float": InputType.FLOATS,
    "doubles": InputType.DOUBLES, "double": InputType.DOUBLES,
    "strings": InputType.STRINGS, "string": InputType.STRINGS, "str": InputType.STRINGS,
}


def _positive_int(kind: str, value: object, *, allow: tuple[int, ...] = ()) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or (value <= 0 and value not in allow):
        raise ValidationError(f"Invalid {kind} {value!r}: must be a positive integer"
                              + (f" or {allow}" if allow else ""), argument=kind, value=value)
    return value


def _labels(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    items = (tuple(value) if isinstance(value, Iterable) and not isinstance(value, str)
             else None)
    if items is None or not all(isinstance(x, str) for x in items):
        raise ValidationError("labels must be a list of strings", argument="labels", value=value)
    return items


@attrs.frozen(kw_only=True)
class Application:
    """A named REST endpoint: ``POST /{name}/predict``."""

    name: str
    input_type: InputType
    default_output: str
    latency_slo_micros: int
    #: Name of the linked model, if any: the primary one when several are linked.
    linked_model: str | None = None
    #: Models linked beside the primary (a selection policy other than
    #: ``single`` chooses among all of them).
    other_models: tuple[str, ...] = ()
    #: Name of a selection policy plugin (``register_selection_policies``).
    selection_policy: str = "single"
    #: The policy's parameters (JSON-able).
    policy_params: dict[str, Any] = attrs.field(factory=dict, hash=False)
    #: Below this confidence, the default output answers ("low confidence").
    confidence_threshold: float = 0.0

    @property
    def linked_models(self) -> tuple[str, ...]:
        """Every linked model, primary first."""
        return ((self.linked_model, *self.other_models) if self.linked_model
                else self.other_models)

    @property
    def selects(self) -> bool:
        """Whether the app uses the selection layer (anything but plain ``single``)."""
        return (self.selection_policy != "single" or bool(self.other_models)
                or bool(self.policy_params) or self.confidence_threshold > 0.0)

    def selection_wire(self) -> dict[str, Any]:
        """The selection fields of the wire dict (also the stores' record of them)."""
        return {"selection_policy": self.selection_policy,
                "policy_params": dict(self.policy_params),
                "confidence_threshold": self.confidence_threshold}

    def with_selection(self, d: dict[str, Any]) -> Application:
        """This app with the selection fields of a wire dict or store record."""
        return attrs.evolve(self, selection_policy=str(d.get("selection_policy") or "single"),
                            policy_params=dict(d.get("policy_params") or {}),
                            confidence_threshold=float(d.get("confidence_threshold") or 0.0))

    @classmethod
    def create(cls, name: object, input_type: object, default_output: object,
               slo_micros: object) -> Application:
        """Validate user input and build an Application."""
        if not isinstance(default_output, str):
            raise ValidationError("default_output must be a string",
                                  argument="default_output", value=default_output)
        return cls(name=validate_name("application name", name),
                   input_type=InputType.parse(input_type), default_output=default_output,
                   latency_slo_micros=_positive_int("slo_micros", slo_micros))

    def to_wire(self) -> dict[str, Any]:
        return {"name": self.name, "input_type": self.input_type.label,
                "default_output": self.default_output,
                "latency_slo_micros": self.latency_slo_micros,
                "linked_models": list(self.linked_models),
                "candidate_model_names": list(self.linked_models),
                # An app on the default policy keeps today's wire dict exactly.
                **(self.selection_wire() if self.selects else {})}

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Application:
        linked = d.get("linked_models") or []
        app = cls(name=d["name"], input_type=InputType.parse(d["input_type"]),
                  default_output=d["default_output"],
                  latency_slo_micros=int(d["latency_slo_micros"]),
                  linked_model=linked[0] if linked else None,
                  other_models=tuple(linked[1:]))
        return app.with_selection(d)


@attrs.frozen(kw_only=True)
class ModelVersion:
    """One registered version of a model."""

    name: str
    version: str
    input_type: InputType
    #: The runnable form: an image reference, or a local artifact path; None
    #: for a "containerless" model started outside Clipper.
    image: str | None = None
    labels: tuple[str, ...] = ()
    #: -1 = adaptive (AIMD); N > 0 = fixed maximum batch size.
    batch_size: int = -1
    #: Name of a batching policy plugin; None = derived from batch_size.
    batching_policy: str | None = None

    @classmethod
    def create(cls, name: object, version: object, input_type: object, image: object = None,
               labels: object = None, batch_size: object = -1,
               batching_policy: object = None) -> ModelVersion:
        """Validate user input and build a ModelVersion."""
        if image is not None and not isinstance(image, str):
            raise ValidationError("image must be a string", argument="image", value=image)
        if batching_policy is not None and not isinstance(batching_policy, str):
            raise ValidationError("batching_policy must be a string",
                                  argument="batching_policy", value=batching_policy)
        return cls(name=validate_name("model name", name),
                   version=validate_name("model version", version),
                   input_type=InputType.parse(input_type), image=image or None,
                   labels=_labels(labels),
                   batch_size=_positive_int("batch_size", batch_size, allow=(-1,)),
                   batching_policy=batching_policy)

    @property
    def policy_name(self) -> str:
        """The batching policy to use for this version."""
        if self.batching_policy:
            return self.batching_policy
        return "aimd" if self.batch_size == -1 else "fixed"

    def to_wire(self, *, is_current_version: bool = False) -> dict[str, Any]:
        return {"model_name": self.name, "model_version": self.version,
                "input_type": self.input_type.label, "image": self.image,
                "labels": list(self.labels), "batch_size": self.batch_size,
                "batching_policy": self.policy_name,
                "is_current_version": is_current_version}

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> ModelVersion:
        policy = d.get("batching_policy")
        batch = int(d.get("batch_size", -1))
        derived = "aimd" if batch == -1 else "fixed"
        return cls(name=d["model_name"], version=str(d["model_version"]),
                   input_type=InputType.parse(d["input_type"]), image=d.get("image"),
                   labels=tuple(d.get("labels") or ()), batch_size=batch,
                   batching_policy=None if policy in (None, derived) else policy)


#: Seconds a replica record stays "connected" without being renewed.  Each
#: query frontend renews the records of its connected replicas every third
#: of this; a frontend that was killed (no chance to delete its records)
#: stops renewing, and readers then report its replicas as disconnected.
REPLICA_LEASE_S = 30.0


@attrs.frozen(kw_only=True)
class Replica:
    """A model replica as a query frontend sees it over RPC."""

    model_name: str
    model_version: str
    #: Stable id: the container's ``CLIPPER_REPLICA_ID`` when it sets one,
    #: otherwise a number the frontend assigns in order of connection.
    replica_id: str
    input_type: InputType
    connected: bool = True
    #: Which query frontend sees it (a frontend id), for several frontends.
    frontend: str = ""
    #: Unix time the frontend last wrote (or renewed) this record.
    last_seen: float = 0.0

    def live(self, now: float, lease_s: float = REPLICA_LEASE_S) -> bool:
        """Connected, by a record renewed within the lease."""
        return self.connected and now - self.last_seen <= lease_s

    def to_wire(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "model_version": self.model_version,
                "model_replica_id": self.replica_id, "input_type": self.input_type.label,
                "connected": self.connected, "is_connected": self.connected,
                "frontend": self.frontend, "last_seen": self.last_seen}

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Replica:
        return cls(model_name=d["model_name"], model_version=str(d["model_version"]),
                   replica_id=str(d["model_replica_id"]),
                   input_type=InputType.parse(d["input_type"]),
                   connected=bool(d.get("connected", True)), frontend=d.get("frontend", ""),
                   last_seen=float(d.get("last_seen", 0.0)))


@attrs.frozen(kw_only=True)
class FrontendRecord:
    """A query frontend's presence: the configuration revision it serves.

    Each query frontend writes its record after it applies a configuration
    snapshot and renews it every third of :data:`REPLICA_LEASE_S`; it deletes
    the record when it stops.  The admin service waits, after a write, for
    every live record to reach the write's revision (read-your-writes).
    """

    frontend_id: str
    #: The store revision of the configuration the frontend serves.
    revision: int
    #: Unix time the frontend last wrote (or renewed) this record.
    last_seen: float = 0.0

    def live(self, now: float, lease_s: float = REPLICA_LEASE_S) -> bool:
        """Renewed within the lease (a killed frontend's record stops being live)."""
        return now - self.last_seen <= lease_s


@attrs.frozen(kw_only=True)
class Snapshot:
    """A consistent view of a store's configuration at one revision.

    Query frontends serve from the newest snapshot they have; they reload it
    when the store's revision changes.
    """

    revision: int
    applications: dict[str, Application]
    #: (model name, version) -> ModelVersion
    models: dict[tuple[str, str], ModelVersion]
    #: model name -> current version
    current_versions: dict[str, str]

    def linked_version(self, app: Application) -> ModelVersion | None:
        """The current version of the model linked to ``app``, if any."""
        if app.linked_model is None:
            return None
        version = self.current_versions.get(app.linked_model)
        if version is None:
            return None
        return self.models.get((app.linked_model, version))


@attrs.frozen(kw_only=True)
class ReplicaStatus:
    """A model replica as a container manager sees it (process, container, pod)."""

    model_name: str
    model_version: str
    replica_id: str
    #: "running", "restarting", "exited", "pending"...
    status: str
    restarts: int = 0
    #: Manager-specific handle: pid, container id, pod name, allocation id.
    handle: str = ""

    def to_wire(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "model_version": self.model_version,
                "model_replica_id": self.replica_id, "status": self.status,
                "restarts": self.restarts, "handle": self.handle}
