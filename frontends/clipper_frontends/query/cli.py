"""``python -m clipper_frontends.query``: the query frontend's command line."""

from __future__ import annotations

import argparse
import logging
import math
import os

from clipper_core import curve, logs, plugins
from clipper_core.models import REPLICA_LEASE_S
from clipper_core.secrets import store_url_from_env

from .. import trust
from ..serving_limits import raise_nofile_limit
from . import access, limits, prometheus
from .frontend import DEFAULT_CACHE_SIZE, QueryFrontend
from .queues import PIPELINE_DEPTH
from .replicas import STUCK_BOUND_S

log = logging.getLogger("clipper.query")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m clipper_frontends.query",
                                     description="Clipper query frontend")
    parser.add_argument("--store", default=None,
                        help="state store URL (default: env CLIPPER_STORE_URL or its _FILE; "
                             "a password comes from env CLIPPER_STORE_PASSWORD or its _FILE)")
    parser.add_argument("--host", default="0.0.0.0", help="HTTP address to listen on")
    parser.add_argument("--port", type=int, default=1337, help="HTTP port")
    parser.add_argument("--rpc-host", default=None,
                        help="address of the RPC port model replicas connect to (default "
                             "0.0.0.0; 127.0.0.1 with --rpc-auth none)")
    parser.add_argument("--rpc-port", type=int, default=7000, help="RPC port")
    parser.add_argument("--rpc-auth", choices=curve.RPC_AUTH_MODES,
                        default=os.environ.get(curve.RPC_AUTH_ENV) or curve.RPC_AUTH_CURVE,
                        help="curve (default): replicas authenticate with the cluster's keys "
                             "and serve only their key's model; none: plain Clipper RPC v3 "
                             f"for original Clipper containers (env {curve.RPC_AUTH_ENV})")
    parser.add_argument("--rpc-keys", default=os.environ.get(curve.KEYS_DIR_ENV) or None,
                        metavar="DIR",
                        help="directory of the RPC keys (server_secret, replica_seed; made "
                             "when missing); default: CLIPPER_RPC_SERVER_SECRET and "
                             f"CLIPPER_RPC_REPLICA_SEED or their _FILE (env {curve.KEYS_DIR_ENV})")
    parser.add_argument("--rpc-max-frame-bytes", type=int,
                        default=int(os.environ.get("CLIPPER_RPC_MAX_FRAME_BYTES", "0")) or None,
                        help="largest RPC frame read (default: the largest request body, at "
                             "least 1 MiB); a replica sending a larger one is disconnected")
    parser.add_argument("--cache-size", type=int, default=DEFAULT_CACHE_SIZE,
                        help="prediction cache size in bytes")
    parser.add_argument("--frontend-id", default=None,
                        help="this frontend's name in replica records (default host-pid)")
    parser.add_argument("--replica-silence-s", type=float, default=15.0,
                        help="drop an idle replica silent for this long")
    parser.add_argument("--replica-stuck-s", type=float,
                        default=float(os.environ.get("CLIPPER_REPLICA_STUCK_S", STUCK_BOUND_S)),
                        help="longest a replica may sit on a batch before it is suspect and "
                             "its queries go to other replicas (the deadline is derived from "
                             "the model's latency and SLO, at most this)")
    parser.add_argument("--replica-lease-s", type=float, default=REPLICA_LEASE_S,
                        help="lease of replica records in the store")
    parser.add_argument("--pipeline-depth", type=int,
                        default=int(os.environ.get("CLIPPER_PIPELINE_DEPTH", PIPELINE_DEPTH)),
                        help="batches in flight per replica: a busy replica is sent one "
                             "more full batch, up to this many (1: Clipper's one at a time)")
    parser.add_argument("--http-server", choices=("builtin", "uvicorn"),
                        default=os.environ.get("CLIPPER_HTTP_SERVER", "builtin"),
                        help="the built-in httptools server (default) or uvicorn (ASGI)")
    parser.add_argument("--log-level", default=os.environ.get(logs.LEVEL_ENV, "INFO"))
    parser.add_argument("--log-format", choices=logs.FORMATS, default=None,
                        help=f"plain text or one JSON object per line, for the logs and the "
                             f"access log (default: env {logs.FORMAT_ENV} or plain)")
    parser.add_argument("--prometheus-port", type=int,
                        default=_env_int(prometheus.PORT_ENV),
                        help=f"port of the Prometheus metrics (text format at /metrics; "
                             f"0: off; default {prometheus.DEFAULT_PORT}, skipped with a "
                             f"warning when taken; env {prometheus.PORT_ENV}); the query "
                             f"port also serves them at /prometheus")
    parser.add_argument("--access-log", nargs="?", const="-",
                        default=os.environ.get(access.ACCESS_LOG_ENV) or None, metavar="FILE",
                        help="log one line per request (method, path, status, latency, "
                             "request id) to FILE, or stderr without one; off by default "
                             f"(env {access.ACCESS_LOG_ENV})")
    limits.add_arguments(parser)
    trust.add_arguments(parser, backup=False)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.store = store_url_from_env(args.store)
    if not args.store:
        parser.error("--store URL is required (or set CLIPPER_STORE_URL)")
    try:
        tls = trust.ssl_context(args)
    except (ValueError, OSError) as exc:
        parser.error(f"--tls-cert/--tls-key: {exc}")
    if args.pipeline_depth < 1:
        parser.error(f"--pipeline-depth must be at least 1, got {args.pipeline_depth}")
    try:
        http_limits = limits.HTTPLimits.from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    logs.configure(args.log_level, args.log_format)
    rpc_keys = _rpc_keys(parser, args)
    trust.redact_logs(args.store)
    frontend = QueryFrontend(args.store, rpc_host=args.rpc_host, rpc_port=args.rpc_port,
                             cache_size=args.cache_size, frontend_id=args.frontend_id,
                             max_body_bytes=http_limits.max_body_bytes,
                             max_batch_inputs=http_limits.max_batch_inputs,
                             replica_silence_s=args.replica_silence_s,
                             replica_lease_s=args.replica_lease_s, freeze_gc=True,
                             pipeline_depth=args.pipeline_depth,
                             replica_stuck_s=args.replica_stuck_s, rpc_auth=args.rpc_auth,
                             rpc_keys=rpc_keys, rpc_max_frame_bytes=args.rpc_max_frame_bytes,
                             prometheus_port=(prometheus.DEFAULT_PORT if args.prometheus_port
                                              is None else args.prometheus_port),
                             prometheus_host=args.host,
                             prometheus_required=args.prometheus_port is not None)
    if args.access_log:
        frontend.access_log = access.AccessLog.open(args.access_log, args.log_format)
    log.info("plugins: %s", ", ".join(f"{p.name} {p.version or ''}".strip()
                                      for p in plugins.list_plugins()))
    if args.http_server == "builtin":
        from .httpserver import serve

        serve(frontend, args.host, args.port, limits=http_limits, ssl=tls)
        return
    import uvicorn

    from .asgi import QueryASGI

    # No proxy-header rewriting, Server or Date headers: per-request work the
    # frontend does not need (measured: bench/HISTORY.md).  uvicorn enforces
    # the connection cap and the keep-alive timeout; the app the head limits.
    nofile = raise_nofile_limit()
    uvicorn.run(QueryASGI(frontend, http_limits), host=args.host, port=args.port,
                loop="uvloop", http="httptools", lifespan="on", log_level="warning",
                access_log=False, proxy_headers=False, server_header=False, date_header=False,
                backlog=2048, limit_concurrency=http_limits.connections(nofile),
                timeout_keep_alive=math.ceil(http_limits.keep_alive_s), **trust.uvicorn_tls(args))


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    return int(value) if value else None


def _rpc_keys(parser: argparse.ArgumentParser,
              args: argparse.Namespace) -> curve.ClusterKeys | None:
    """The RPC keys of ``--rpc-keys`` or the environment; a command-line
    frontend with CURVE on and no keys is an error (no replica could connect)."""
    if args.rpc_auth == curve.RPC_AUTH_NONE:
        return None
    try:
        keys = (curve.ClusterKeys.from_dir(args.rpc_keys) if args.rpc_keys
                else curve.ClusterKeys.from_env())
    except curve.RPCKeyError as exc:
        parser.error(str(exc))
    if keys is None:
        parser.error(f"RPC auth is curve but no keys were given: --rpc-keys DIR, or "
                     f"{curve.SERVER_SECRET_ENV} and {curve.REPLICA_SEED_ENV} (or their "
                     "_FILE), or --rpc-auth none for replicas without keys")
    return keys
