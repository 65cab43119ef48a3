"""The query frontend: ``POST /{app}/predict`` (SPEC.md section 2).

One event loop does everything.  The rooms a query walks through, in order
(``docs/architecture.md`` has the picture and who owns which state):

- ``httpserver``  the built-in HTTP/1.1 server (httptools); ``asgi`` is the
                  same frontend as an ASGI app (``--http-server uvicorn``)
- ``service``     route, parse (``ingest`` for plain doubles), admit, cache,
                  enqueue, render; the route table of every other route
- ``queues``      per model-version queue and batching
- ``replicas``    the replica pool: connected replicas and batches in flight
- ``rpc_server``  the ZeroMQ ROUTER socket (RPC v3 transport)

Beside the path: ``routes`` (applications and queues per configuration),
``sync`` (the state store's snapshot), ``records`` (replica records and
leases), ``deadlines`` (SLO timers), ``metrics``; ``frontend`` assembles the
parts, ``cli`` is the command line.
"""

from .asgi import QueryASGI, create_app
from .frontend import QueryFrontend

__all__ = ["QueryASGI", "QueryFrontend", "create_app"]
