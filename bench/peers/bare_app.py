"""The bare baseline: a Starlette app on uvicorn that runs the model inline.

The upper bound of a Python HTTP front: no queue, no RPC, no cache; each
request's model call runs on the event loop.  Same ASGI server settings as
our query frontend (uvloop, httptools, no access log).  Request and
response bodies have Clipper's shape, so the same load scripts drive it.

Run: python bench/peers/bare_app.py --port PORT
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import workloads  # noqa: E402

_count = 0


def _reply(output: object) -> Response:
    global _count
    _count += 1
    return Response(orjson.dumps({"query_id": _count, "output": output, "default": False}),
                    media_type="application/json")


def build_app(with_sklearn: bool) -> Starlette:
    """The baseline app: POST /noop/predict, /sklearn/predict and /healthz."""
    sk = None
    if with_sklearn:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sk = workloads.train_sklearn()

    async def noop(request: Request) -> Response:
        x = orjson.loads(await request.body())["input"]
        return _reply(workloads.noop_predict([x])[0])

    async def sklearn(request: Request) -> Response:
        x = orjson.loads(await request.body())["input"]
        assert sk is not None
        return _reply(int(sk.predict(np.asarray([x], dtype=np.float64))[0]))

    async def healthz(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    routes = [Route("/noop/predict", noop, methods=["POST"]),
              Route("/healthz", healthz)]
    if with_sklearn:
        routes.append(Route("/sklearn/predict", sklearn, methods=["POST"]))
    return Starlette(routes=routes)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--no-sklearn", action="store_true")
    args = parser.parse_args()
    import uvicorn

    uvicorn.run(build_app(not args.no_sklearn), host="127.0.0.1", port=args.port,
                loop="uvloop", http="httptools", log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
