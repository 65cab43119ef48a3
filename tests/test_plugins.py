"""Building the plugin manager, loading entry points, looking backends up by name.

Entry points are loaded from faked installed-package metadata (a
``Distribution`` whose files are strings), as pytest and pluggy test theirs;
one test pip-installs the real distribution in ``tests/fixtures/clipper_hello``
into a fresh virtual environment.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

from clipper_core import plugins
from clipper_core.errors import PluginError
from clipper_core.models import Application, ModelVersion
from clipper_core.plugins import (
    DEFAULT_PLUGINS,
    backends,
    build_plugin_manager,
    get_backend,
    list_plugins,
    open_store,
)

PREFIX = "fake_clipper_plugin_"


class FakeDistribution(importlib.metadata.Distribution):
    """An installed distribution whose METADATA and entry_points.txt are strings."""

    def __init__(self, name: str, version: str, entry_points: dict[str, str]) -> None:
        self._files = {
            "METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
            "entry_points.txt": "[clipper]\n" + "".join(
                f"{ep} = {target}\n" for ep, target in entry_points.items()),
        }

    def read_text(self, filename: str) -> str | None:
        return self._files.get(filename)

    def locate_file(self, path: Any) -> Path:
        raise FileNotFoundError(path)


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """``installed(dist, version, {entry point: source})`` fakes an installed
    distribution whose entry points are modules with the given source."""
    dists: list[FakeDistribution] = []
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("CLIPPER_PLUGINS", raising=False)

    def entry_points(**params: Any) -> importlib.metadata.EntryPoints:
        eps = [ep for d in dists for ep in d.entry_points]
        return importlib.metadata.EntryPoints(eps).select(**params)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)

    def install(dist: str, version: str, modules: dict[str, str]) -> FakeDistribution:
        targets = {}
        for ep, source in modules.items():
            modname = PREFIX + ep.replace("-", "_")
            (tmp_path / f"{modname}.py").write_text(textwrap.dedent(source))
            targets[ep] = modname
        d = FakeDistribution(dist, version, targets)
        dists.append(d)
        return d

    yield install
    for name in [m for m in sys.modules if m.startswith(PREFIX)]:
        del sys.modules[name]


GOOD = """
    from clipper_core.hookspecs import hookimpl

    class Manager:
        def __init__(self, **options):
            self.options = options

    class Policy:
        def __init__(self, model=None, **options):
            self.model = model

    @hookimpl
    def register_container_managers(register):
        register("good-manager", Manager)

    @hookimpl
    def register_batching_policies(register):
        register("good-policy", Policy)
"""


def test_builtins_are_listed() -> None:
    pm = build_plugin_manager(load_entry_points=False)
    infos = list_plugins(pm)
    assert [p.name for p in infos] == list(DEFAULT_PLUGINS)
    assert all(p.builtin and p.distribution == "clipper-core" for p in infos)
    by_name = {p.name: p for p in infos}
    assert by_name["clipper_core.batching"].hooks == ("register_batching_policies",)
    assert by_name["clipper_core.stores.sqlite"].to_wire()["hooks"] == ["register_state_stores"]
    assert sorted(backends("batching_policies", pm)) == ["aimd", "delayed", "fixed"]
    assert {"memory", "sqlite"} <= set(backends("state_stores", pm))
    assert get_backend("batching_policies", "aimd", pm).plugin == "clipper_core.batching"


def test_entry_point_from_an_installed_distribution(installed: Any) -> None:
    installed("clipper-good", "1.2.3", {"good": GOOD})
    pm = build_plugin_manager()
    info = {p.name: p for p in list_plugins(pm)}["good"]
    assert (info.distribution, info.version, info.builtin) == ("clipper-good", "1.2.3", False)
    assert info.hooks == ("register_batching_policies", "register_container_managers")
    manager = get_backend("container_managers", "good-manager", pm)
    assert manager.plugin == "good"
    assert manager.factory(cluster_name="c").options == {"cluster_name": "c"}
    model = ModelVersion.create("m", 1, "doubles", batching_policy="good-policy")
    assert get_backend("batching_policies", model.policy_name, pm).factory(model).model is model


def test_a_plugin_that_fails_to_import(installed: Any) -> None:
    installed("clipper-broken", "0.1", {"broken": "import no_such_module_anywhere\n"})
    with pytest.raises(PluginError) as info:
        build_plugin_manager()
    message = str(info.value)
    assert "'broken'" in message and "'clipper-broken'" in message
    assert "failed to load" in message and "no_such_module_anywhere" in message
    assert (info.value.plugin, info.value.distribution) == ("broken", "clipper-broken")


def test_a_plugin_with_a_wrong_hook_signature(installed: Any) -> None:
    installed("clipper-old", "0.1", {"old": """
        from clipper_core.hookspecs import hookimpl

        @hookimpl
        def register_batching_policies(register, registry):
            pass
    """})
    with pytest.raises(PluginError) as info:
        build_plugin_manager()
    message = str(info.value)
    assert "'old'" in message and "'clipper-old'" in message and "incompatible" in message
    assert "registry" in message
    assert (info.value.plugin, info.value.distribution) == ("old", "clipper-old")


def test_a_plugin_implementing_an_unknown_hook(installed: Any) -> None:
    installed("clipper-typo", "0.1", {"typo": """
        from clipper_core.hookspecs import hookimpl

        @hookimpl
        def register_batching_policy(register):
            pass
    """})
    with pytest.raises(PluginError) as info:
        build_plugin_manager()
    message = str(info.value)
    assert "'typo'" in message and "'clipper-typo'" in message
    assert "unknown hook" in message and "register_batching_policy" in message


def test_clipper_plugins_limits_what_loads(installed: Any,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    installed("clipper-good", "1.0", {"good": GOOD})
    installed("clipper-broken", "0.1", {"broken": "raise RuntimeError('boom')\n"})
    monkeypatch.setenv("CLIPPER_PLUGINS", "good")
    assert "good" in [p.name for p in list_plugins(build_plugin_manager())]
    monkeypatch.setenv("CLIPPER_PLUGINS", "")
    names = [p.name for p in list_plugins(build_plugin_manager())]
    assert names == list(DEFAULT_PLUGINS)
    monkeypatch.setenv("CLIPPER_PLUGINS", "good, broken")
    with pytest.raises(PluginError, match="'broken' from distribution 'clipper-broken'"):
        build_plugin_manager()
    monkeypatch.delenv("CLIPPER_PLUGINS")
    assert [p.name for p in list_plugins(build_plugin_manager(only=["good"]))][-1] == "good"


def test_the_same_backend_name_twice_names_both_plugins(installed: Any) -> None:
    installed("clipper-good", "1.0", {"good": GOOD})
    installed("clipper-copy", "1.0", {"copy": GOOD.replace("good-policy", "copy-policy")})
    pm = build_plugin_manager()
    with pytest.raises(PluginError) as info:
        backends("container_managers", pm)
    message = str(info.value)
    assert "container manager 'good-manager' is offered by two plugins" in message
    assert "'good'" in message and "'copy'" in message
    assert sorted(info.value.plugins) == ["copy", "good"]
    # Kinds without a clash still work.
    assert {"good-policy", "copy-policy"} <= set(backends("batching_policies", pm))


def test_an_unknown_name_lists_the_known_ones(installed: Any) -> None:
    installed("clipper-good", "1.0", {"good": GOOD})
    pm = build_plugin_manager()
    with pytest.raises(PluginError) as info:
        get_backend("batching_policies", "nope", pm)
    assert str(info.value) == ("Unknown batching policy 'nope'. Installed: aimd, delayed, "
                               "fixed, good-policy")
    assert info.value.known == ["aimd", "delayed", "fixed", "good-policy"]
    with pytest.raises(PluginError, match="Unknown state store 'nosuch'. Installed: .*memory"):
        open_store("nosuch://x", pm)
    with pytest.raises(ValueError, match="unknown backend kind"):
        backends("widgets", pm)


def test_the_scheme_of_a_store_url_picks_the_plugin(tmp_path: Path) -> None:
    pm = build_plugin_manager(load_entry_points=False)
    store = open_store(f"sqlite:///{tmp_path / 'x.db'}", pm)
    try:
        store.add_application(Application.create("a", "doubles", "-1", 10))
        assert [a.name for a in store.list_applications()] == ["a"]
    finally:
        store.close()


EVENTS = """
    from clipper_core.hookspecs import hookimpl

    SEEN = []

    @hookimpl
    def clipper_application_deleted(name):
        SEEN.append(name)
"""


def test_tracing_hook_calls_in_a_production_manager(
        installed: Any, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    installed("clipper-good", "1.0", {"good": GOOD, "events": EVENTS})
    monkeypatch.setenv("CLIPPER_TRACE_HOOKS", "1")
    pm = build_plugin_manager()
    with caplog.at_level("INFO", logger="clipper.plugins"):
        assert "good-manager" in backends("container_managers", pm)
        plugins.notify("clipper_application_deleted", pm=pm, name="app-x")
    traced = [r.getMessage() for r in caplog.records if r.name == "clipper.plugins"]
    assert any("register_container_managers [hook]" in m for m in traced), traced
    assert any("clipper_application_deleted [hook]" in m for m in traced), traced
    assert any("app-x" in m for m in traced)  # the arguments are traced too
    assert sys.modules[PREFIX + "events"].SEEN == ["app-x"]


def test_hook_call_monitoring_sees_each_plugin_called_alone(installed: Any) -> None:
    installed("clipper-good", "1.0", {"good": GOOD})
    installed("clipper-more", "1.0", {"more": GOOD.replace("good-", "more-")})
    pm = build_plugin_manager()
    calls: list[tuple[str, list[str]]] = []
    pm.add_hookcall_monitoring(
        lambda hook, impls, kwargs: calls.append((hook, [i.plugin_name for i in impls])),
        lambda outcome, hook, impls, kwargs: None)
    found = backends("container_managers", pm)
    assert (found["good-manager"].plugin, found["more-manager"].plugin) == ("good", "more")
    assert calls == [("register_container_managers", ["good"]),
                     ("register_container_managers", ["more"])]


def test_a_failing_event_hook_is_logged_and_the_others_still_run(
        installed: Any, caplog: pytest.LogCaptureFixture) -> None:
    installed("clipper-events", "1.0", {"events": EVENTS})
    installed("clipper-bad", "1.0", {"bad": """
        from clipper_core.hookspecs import hookimpl

        @hookimpl(tryfirst=True)
        def clipper_application_deleted(name):
            raise RuntimeError("plugin bug")
    """})
    pm = build_plugin_manager()
    with caplog.at_level("ERROR", logger="clipper.plugins"):
        plugins.notify("clipper_application_deleted", pm=pm, name="gone")
    assert sys.modules[PREFIX + "events"].SEEN == ["gone"]
    assert "plugin 'bad' failed in clipper_application_deleted" in caplog.text
    assert "plugin bug" in caplog.text


def test_a_hook_implemented_under_another_name_is_refused(installed: Any) -> None:
    installed("clipper-good", "1.0", {"good": GOOD})
    installed("clipper-renamed", "1.0", {"renamed": """
        from clipper_core.hookspecs import hookimpl

        @hookimpl(specname="register_container_managers")
        def offer_managers(register):
            register("renamed-manager", object)
    """})
    pm = build_plugin_manager()
    with pytest.raises(PluginError, match="'renamed' implements register_container_managers "
                                          "under another name") as info:
        backends("container_managers", pm)
    assert info.value.plugin == "renamed"


def test_the_process_wide_manager_is_built_on_first_use() -> None:
    assert plugins.get_plugin_manager() is plugins.get_plugin_manager()
    assert "clipper_core.batching" in [p.name for p in list_plugins()]


# -- a real installation ------------------------------------------------------

HELLO_SCRIPT = """
import json
from clipper_core.models import Application, ModelVersion
from clipper_core.plugins import get_backend, list_plugins, notify
import clipper_hello

hello = {p.name: p for p in list_plugins()}["hello"]
model = ModelVersion.create("m", "1", "doubles", batching_policy="hello")
policy = get_backend("batching_policies", model.policy_name).factory(model, max_batch=5)
policy.on_batch_done(5, 0.01, 0.1)
notify("clipper_application_registered",
       application=Application.create("hello-app", "doubles", "-1", 1000))
print(json.dumps({"plugin": hello.to_wire(), "max": policy.max_batch_size(),
                  "describe": policy.describe(), "registered": clipper_hello.REGISTERED}))
"""


@pytest.mark.slow
def test_a_real_distribution_installed_with_pip(tmp_path: Path) -> None:
    import setuptools

    if importlib.util.find_spec("wheel") is None and tuple(
            int(x) for x in setuptools.__version__.split(".")[:2]) < (70, 1):
        pytest.fail("building without isolation needs bdist_wheel: pip install wheel "
                    f"(or setuptools>=70.1; this is {setuptools.__version__})")
    source = tmp_path / "src"
    shutil.copytree(ROOT / "tests" / "fixtures" / "clipper_hello", source)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-build-isolation", "--disable-pip-version-check",
                    str(source)], check=True, cwd=tmp_path)
    # Only the plugin under test, whatever else this machine has installed.
    env = dict(os.environ, CLIPPER_PLUGINS="hello")
    out = subprocess.run([str(python), "-c", HELLO_SCRIPT], check=True, cwd=tmp_path,
                         env=env, capture_output=True, text=True).stdout
    result = json.loads(out)
    assert result["plugin"] == {
        "name": "hello", "distribution": "clipper-hello", "version": "0.1.0",
        "hooks": ["clipper_application_registered", "register_batching_policies"],
        "builtin": False}
    assert result["max"] == 5
    assert result["describe"] == {"policy": "hello", "max_batch_size": 5, "batches": 1}
    assert result["registered"] == ["hello-app"]
    # Outside the venv the plugin is not installed.
    assert importlib.util.find_spec("clipper_hello") is None
