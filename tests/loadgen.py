"""A small, fast HTTP/1.1 keep-alive client for load in tests.

httpx spends more time per request than the frontend does, so it cannot
put a frontend under load from one Python process; this writes pre-built
requests on raw asyncio streams and parses only what it needs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, host: str = "127.0.0.1") -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def post(self, path: str, body: bytes) -> tuple[int, Any]:
        self.writer.write(b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body))
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        payload = await self.reader.readexactly(length)
        return status, json.loads(payload)

    def close(self) -> None:
        self.writer.close()


async def run(port: int, path: str, bodies: list[bytes], concurrency: int,
              check: Callable[[int, Any], None] | None = None) -> list[tuple[int, Any]]:
    """POST every body in ``bodies`` over ``concurrency`` connections."""
    results: list[tuple[int, Any]] = []
    todo = iter(bodies)

    async def worker() -> None:
        conn = await Connection.open(port)
        try:
            for body in todo:
                status, payload = await conn.post(path, body)
                if check:
                    check(status, payload)
                results.append((status, payload))
        finally:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results
