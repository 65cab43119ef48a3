"""The ``clipper`` command: start, inspect, deploy to and stop a cluster.

Every command that talks to a cluster picks the container manager with
``--manager`` (default ``local_process``, or ``$CLIPPER_MANAGER``) and the
cluster with ``--cluster`` (default ``default``, or ``$CLIPPER_CLUSTER``);
``--option KEY=VALUE`` passes any other manager argument (values are read
as JSON when they parse, e.g. ``--option namespace='"ml"'``).

Heavy modules (the connection, HTTP client, plugins) are imported inside the
commands, so ``clipper --help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

DEFAULT_MANAGER = "local_process"


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.replace("-", "_"), json.loads(value)
    except ValueError:
        return key.replace("-", "_"), value


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


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------

_KIND_LABELS = {"container_managers": "container manager", "state_stores": "state store",
                "registries": "registry", "batching_policies": "batching policy"}


def cmd_plugins(args: argparse.Namespace) -> int:
    from clipper_core.plugins import KINDS, backends, list_plugins

    infos = list_plugins()
    offered: dict[str, list[str]] = {}
    for kind in KINDS:
        for backend in backends(kind).values():
            offered.setdefault(backend.plugin, []).append(f"{_KIND_LABELS[kind]} {backend.name!r}")
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

    path, sep, func_name = target.rpartition(":")
    if not sep or not path or not func_name:
        raise SystemExit(f"error: expected FILE:FUNCTION, got {target!r}")
    if not os.path.isfile(path):
        raise SystemExit(f"error: no such file {path!r}")
    namespace = runpy.run_path(path, run_name="__clipper_deploy__")
    func = namespace.get(func_name)
    if not callable(func):
        raise SystemExit(f"error: {path} defines no function {func_name!r}")
    return func


def cmd_deploy(args: argparse.Namespace) -> int:
    from clipper_core.deployers.python import deploy_python_closure, serialize_function

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


def cmd_predict(args: argparse.Namespace) -> int:
    import httpx

    try:
        value = json.loads(args.input)
    except ValueError as exc:
        raise SystemExit(f"error: INPUT is not JSON: {exc}") from None
    body = value if isinstance(value, dict) and ({"input", "input_batch"} & value.keys()) \
        else {"input": value}
    if args.version is not None:
        body["version"] = args.version
    conn = connect(args)
    url = f"http://{conn.get_query_addr()}/{args.app}/predict"
    try:
        resp = httpx.post(url, json=body, timeout=args.timeout)
    except httpx.HTTPError as exc:
        print(f"error: {url} did not answer: {exc}", file=sys.stderr)
        return 1
    print(resp.text)
    return 0 if resp.status_code == 200 else 1


def cmd_logs(args: argparse.Namespace) -> int:
    conn = connect(args)
    for path in conn.get_clipper_logs(args.dir):
        print(path)
    return 0


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
# Argument parsing
# ---------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``clipper`` command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--manager", default=os.environ.get("CLIPPER_MANAGER", DEFAULT_MANAGER),
                        help="container manager plugin (default: %(default)s)")
    common.add_argument("--cluster", default=os.environ.get("CLIPPER_CLUSTER", "default"),
                        help="cluster name (default: %(default)s)")
    common.add_argument("--option", action="append", type=_option, metavar="KEY=VALUE",
                        help="extra container manager argument (repeatable)")
    common.add_argument("--state-dir", help="local_process: the cluster's state directory")

    parser = argparse.ArgumentParser(
        prog="clipper", description="Low-latency prediction serving (a plugin-based Clipper).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("plugins", help="list installed plugins, their versions and hooks")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("start", parents=[common], help="start a cluster")
    p.add_argument("--query-port", type=int, help="query REST port (default 1337)")
    p.add_argument("--mgmt-port", type=int, help="management REST port (default 1338)")
    p.add_argument("--rpc-port", type=int, help="model RPC port (default 7000)")
    p.add_argument("--prometheus-port", type=int, help="metrics port (default 1390)")
    p.add_argument("--store", help="state store URL (default: SQLite in the state dir)")
    p.add_argument("--frontends", type=int, default=1, help="number of query frontends")
    p.add_argument("--cache-size", type=int, default=32 * 1024 * 1024,
                   help="prediction cache size in bytes")
    p.set_defaults(func=cmd_start)

    p = sub.add_parser("status", parents=[common],
                       help="applications, models and replicas with their health")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("deploy", parents=[common], help="deploy a Python function as a model")
    p.add_argument("target", metavar="FILE:FUNCTION",
                   help="a Python file and the function in it: f(inputs: list) -> list")
    p.add_argument("--name", required=True, help="model name")
    p.add_argument("--version", default="1", help="model version (default: %(default)s)")
    p.add_argument("--input-type", default="doubles",
                   help="integers, floats, doubles, bytes or strings (default: %(default)s)")
    p.add_argument("--app", help="application to register (if new) and link to the model")
    p.add_argument("--default-output", default="None", help="the app's default output")
    p.add_argument("--slo-micros", type=int, default=3000000, help="the app's latency SLO")
    p.add_argument("--pkgs", nargs="+", default=[], metavar="PKG",
                   help="pip packages the model needs")
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=-1, help="-1 = adaptive")
    p.add_argument("--base-image", default="default")
    p.add_argument("--registry", help="where to publish the built model")
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("predict", parents=[common], help="send one query to an application")
    p.add_argument("app")
    p.add_argument("input", metavar="JSON",
                   help='the input (e.g. "[1, 2]") or a full body ({"input_batch": [...]})')
    p.add_argument("--version", help="pin the model version")
    p.add_argument("--timeout", type=float, default=30.0)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("logs", parents=[common], help="copy every process's log into DIR")
    p.add_argument("dir", nargs="?", default="clipper_logs/", metavar="DIR")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("stop", parents=[common], help="stop the cluster and all its models")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("migrate-store", help="copy a cluster's state between store URLs")
    p.add_argument("src", metavar="SRC_URL")
    p.add_argument("dst", metavar="DST_URL")
    p.set_defaults(func=cmd_migrate_store)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``clipper`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    from clipper_core.errors import ClipperException

    try:
        return int(args.func(args) or 0)
    except ClipperException as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
