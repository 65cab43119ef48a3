"""The one error hierarchy of clipper-core.

Clipper's public names, :class:`ClipperException` and
:class:`UnconnectedException`, are what users catch.  Everything new derives
from :class:`ClipperException` and is named ``<What>Error``; each carries the
fields that say what failed, so frontends can map it to an HTTP status in one
table (:data:`HTTP_STATUS`) and plugins never leak an SDK's exception.
"""

from __future__ import annotations


class ClipperException(Exception):
    """Base of every error clipper-core raises on purpose."""

    #: Short machine-readable kind, used as ``"error"`` in REST error bodies.
    kind = "clipper_error"

    def __init__(self, msg: str = "", **fields: object) -> None:
        super().__init__(msg)
        self.msg = msg
        self.fields = fields
        for key, value in fields.items():
            setattr(self, key, value)

    def __str__(self) -> str:
        return self.msg


class UnconnectedException(ClipperException):
    """A ``ClipperConnection`` method was called before ``connect()``."""

    kind = "unconnected"

    def __init__(self, msg: str = "No connection to Clipper cluster. Call "
                 "ClipperConnection.connect to connect to an existing cluster "
                 "or ClipperConnection.start_clipper to create a new one") -> None:
        super().__init__(msg)


class ValidationError(ClipperException):
    """An argument is malformed: a bad name, type, or value."""

    kind = "invalid_argument"


class PayloadTooLargeError(ValidationError):
    """A request body (or an ``input_batch``) is larger than the frontend accepts."""

    kind = "payload_too_large"


class URITooLongError(ValidationError):
    """A request target is longer than the frontend accepts."""

    kind = "uri_too_long"


class MethodNotAllowedError(ValidationError):
    """A route exists, but not for this HTTP method."""

    kind = "method_not_allowed"


class NotFoundError(ClipperException):
    """A named object (application, model, version, replica) does not exist."""

    kind = "not_found"


class ConflictError(ClipperException):
    """The object already exists, or the change contradicts current state."""

    kind = "conflict"


class AuthenticationError(ClipperException):
    """A management request carried no or a wrong bearer token."""

    kind = "unauthorized"


class StoreUnavailableError(ClipperException):
    """The state store cannot be reached; nothing was written."""

    kind = "store_unavailable"


class FrontendLagError(ClipperException):
    """A configuration write is done, but a live query frontend did not serve
    it within the admin service's bound (its fields name the laggards)."""

    kind = "frontend_lag"


class PluginError(ClipperException):
    """A plugin could not be loaded, or a backend name is unknown/ambiguous."""

    kind = "plugin_error"


class ContainerError(ClipperException):
    """A container manager failed to start, stop, or inspect something."""

    kind = "container_error"


class BuildError(ContainerError):
    """Building the runnable form of a model failed."""

    kind = "build_error"


class ClusterStartError(ContainerError):
    """A cluster could not be started (port taken, process died, ...)."""

    kind = "cluster_start_error"


#: One table from error class to HTTP status, used by both frontends.
HTTP_STATUS: dict[type[ClipperException], int] = {
    PayloadTooLargeError: 413,
    URITooLongError: 414,
    MethodNotAllowedError: 405,
    ValidationError: 400,
    NotFoundError: 404,
    ConflictError: 409,
    AuthenticationError: 401,
    StoreUnavailableError: 503,
    UnconnectedException: 503,
    FrontendLagError: 504,
    PluginError: 500,
    ContainerError: 500,
    ClipperException: 400,
}


def http_status(exc: ClipperException) -> int:
    """The HTTP status for ``exc``: the entry of its nearest class in the MRO."""
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


#: Reverse table used by ``ClipperConnection`` to re-raise REST errors.
KINDS: dict[str, type[ClipperException]] = {
    cls.kind: cls
    for cls in (ClipperException, UnconnectedException, ValidationError, PayloadTooLargeError,
                URITooLongError, MethodNotAllowedError, NotFoundError,
                ConflictError, AuthenticationError, StoreUnavailableError, PluginError,
                FrontendLagError, ContainerError, BuildError, ClusterStartError)
}
