"""Clipper's ``clipper_admin.metrics``: custom metrics from inside a model.

Clipper forwarded these to a Prometheus exporter next to each model
container.  No such exporter runs here, so the calls keep Clipper's checks
(a known metric type; report only what was added) and record the values in
the process, and the first call warns once that nothing is exported.
"""

from __future__ import annotations

import threading

from clipper_core.errors import ClipperException
from clipper_core.launch.compat import ignored_parameter

#: Prometheus metric types Clipper accepts.
METRIC_TYPES = ("Counter", "Gauge", "Histogram", "Summary")
#: Clipper's default histogram buckets.
DEFAULT_BUCKETS = [5, 10, 20, 35, 50, 75, 100, 150, 200, 250, 300, 400, 500]

_lock = threading.Lock()
_added: dict[str, str] = {}
#: The last value reported per metric (what an exporter would have sent).
last_values: dict[str, float] = {}


def add_metric(name: str, metric_type: str, description: str,
               buckets: list[float] | None = None) -> None:
    """Declare metric ``name`` of ``metric_type`` (one of :data:`METRIC_TYPES`);
    a name added before is ignored, as in Clipper."""
    if metric_type not in METRIC_TYPES:
        raise ClipperException(f"Metric type needs to be one of {list(METRIC_TYPES)}")
    ignored_parameter("clipper_admin.metrics", "add_metric", name, None,
                      "custom model metrics are not exported (no Prometheus exporter runs "
                      "beside model replicas); the query frontend's GET /metrics has the "
                      "serving metrics")
    with _lock:
        _added.setdefault(name, metric_type)


def report_metric(name: str, val: float) -> None:
    """Report ``val`` for metric ``name``, which :func:`add_metric` declared."""
    with _lock:
        if name not in _added:
            raise ClipperException(f"{name} has not been added. Please use "
                                   "clipper_admin.metrics.add_metric to add this metric")
        last_values[name] = float(val)
