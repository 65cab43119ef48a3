"""Quickstart: a Clipper cluster on this machine, one model, a few predictions.

    python examples/quickstart.py            # start, deploy, query, stop
    python examples/quickstart.py --keep     # leave the cluster running
                                             # (stop it with: clipper stop --cluster quickstart)

It uses the embedded default container manager (``local_process``): the
frontends and the model replicas are local processes, the state is a SQLite
file under ``~/.clipper/clusters/quickstart`` (``$CLIPPER_HOME`` moves it).
The cluster has its own name and ports, so it does not disturb a cluster
started with the defaults.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import httpx

from clipper_core import ClipperException
from clipper_core.connection import ClipperConnection
from clipper_core.deployers.python import create_endpoint

APP = "feature-sum"


def feature_sum(inputs):
    """The model: one output per input (each input is a numpy array of doubles)."""
    return [float(x.sum()) for x in inputs]


def predict(url: str, x: list[float], timeout: float = 20.0) -> dict:
    """POST one query; retry while the new endpoint is still being wired up."""
    deadline = time.monotonic() + timeout
    while True:
        answer = httpx.post(url, json={"input": x}, timeout=10).json()
        if not answer.get("default") or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cluster", default="quickstart")
    parser.add_argument("--query-port", type=int, default=41337)
    parser.add_argument("--mgmt-port", type=int, default=41338)
    parser.add_argument("--rpc-port", type=int, default=41700)
    parser.add_argument("--keep", action="store_true", help="leave the cluster running")
    args = parser.parse_args()

    conn = ClipperConnection("local_process", cluster_name=args.cluster,
                             clipper_query_port=args.query_port,
                             clipper_management_port=args.mgmt_port,
                             clipper_rpc_port=args.rpc_port)
    try:
        conn.start_clipper()
    except ClipperException as exc:
        print(f"Could not start the cluster: {exc}\n(If a previous run used --keep: "
              f"clipper stop --cluster {args.cluster})", file=sys.stderr)
        return 1
    try:
        print(f"\nDeploying the function {feature_sum.__name__!r} as application {APP!r} ...")
        create_endpoint(conn, APP, "doubles", feature_sum, default_output="-1",
                        slo_micros=1_000_000, num_replicas=2)
        url = f"http://{conn.get_query_addr()}/{APP}/predict"
        print("\nPredictions:")
        for x in ([1.0, 2.0, 3.0], [0.5, 0.25], [10.0, -4.0, 1.5, 2.5]):
            answer = predict(url, x)
            print(f"  {json.dumps(x):<26} -> {json.dumps(answer)}")
        print("\nQuery it yourself:")
        print(f"  curl -X POST -H 'Content-Type: application/json' "
              f"-d '{{\"input\": [1.1, 2.2, 3.3]}}' {url}")
        if args.keep:
            print(f"\nThe cluster keeps running; stop it with: clipper stop --cluster "
                  f"{args.cluster}")
            return 0
    except BaseException:
        conn.stop_all()
        raise
    print("\nStopping the cluster ...")
    conn.stop_all()
    print("Done.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
