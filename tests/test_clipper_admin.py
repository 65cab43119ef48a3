"""The ``clipper_admin`` compatibility package: Clipper's import surface."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest
from conftest import ROOT

import clipper_admin
from clipper_core.connection import ClipperConnection
from clipper_core.errors import ClipperException, PluginError, UnconnectedException
from clipper_core.plugins import backends


def test_deployers_need_no_explicit_import() -> None:
    """``import clipper_admin`` alone gives ``clipper_admin.deployers.python``."""
    code = ("import clipper_admin, sys\n"
            "assert 'clipper_admin.deployers.python' in sys.modules\n"
            "print(clipper_admin.deployers.python.deploy_python_closure.__module__)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert out.strip() == "clipper_core.deployers.python"


def test_constants_mean_what_they_mean_in_clipper() -> None:
    assert clipper_admin.DEFAULT_LABEL == []
    assert clipper_admin.DEFAULT_PREDICTION_CACHE_SIZE_BYTES == 33554432
    assert clipper_admin.CLIPPER_TEMP_DIR.endswith("clipper")
    import clipper_core

    assert clipper_admin.__version__ == clipper_core.__version__
    assert clipper_admin.__registry__ == "clipper"
    assert clipper_admin.ClipperConnection is ClipperConnection
    assert clipper_admin.ClipperException is ClipperException
    assert clipper_admin.UnconnectedException is UnconnectedException


def test_registry_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import clipper_admin.version as version

    monkeypatch.setenv("CLIPPER_REGISTRY", "registry.example/team")
    try:
        assert importlib.reload(version).__registry__ == "registry.example/team"
    finally:
        monkeypatch.delenv("CLIPPER_REGISTRY")
        importlib.reload(version)


def test_clippers_submodules_exist() -> None:
    from clipper_admin import clipper_admin as ca
    from clipper_admin import container_manager as cm
    from clipper_admin import exceptions, metrics, version
    from clipper_core.interfaces import ContainerManager

    assert ca.ClipperConnection is ClipperConnection
    assert ca.DEFAULT_PREDICTION_CACHE_SIZE_BYTES == 32 * 1024 * 1024
    assert cm.CONTAINERLESS_MODEL_IMAGE == "NO_CONTAINER"
    assert cm.ContainerManager is ContainerManager
    assert exceptions.ClipperException is ClipperException
    assert version.__version__ == clipper_admin.__version__
    assert callable(metrics.add_metric) and callable(metrics.report_metric)


def test_container_managers_are_the_plugins_classes() -> None:
    installed = backends("container_managers")
    assert clipper_admin.LocalProcessContainerManager is installed["local_process"].factory
    for attr, (name, _dist) in clipper_admin.CONTAINER_MANAGERS.items():
        if name in installed:
            assert getattr(clipper_admin, attr) is installed[name].factory
    if "docker" in installed:
        from clipper_admin.docker import DockerContainerManager

        assert DockerContainerManager is installed["docker"].factory
    if "k8s" in installed:
        from clipper_admin.kubernetes import KubernetesContainerManager

        assert KubernetesContainerManager is installed["k8s"].factory
    with pytest.raises(AttributeError):
        clipper_admin.NoSuchThing  # noqa: B018
    with pytest.raises(AttributeError):
        clipper_admin.docker.NoSuchManager  # noqa: B018


def test_a_missing_plugin_is_an_import_error_naming_the_distribution(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from clipper_admin import managers

    monkeypatch.setitem(managers.CONTAINER_MANAGERS, "DockerContainerManager",
                        ("not-installed-docker", "clipper-docker"))
    with pytest.raises(ImportError, match="pip install clipper-docker") as info:
        from clipper_admin import DockerContainerManager  # noqa: F401
    assert isinstance(info.value, PluginError)
    assert "local_process" in str(info.value)
    with pytest.raises(ImportError, match="pip install clipper-docker"):
        from clipper_admin.docker import DockerContainerManager  # noqa: F401, F811
    monkeypatch.setitem(managers.CONTAINER_MANAGERS, "KubernetesContainerManager",
                        ("not-installed-k8s", "clipper-k8s"))
    with pytest.raises(ImportError, match="pip install clipper-k8s"):
        from clipper_admin import KubernetesContainerManager  # noqa: F401


def test_star_import_needs_no_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    from clipper_admin import managers

    monkeypatch.setitem(managers.CONTAINER_MANAGERS, "DockerContainerManager",
                        ("not-installed-docker", "clipper-docker"))
    namespace: dict[str, object] = {}
    exec("from clipper_admin import *", namespace)  # noqa: S102 - Clipper scripts do this
    assert namespace["ClipperConnection"] is ClipperConnection
    assert "DockerContainerManager" not in namespace


def test_custom_metrics_keep_clippers_checks_and_warn_once() -> None:
    from clipper_admin import metrics
    from clipper_core.launch.compat import reset_warnings

    reset_warnings()
    with pytest.raises(ClipperException, match="Metric type needs to be one of"):
        metrics.add_metric("m", "Meter", "no such type")
    with pytest.raises(ClipperException, match="has not been added"):
        metrics.report_metric("never-added", 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics.add_metric("latency", "Histogram", "model latency")
        metrics.add_metric("count", "Counter", "calls")
    assert len(caught) == 1 and "not exported" in str(caught[0].message)
    metrics.report_metric("latency", "2.5")
    assert metrics.last_values["latency"] == 2.5
