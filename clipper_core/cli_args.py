"""The argument parser of the ``clipper`` command: every command, its help
text and an example.

Global options (``--manager``, ``--cluster``, ``--option``, ``--state-dir``,
``--log-level``, ``--log-format``) are accepted before or after the
command: the top-level parser holds their defaults, and each command's
parser accepts them again with no default of its own, so a value given after
the command overrides one given before it and an absent one keeps it.

Nothing heavy is imported here, so ``clipper --help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from . import __version__
from .cli_selection import add_policy_commands

DEFAULT_MANAGER = "local_process"
FORMATS = ("plain", "json")


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.replace("-", "_"), json.loads(value)
    except ValueError:
        return key.replace("-", "_"), value


def _add_globals(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The global options; on a command's parser they default to nothing, so
    the top-level parser's values stand unless given again."""

    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    group = parser.add_argument_group("global options (before or after the command)")
    group.add_argument("--manager",
                       default=default(os.environ.get("CLIPPER_MANAGER", DEFAULT_MANAGER)),
                       help="container manager plugin: local_process, docker, k8s, nomad... "
                            f"(default: env CLIPPER_MANAGER or {DEFAULT_MANAGER})")
    group.add_argument("--cluster", default=default(os.environ.get("CLIPPER_CLUSTER", "default")),
                       help="cluster name (default: env CLIPPER_CLUSTER or 'default')")
    group.add_argument("--option", action="append", type=_option, metavar="KEY=VALUE",
                       default=default(None),
                       help="extra container manager argument, read as JSON when it parses "
                            "(repeatable), e.g. --option namespace='\"ml\"'")
    group.add_argument("--state-dir", default=default(None),
                       help="local_process: the cluster's state directory")
    group.add_argument("--log-level", default=default(os.environ.get("CLIPPER_LOG_LEVEL",
                                                                     "WARNING")),
                       help="DEBUG, INFO, WARNING or ERROR (default: env CLIPPER_LOG_LEVEL "
                            "or WARNING)")
    group.add_argument("--log-format", choices=FORMATS, default=default(None),
                       help="plain text or JSON lines (default: env CLIPPER_LOG_FORMAT "
                            "or plain)")


def _command(sub: Any, name: str, summary: str, description: str,
             examples: list[str]) -> argparse.ArgumentParser:
    """A command's parser with its help, description and examples."""
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples)
    p: argparse.ArgumentParser = sub.add_parser(
        name, help=summary, description=description, epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(command=name)
    _add_globals(p, top=False)
    return p


def _deploy_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="FILE:FUNCTION", nargs="?",
                   help="a Python file and the function in it: f(inputs: list) -> list")
    p.add_argument("--name", required=True, help="model name (a DNS-1123 label)")
    p.add_argument("--version", default="1",
                   help="model version, a DNS-1123 label (default: %(default)s)")
    p.add_argument("--input-type", default="doubles",
                   help="integers, floats, doubles, bytes or strings (default: %(default)s)")
    p.add_argument("--app", help="application to register (if new) and link to the model")
    p.add_argument("--default-output", default="None",
                   help="the new app's default output (default: %(default)s)")
    p.add_argument("--slo-micros", type=int, default=3000000,
                   help="the new app's latency SLO in microseconds (default: %(default)s)")
    p.add_argument("--pkgs", nargs="+", action="extend", default=[], metavar="PKG",
                   help="pip packages the model needs (may come before FILE:FUNCTION)")
    p.add_argument("--replicas", type=int, default=1,
                   help="number of model replicas (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=-1,
                   help="largest batch; -1 = adaptive (default: %(default)s)")
    p.add_argument("--base-image", default="default",
                   help="base image for managers that build images (default: %(default)s)")
    p.add_argument("--registry", help="where to publish the built model (default: none)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``clipper`` command."""
    parser = argparse.ArgumentParser(
        prog="clipper", description="Low-latency prediction serving (a plugin-based Clipper).",
        epilog="examples:\n  clipper start\n  clipper --cluster demo status\n"
               "  clipper predict hello '[1.0, 2.0]'\n\n"
               "'clipper COMMAND --help' shows each command's options and examples.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version",
                        version=f"clipper {__version__} (clipper-core {__version__})",
                        help="print the version and exit")
    _add_globals(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _command(sub, "plugins", "list installed plugins, their versions and hooks",
                 "Every plugin the core found (built-in and installed distributions), "
                 "the hooks it implements and the backends it offers.",
                 ["clipper plugins", "clipper plugins --json"])
    p.add_argument("--json", action="store_true", help="print JSON instead of text")

    p = _command(sub, "start", "start a cluster",
                 "Start the management frontend, the query frontend(s) and a state store "
                 "with the chosen container manager.",
                 ["clipper start", "clipper start --cluster demo --query-port 8080",
                  "clipper start --manager docker --option redis_port=6380"])
    p.add_argument("--query-port", type=int, help="query REST port (default 1337)")
    p.add_argument("--mgmt-port", type=int, help="management REST port (default 1338)")
    p.add_argument("--rpc-port", type=int, help="model RPC port (default 7000)")
    p.add_argument("--prometheus-port", type=int, help="metrics port (default 1390)")
    p.add_argument("--store", help="state store URL (default: SQLite in the state dir)")
    p.add_argument("--frontends", type=int, default=1,
                   help="number of query frontends (default: %(default)s)")
    p.add_argument("--cache-size", type=int, default=32 * 1024 * 1024,
                   help="prediction cache size in bytes (default: %(default)s)")

    p = _command(sub, "status", "applications, models and replicas with their health",
                 "What the cluster serves: applications, model versions and replicas, "
                 "and whether each replica is connected.",
                 ["clipper status", "clipper status --json --cluster demo"])
    p.add_argument("--json", action="store_true", help="print JSON instead of text")

    p = _command(sub, "deploy", "deploy a Python function as a model",
                 "Deploy f(inputs: list) -> list from a Python file as a model version; "
                 "with --app, register the application if new and link it.  Names, the "
                 "input type and the file are checked before anything starts.",
                 ["clipper deploy model.py:predict --name sum --version 1 --app hello",
                  "clipper deploy --pkgs scikit-learn numpy model.py:predict --name clf"])
    _deploy_arguments(p)

    _operation_commands(sub)
    add_policy_commands(sub, _command)
    return parser


def _operation_commands(sub: Any) -> None:
    """predict, logs, stop and migrate-store."""
    p = _command(sub, "predict", "send one query to an application",
                 "POST the input to /APP/predict and print the answer.  Exit status: 0 "
                 "when a model answered, 3 when the answer is the application's default "
                 "output (the explanation goes to stderr), 1 on an error.",
                 ["clipper predict hello '[1.0, 2.0]'",
                  "clipper predict hello '{\"input_batch\": [[1.0], [2.0]]}'"])
    p.add_argument("app", metavar="APP", help="application name")
    p.add_argument("input", metavar="JSON",
                   help='the input (e.g. "[1, 2]") or a full body ({"input_batch": [...]})')
    p.add_argument("--version", help="pin the model version")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds to wait for the answer (default: %(default)s)")

    p = _command(sub, "logs", "copy every process's log into DIR, or follow them",
                 "Copy the log of every process of the cluster into DIR and list the "
                 "files; with -f, print new lines of every log as they come (Ctrl-C stops).",
                 ["clipper logs", "clipper logs /tmp/clipper-logs", "clipper logs -f"])
    p.add_argument("dir", nargs="?", default="clipper_logs/", metavar="DIR",
                   help="where to copy the logs (default: %(default)s)")
    p.add_argument("-f", "--follow", action="store_true",
                   help="keep printing new log lines, prefixed with the process name")
    p.add_argument("-n", "--lines", type=int, default=10,
                   help="with -f, start with this many last lines of each log "
                        "(default: %(default)s)")
    p.add_argument("--interval", type=float, default=1.0,
                   help="with -f, seconds between two reads (default: %(default)s)")

    _command(sub, "stop", "stop the cluster and all its models",
             "Stop every process of the cluster (frontends, replicas, store) and "
             "unregister what it ran.", ["clipper stop", "clipper stop --cluster demo"])

    p = _command(sub, "migrate-store", "copy a cluster's state between store URLs",
                 "Copy applications, model versions and links from one state store to "
                 "another (e.g. from the embedded SQLite file to Redis).",
                 ["clipper migrate-store sqlite:///var/clipper/state.db "
                  "redis://127.0.0.1:6379/0"])
    p.add_argument("src", metavar="SRC_URL", help="state store to copy from")
    p.add_argument("dst", metavar="DST_URL", help="state store to copy into")

