"""Connecting to the Kubernetes API and turning its errors into clipper-core's.

The official ``kubernetes`` client is imported here, lazily: importing
``clipper_k8s`` never imports it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

from clipper_core.errors import (
    ClipperException,
    ConflictError,
    ContainerError,
    NotFoundError,
    ValidationError,
)


def build_api_client(*, api_client: Any = None, api_host: str | None = None,
                     kubeconfig: str | None = None, context: str | None = None,
                     in_cluster: bool | None = None, verify_ssl: bool = True) -> Any:
    """A ``kubernetes.client.ApiClient`` from the first option given.

    ``api_client`` is used as is; ``api_host`` (``http(s)://host:port``) talks
    to that server without credentials (a ``kubectl proxy``, a test server);
    ``in_cluster=True`` uses the pod's service account; otherwise the
    kubeconfig file (``kubeconfig``, else ``$KUBECONFIG`` or ``~/.kube/config``)
    with ``context``.  With ``in_cluster=None`` the service account is used
    when running in a pod and no kubeconfig was named.
    """
    if api_client is not None:
        return api_client
    import kubernetes

    config = kubernetes.client.Configuration()
    if api_host:
        config.host = api_host.rstrip("/")
        config.verify_ssl = verify_ssl
        return kubernetes.client.ApiClient(config)
    in_pod = "KUBERNETES_SERVICE_HOST" in os.environ
    try:
        if in_cluster or (in_cluster is None and kubeconfig is None and in_pod):
            kubernetes.config.load_incluster_config(client_configuration=config)
        else:
            kubernetes.config.load_kube_config(config_file=kubeconfig, context=context,
                                               client_configuration=config)
    except (kubernetes.config.ConfigException, OSError, TypeError) as exc:
        where = "the in-cluster service account" if in_cluster else \
            f"kubeconfig {kubeconfig or os.environ.get('KUBECONFIG') or '~/.kube/config'}"
        raise ContainerError(f"Cannot configure the Kubernetes client from {where}: {exc}",
                             kubeconfig=kubeconfig) from exc
    return kubernetes.client.ApiClient(config)


def status_message(exc: Any) -> str:
    """The ``message`` of the Status body of an ApiException, else its reason."""
    body = getattr(exc, "body", None)
    if body:
        try:
            data = json.loads(body)
            if isinstance(data, dict) and data.get("message"):
                return str(data["message"])
        except (TypeError, ValueError):
            pass
    return f"{getattr(exc, 'status', '')} {getattr(exc, 'reason', '')}".strip()


@contextlib.contextmanager
def api_errors(what: str, error: type[ClipperException] = ContainerError,
               host: str | None = None) -> Iterator[None]:
    """Re-raise errors of the Kubernetes client as clipper-core errors.

    404 -> NotFoundError, 409 -> ConflictError, 400/422 -> ValidationError,
    401/403 -> ``error`` with a hint about RBAC, other statuses, unreachable
    servers and client-side validation -> ``error``.  ``what`` says what was
    being done ("creating Deployment x").
    """
    from kubernetes.client.exceptions import ApiException, OpenApiException

    try:
        yield
    except ApiException as exc:
        message = f"{what} failed: {status_message(exc)}"
        code = exc.status or 0
        if code == 404:
            raise NotFoundError(message, status=code) from exc
        if code == 409:
            raise ConflictError(message, status=code) from exc
        if code in (400, 422):
            raise ValidationError(message, status=code) from exc
        if code in (401, 403):
            raise error(message + " (check the credentials and that the RBAC rules of "
                        "`python -m clipper_k8s.rbac` are applied)", status=code) from exc
        raise error(message, status=code) from exc
    except OpenApiException as exc:
        raise error(f"{what} failed: {exc}") from exc
    except ClipperException:
        raise
    except Exception as exc:
        # urllib3's MaxRetryError/ProtocolError, pydantic's ValidationError from
        # client-side model checks, ...: never leak the SDK's exceptions.
        module = type(exc).__module__
        if module.startswith(("urllib3", "pydantic", "kubernetes", "ssl")) or \
                isinstance(exc, OSError):
            where = f" at {host}" if host else ""
            raise error(f"{what} failed: cannot talk to the Kubernetes API server{where}: "
                        f"{type(exc).__name__}: {exc}") from exc
        raise
