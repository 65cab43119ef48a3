"""The ``clipper`` command, run as a real process against a real local cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest
from conftest import free_port

from clipper_core.cli import build_parser, main
from clipper_core.models import Application
from clipper_core.plugins import open_store


def clipper(*args: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CLIPPER_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "clipper_core.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_help_is_fast_and_imports_nothing_heavy():
    code = ("import sys; from clipper_core.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('httpx', 'clipper_core.connection', 'numpy', "
            "'pluggy', 'clipper_core.plugins') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_plugins_lists_versions_and_hooks(tmp_path):
    out = clipper("plugins", home=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "local_process  (clipper-local-process " in out.stdout
    assert "hooks: register_container_managers, register_registries" in out.stdout
    assert "offers: container manager 'local_process', registry 'directory'" in out.stdout
    listed = json.loads(clipper("plugins", "--json", home=tmp_path).stdout)
    local = next(p for p in listed if p["name"] == "local_process")
    assert local["distribution"] == "clipper-local-process" and local["version"]
    assert "register_container_managers" in local["hooks"]


def test_arguments():
    parser = build_parser()
    args = parser.parse_args(["start", "--cluster", "c1", "--frontends", "2", "--query-port",
                              "9000", "--option", "python=\"/usr/bin/python3\"",
                              "--option", "start-timeout=5"])
    assert (args.cluster, args.frontends, args.query_port) == ("c1", 2, 9000)
    assert dict(args.option) == {"python": "/usr/bin/python3", "start_timeout": 5}
    with pytest.raises(SystemExit):
        parser.parse_args(["deploy", "f.py:g"])  # --name is required


def test_unknown_cluster_is_a_clear_error(tmp_path):
    out = clipper("status", "--cluster", "nothing", home=tmp_path)
    assert out.returncode == 1
    assert "error: No local cluster 'nothing' is running" in out.stderr


def test_migrate_store_copies_applications(tmp_path, capsys):
    src, dst = f"sqlite:///{tmp_path / 'src.db'}", f"sqlite:///{tmp_path / 'dst.db'}"
    store = open_store(src)
    store.add_application(Application.create("moved", "doubles", "x", 1000))
    store.close()
    assert main(["migrate-store", src, dst]) == 0
    assert "Copied 1 application(s)" in capsys.readouterr().out
    copied = open_store(dst)
    try:
        assert [a.name for a in copied.list_applications()] == ["moved"]
    finally:
        copied.close()


def test_start_deploy_predict_status_logs_stop(tmp_path):
    home = tmp_path / "home"
    model = tmp_path / "model.py"
    model.write_text(textwrap.dedent("""\
        OFFSET = 100

        def predict(inputs):
            return [OFFSET + float(sum(x)) for x in inputs]
        """))
    ports = ["--query-port", str(free_port()), "--mgmt-port", str(free_port()),
             "--rpc-port", str(free_port())]
    common = ["--cluster", "cli"]
    started = clipper("start", *common, *ports, home=home)
    try:
        assert started.returncode == 0, started.stderr
        assert "Clipper cluster 'cli' is running." in started.stdout
        deployed = clipper("deploy", f"{model}:predict", "--name", "adder", "--version", "3",
                           "--app", "add", *common, home=home)
        assert deployed.returncode == 0, deployed.stderr
        assert "Building model adder:3" in deployed.stderr
        assert "curl -X POST" in deployed.stdout and "/add/predict" in deployed.stdout
        for _ in range(50):
            predicted = clipper("predict", "add", "[1, 2]", *common, home=home)
            assert predicted.returncode == 0, predicted.stderr
            if not json.loads(predicted.stdout)["default"]:
                break
        assert json.loads(predicted.stdout)["output"] == 103.0
        batch = clipper("predict", "add", '{"input_batch": [[1], [2]]}', *common, home=home)
        assert [p["output"] for p in json.loads(batch.stdout)["batch_predictions"]] \
            == [101.0, 102.0]

        status = clipper("status", *common, home=home)
        assert status.returncode == 0, status.stderr
        assert "add " in status.stdout and "model=adder" in status.stdout
        assert "adder:3 adder-3-0" in status.stdout and "connected" in status.stdout
        as_json = json.loads(clipper("status", "--json", *common, home=home).stdout)
        assert as_json["replicas"][0]["status"] == "running"

        logs = clipper("logs", str(tmp_path / "logs"), *common, home=home)
        files = logs.stdout.split()
        assert any("replica" in f for f in files) and all(Path(f).is_file() for f in files)
    finally:
        stopped = clipper("stop", *common, home=home)
    assert stopped.returncode == 0, stopped.stderr
    state = str(home / "clusters" / "cli")
    leftovers = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(state in part for part in proc.info["cmdline"] or ()):
                leftovers.append(proc)
        except psutil.Error:
            continue
    assert leftovers == []


def test_deploy_of_a_missing_function_fails_before_starting_anything(tmp_path):
    model = tmp_path / "model.py"
    model.write_text("def other(xs):\n    return xs\n")
    out = clipper("deploy", f"{model}:predict", "--name", "m", home=tmp_path)
    assert out.returncode != 0 and "defines no function 'predict'" in out.stderr
