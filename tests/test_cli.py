"""The ``clipper`` command, run as a real process against a real local cluster."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import psutil
import pytest
from conftest import free_port, wait_until

import clipper_core
from clipper_core.cli import COMMANDS, build_parser, main, validate_deploy
from clipper_core.models import Application
from clipper_core.plugins import open_store


def clipper(*args: str, home: Path, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CLIPPER_HOME": str(home), "PYTHONUNBUFFERED": "1", **(env or {})}
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
            if not json.loads(predicted.stdout)["default"]:
                break
            assert predicted.returncode == 3, predicted.stderr
        assert predicted.returncode == 0, predicted.stderr
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
        _check_default_answer(home, tmp_path, common)
        _check_logs_follow(home, tmp_path, common)
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


def _check_default_answer(home: Path, tmp_path: Path, common: list[str]) -> None:
    """A default answer exits 3 and prints its explanation on stderr."""
    slow = tmp_path / "slow.py"
    slow.write_text("import time\n\ndef predict(xs):\n    time.sleep(2)\n    return xs\n")
    deployed = clipper("deploy", f"{slow}:predict", "--name", "slow", "--app", "late",
                       "--slo-micros", "1000", *common, home=home)
    assert deployed.returncode == 0, deployed.stderr
    late = clipper("predict", "late", "[1]", *common, home=home)
    assert late.returncode == 3, (late.stdout, late.stderr)
    assert json.loads(late.stdout)["default"] is True
    assert "default output for query" in late.stderr
    assert ("within the specified latency SLO" in late.stderr
            or "No connected models found" in late.stderr)


def _check_logs_follow(home: Path, tmp_path: Path, common: list[str]) -> None:
    """``clipper logs -f`` prints the last lines, then lines written later."""
    env = {**os.environ, "CLIPPER_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "clipper_core.cli", "logs", "-f",
                             str(tmp_path / "followed"), "--interval", "0.2", *common],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                              daemon=True)
    reader.start()
    try:
        # Each line is prefixed with its file's name (the copy is <cluster>-management.log).
        wait_until(lambda: any(line.split(" | ")[0].endswith("-management") for line in lines),
                   timeout=30, what="the management log's last lines")
        source = home / "clusters" / "cli" / "logs" / "management.log"
        with source.open("a") as f:
            f.write("a line written while following\n")
        wait_until(lambda: "cli-management | a line written while following\n" in lines,
                   timeout=30, what="a new line")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""


def test_version():
    out = subprocess.run([sys.executable, "-m", "clipper_core.cli", "--version"],
                         capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout.strip() == f"clipper {clipper_core.__version__} " \
                                 f"(clipper-core {clipper_core.__version__})"


@pytest.mark.parametrize("argv", [
    ["--cluster", "c1", "--manager", "docker", "status"],
    ["status", "--cluster", "c1", "--manager", "docker"],
    ["--cluster", "c1", "status", "--manager", "docker"],
    ["--cluster", "other", "status", "--cluster", "c1", "--manager", "docker"],
])
def test_global_options_before_or_after_the_command(argv):
    args = build_parser().parse_args(argv)
    assert (args.command, args.cluster, args.manager) == ("status", "c1", "docker")


def test_global_defaults_hold_without_options(monkeypatch):
    monkeypatch.delenv("CLIPPER_CLUSTER", raising=False)
    monkeypatch.delenv("CLIPPER_MANAGER", raising=False)
    args = build_parser().parse_args(["stop"])
    assert (args.cluster, args.manager, args.option, args.log_format) == \
        ("default", "local_process", None, None)


def test_unknown_manager_names_the_distribution_to_install(tmp_path):
    env_only_local = {"CLIPPER_PLUGINS": "local_process"}
    out = clipper("status", "--manager", "k8s", home=tmp_path, env=env_only_local)
    assert out.returncode == 1
    assert "Unknown container manager 'k8s'. Installed: local_process" in out.stderr
    assert "pip install clipper-k8s" in out.stderr


@pytest.mark.parametrize(("extra", "message"), [
    (["--input-type", "tensors"], "Invalid input type 'tensors'"),
    (["--name", "Bad_Name"], "Invalid model name 'Bad_Name'"),
    (["--version", "v.1"], "Invalid model version 'v.1'"),
    (["--app", "My App"], "Invalid application name 'My App'"),
    (["--replicas", "0"], "--replicas must be at least 1"),
    (["--batch-size", "0"], "--batch-size must be -1 (adaptive) or positive"),
])
def test_deploy_validates_everything_before_any_work(tmp_path, extra, message):
    model = tmp_path / "model.py"
    model.write_text("def predict(xs):\n    return xs\n")
    out = clipper("deploy", f"{model}:predict", "--name", "m", "--cluster", "absent", *extra,
                  home=tmp_path)
    assert out.returncode == 1
    assert message in out.stderr
    assert "Deploying" not in out.stderr and "No local cluster" not in out.stderr


def test_deploy_of_a_missing_file_fails_before_anything(tmp_path):
    out = clipper("deploy", f"{tmp_path / 'nothing.py'}:predict", "--name", "m",
                  "--cluster", "absent", home=tmp_path)
    assert out.returncode != 0 and "no such file" in out.stderr
    assert "No local cluster" not in out.stderr


def test_pkgs_do_not_swallow_the_model_file(tmp_path):
    model = tmp_path / "model.py"
    model.write_text("def predict(xs):\n    return xs\n")
    parser = build_parser()
    args = parser.parse_args(["deploy", "--pkgs", "numpy", "scikit-learn", f"{model}:predict",
                              "--name", "m"])
    validate_deploy(args)
    assert args.target == f"{model}:predict"
    assert args.pkgs == ["numpy", "scikit-learn"]
    after = parser.parse_args(["deploy", f"{model}:predict", "--pkgs", "numpy", "--name", "m"])
    validate_deploy(after)
    assert (after.target, after.pkgs) == (f"{model}:predict", ["numpy"])
    neither = parser.parse_args(["deploy", "--pkgs", "numpy", "--name", "m"])
    with pytest.raises(SystemExit, match="FILE:FUNCTION is required"):
        validate_deploy(neither)


def test_predict_validates_before_connecting(tmp_path):
    out = clipper("predict", "Bad App", "[1]", "--cluster", "absent", home=tmp_path)
    assert out.returncode == 1 and "Invalid application name 'Bad App'" in out.stderr
    out = clipper("predict", "app", "[1,", "--cluster", "absent", home=tmp_path)
    assert out.returncode != 0 and "INPUT is not JSON" in out.stderr


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_and_option_has_help_and_every_command_an_example():
    parser = build_parser()
    commands = _subcommands(parser)
    assert set(commands) == set(COMMANDS)
    for name, sub in [("clipper", parser), *commands.items()]:
        text = sub.format_help()
        assert "examples:\n  clipper" in text, name
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"{name}: {action.option_strings or action.dest} has no help"
