"""The ``clipper`` command: start, inspect, deploy to and stop a cluster.

Every command that talks to a cluster picks the container manager with
``--manager`` (default ``local_process``, or ``$CLIPPER_MANAGER``) and the
cluster with ``--cluster`` (default ``default``, or ``$CLIPPER_CLUSTER``);
``--option KEY=VALUE`` passes any other manager argument (values are read
as JSON when they parse, e.g. ``--option namespace='"ml"'``).  Global
options go before or after the command; the parser, with every command's
help and examples, is :mod:`clipper_core.cli_args`.

Arguments are checked before any work starts (names, input type, the model
file, the container manager, which names the distribution to install when it
is missing).  Heavy modules (the connection, HTTP client, plugins) are
imported inside the commands, so ``clipper --help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from . import cli_selection
from .cli_args import DEFAULT_MANAGER, build_parser

__all__ = ["DEFAULT_MANAGER", "build_parser", "main"]

#: Exit status of ``clipper predict`` when the answer is the default output.
EXIT_DEFAULT = 3

#: Distributions of the container managers the project ships, for the hint
#: when one is not installed.
MANAGER_DISTRIBUTIONS = {"local_process": "clipper-local-process", "docker": "clipper-docker",
                         "k8s": "clipper-k8s", "kubernetes": "clipper-k8s",
                         "nomad": "clipper-nomad"}


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Building managers and connections from the command line
# ---------------------------------------------------------------------------

_PORT_OPTIONS = {"query_port": "clipper_query_port", "mgmt_port": "clipper_management_port",
                 "rpc_port": "clipper_rpc_port", "prometheus_port": "prometheus_port",
                 "store": "store_url", "state_dir": "state_dir"}


def manager_options(args: argparse.Namespace) -> dict[str, Any]:
    """Constructor arguments for the container manager, from ``args``."""
    options: dict[str, Any] = {"cluster_name": args.cluster}
    for attr, name in _PORT_OPTIONS.items():
        value = getattr(args, attr, None)
        if value is not None:
            options[name] = value
    options.update(dict(args.option or []))
    return options


def make_connection(args: argparse.Namespace) -> Any:
    """An unconnected ClipperConnection with the chosen manager."""
    from clipper_core.connection import ClipperConnection
    from clipper_core.plugins import get_container_manager

    return ClipperConnection(get_container_manager(args.manager, **manager_options(args)))


def connect(args: argparse.Namespace) -> Any:
    conn = make_connection(args)
    conn.connect()
    return conn


def check_manager(name: str) -> None:
    """ClipperException unless a container manager ``name`` is installed; the
    message lists the installed ones and the distribution that offers ``name``."""
    from clipper_core.errors import PluginError
    from clipper_core.plugins import backends

    installed = backends("container_managers")
    if name in installed:
        return
    hint = ""
    if name in MANAGER_DISTRIBUTIONS:
        hint = f". Install it with: pip install {MANAGER_DISTRIBUTIONS[name]}"
    raise PluginError(f"Unknown container manager {name!r}. Installed: "
                      f"{', '.join(sorted(installed)) or 'none'}{hint}", name=name)


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------

_KIND_LABELS = {"container_managers": "container manager", "state_stores": "state store",
                "registries": "registry", "batching_policies": "batching policy",
                "selection_policies": "selection policy"}


def cmd_plugins(args: argparse.Namespace) -> int:
    from clipper_core.plugins import KINDS, backends, list_plugins

    infos = list_plugins()
    offered: dict[str, list[str]] = {}
    for kind in KINDS:
        for backend in backends(kind).values():
            offered.setdefault(backend.plugin, []).append(
                f"{_KIND_LABELS.get(kind, kind)} {backend.name!r}")
    if args.json:
        print(json.dumps([{**i.to_wire(), "backends": offered.get(i.name, [])} for i in infos],
                         indent=2))
        return 0
    for info in infos:
        origin = "built-in" if info.builtin else (info.distribution or "?")
        print(f"{info.name}  ({origin} {info.version or ''})".rstrip())
        print(f"    hooks: {', '.join(info.hooks) or '-'}")
        if offered.get(info.name):
            print(f"    offers: {', '.join(offered[info.name])}")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    conn = make_connection(args)
    _progress(f"Starting cluster {args.cluster!r} with the {args.manager} manager ...")
    conn.start_clipper(cache_size=args.cache_size, num_frontend_replicas=args.frontends)
    print(f"Clipper cluster {args.cluster!r} is running.")
    print(f"  queries:    http://{conn.get_query_addr()}/<app>/predict")
    print(f"  management: http://{conn.get_admin_addr()}/admin/ping")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    conn = connect(args)
    apps = conn.get_all_apps(verbose=True)
    models = conn.get_all_models(verbose=True)
    replicas = conn.get_all_model_replicas(verbose=True)
    if args.json:
        print(json.dumps({"query_addr": conn.get_query_addr(), "applications": apps,
                          "models": models, "replicas": replicas}, indent=2, default=str))
        return 0
    print(f"cluster {args.cluster!r} ({args.manager}): queries at {conn.get_query_addr()}, "
          f"management at {conn.get_admin_addr()}")
    print(f"applications ({len(apps)}):")
    for app in apps:
        linked = ", ".join(app.get("linked_models") or []) or "-"
        print(f"  {app['name']:<24} {app['input_type']:<8} slo={app['latency_slo_micros']}us "
              f"model={linked}")
    print(f"models ({len(models)}):")
    for m in models:
        current = " (current)" if m.get("is_current_version") else ""
        print(f"  {m['model_name']}:{m['model_version']:<10} {m['input_type']:<8} "
              f"batch={m.get('batch_size')} image={m.get('image')}{current}")
    print(f"replicas ({len(replicas)}):")
    for r in replicas:
        health = "connected" if r.get("connected") else "not connected"
        status = r.get("status") or "-"
        print(f"  {r['model_name']}:{r['model_version']} {r['model_replica_id']:<20} "
              f"{health:<14} process={status} restarts={r.get('restarts', 0)}")
    return 0


def _load_function(target: str) -> Any:
    """``path/to/file.py:function`` -> the function, defined by running the file
    (so cloudpickle serialises it by value)."""
    import runpy

    path = _split_target(target)[0]
    func_name = target.rpartition(":")[2]
    namespace = runpy.run_path(path, run_name="__clipper_deploy__")
    func = namespace.get(func_name)
    if not callable(func):
        raise SystemExit(f"error: {path} defines no function {func_name!r}")
    return func


def _split_target(target: str) -> tuple[str, str]:
    """``FILE:FUNCTION`` -> (file, function); SystemExit when malformed or missing."""
    path, sep, func_name = target.rpartition(":")
    if not sep or not path or not func_name:
        raise SystemExit(f"error: expected FILE:FUNCTION, got {target!r}")
    if not os.path.isfile(path):
        raise SystemExit(f"error: no such file {path!r} (in {target!r})")
    return path, func_name


def _looks_like_target(text: str) -> bool:
    path, sep, func = text.rpartition(":")
    return bool(sep and func and "://" not in text and path.endswith(".py"))


def validate_deploy(args: argparse.Namespace) -> None:
    """Check every deploy argument before any work starts: FILE:FUNCTION (taken
    back from ``--pkgs`` when it came after it), names, input type, numbers."""
    from clipper_core.errors import ValidationError
    from clipper_core.models import InputType, validate_name

    if args.target is None:
        found = [p for p in args.pkgs if _looks_like_target(p)]
        if len(found) != 1:
            raise SystemExit("error: FILE:FUNCTION is required (e.g. model.py:predict)")
        args.target = found[0]
        args.pkgs = [p for p in args.pkgs if p != found[0]]
    _split_target(args.target)
    validate_name("model name", args.name)
    validate_name("model version", args.version)
    if args.app is not None:
        validate_name("application name", args.app)
    args.input_type = InputType.parse(args.input_type).label
    if args.replicas < 1:
        raise ValidationError(f"--replicas must be at least 1, got {args.replicas}")
    if args.batch_size == 0 or args.batch_size < -1:
        raise ValidationError(f"--batch-size must be -1 (adaptive) or positive, "
                              f"got {args.batch_size}")
    if args.slo_micros < 1:
        raise ValidationError(f"--slo-micros must be positive, got {args.slo_micros}")


def cmd_deploy(args: argparse.Namespace) -> int:
    from clipper_core.deployers.python import deploy_python_closure, serialize_function

    validate_deploy(args)
    func = _load_function(args.target)
    serialize_function(func)  # fail before anything is started
    conn = connect(args)
    if args.app and args.app not in conn.get_all_apps():
        _progress(f"Registering application {args.app!r}")
        conn.register_application(args.app, args.input_type, args.default_output,
                                  args.slo_micros)
    _progress(f"Deploying {args.target} as model {args.name}:{args.version} "
              f"({args.replicas} replica(s)) ...")
    deploy_python_closure(conn, args.name, args.version, args.input_type, func,
                          base_image=args.base_image, registry=args.registry,
                          num_replicas=args.replicas, batch_size=args.batch_size,
                          pkgs_to_install=args.pkgs or None)
    if args.app and args.name not in (conn.get_linked_models(args.app) or []):
        conn.link_model_to_app(args.app, args.name)
    print(f"Deployed {args.name}:{args.version}.")
    if args.app:
        print(f"  curl -X POST -H 'Content-Type: application/json' -d '{{\"input\": ...}}' "
              f"http://{conn.get_query_addr()}/{args.app}/predict")
    return 0


def _predict_body(args: argparse.Namespace) -> dict[str, Any]:
    from clipper_core.models import validate_name

    validate_name("application name", args.app)
    try:
        value = json.loads(args.input)
    except ValueError as exc:
        raise SystemExit(f"error: INPUT is not JSON: {exc}") from None
    body = value if isinstance(value, dict) and ({"input", "input_batch"} & value.keys()) \
        else {"input": value}
    if args.version is not None:
        body["version"] = args.version
    return body


def cmd_predict(args: argparse.Namespace) -> int:
    import httpx

    body = _predict_body(args)
    conn = connect(args)
    url = f"http://{conn.get_query_addr()}/{args.app}/predict"
    try:
        resp = httpx.post(url, json=body, timeout=args.timeout)
    except httpx.HTTPError as exc:
        print(f"error: {url} did not answer: {exc}", file=sys.stderr)
        return 1
    print(resp.text)
    if resp.status_code != 200:
        return 1
    answer = resp.json()
    answers = answer.get("batch_predictions", [answer]) if isinstance(answer, dict) else []
    defaults = [a for a in answers if isinstance(a, dict) and a.get("default")]
    for a in defaults:
        print(f"default output for query {a.get('query_id')}: "
              f"{a.get('default_explanation', 'no explanation given')}", file=sys.stderr)
    return EXIT_DEFAULT if defaults else 0


def cmd_logs(args: argparse.Namespace) -> int:
    conn = connect(args)
    paths = conn.get_clipper_logs(args.dir)
    if not args.follow:
        for path in paths:
            print(path)
        return 0
    offsets: dict[str, int] = {}
    try:
        while True:
            for path in paths:
                _print_new_lines(path, offsets, args.lines)
            sys.stdout.flush()
            time.sleep(args.interval)
            paths = conn.get_clipper_logs(args.dir)
    except KeyboardInterrupt:
        return 0


def _print_new_lines(path: str, offsets: dict[str, int], first_lines: int) -> None:
    """Print the complete lines ``path`` gained since the last call, each
    prefixed with the process name; the first call prints the last
    ``first_lines`` lines.  A file that shrank is read again from its start."""
    name = os.path.basename(path).removesuffix(".log")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return
    end = data.rfind(b"\n") + 1
    start = offsets.get(path)
    if start is None:
        chunk = data[:end].splitlines()[-first_lines:] if first_lines > 0 else []
    elif start > len(data):  # truncated or replaced: read it again
        chunk = data[:end].splitlines()
    else:
        chunk = data[start:end].splitlines()
    offsets[path] = end
    for line in chunk:
        print(f"{name} | {line.decode('utf-8', 'replace')}")


def cmd_stop(args: argparse.Namespace) -> int:
    conn = make_connection(args)
    _progress(f"Stopping cluster {args.cluster!r} ...")
    conn.stop_all()
    print(f"Stopped cluster {args.cluster!r}.")
    return 0


def cmd_migrate_store(args: argparse.Namespace) -> int:
    from clipper_core.stores.migrate import copy_state

    _progress(f"Copying state from {args.src} to {args.dst} ...")
    summary = copy_state(args.src, args.dst)
    copied = summary.to_wire()
    print(f"Copied {copied['applications']} application(s), {copied['models']} model "
          f"version(s), {copied['links']} link(s) at revision {copied['source_revision']}.")
    return 0


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------

def _cmd_policy(args: argparse.Namespace) -> int:
    return cli_selection.cmd_policy(args, connect)


COMMANDS = {"plugins": cmd_plugins, "start": cmd_start, "status": cmd_status,
            "deploy": cmd_deploy, "predict": cmd_predict, "logs": cmd_logs, "stop": cmd_stop,
            "migrate-store": cmd_migrate_store, "policy": _cmd_policy}
#: Commands that do not talk to a cluster (no container manager needed).
_NO_MANAGER = frozenset({"plugins", "migrate-store"})


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``clipper`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    from clipper_core import logs
    from clipper_core.errors import ClipperException

    try:
        logs.configure(args.log_level, args.log_format)
    except ValueError as exc:  # an unknown CLIPPER_LOG_FORMAT
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command not in _NO_MANAGER:
            check_manager(args.manager)
        return int(COMMANDS[args.command](args) or 0)
    except ClipperException as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
