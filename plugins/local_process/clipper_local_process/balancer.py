"""A tiny round-robin TCP load balancer in front of several query frontends.

``python -m clipper_local_process.balancer --listen HOST:PORT --backend HOST:PORT
--backend HOST:PORT ...``

Each accepted connection is piped to the next backend in turn; a backend that
refuses the connection is skipped (the next one is tried), so one frontend
being restarted by its supervisor does not fail clients.  HTTP keep-alive
connections stay with the backend they were first sent to.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import sys

_CHUNK = 65536


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


class Balancer:
    """Accepts connections and pipes each to a backend, round-robin."""

    def __init__(self, backends: list[tuple[str, int]]) -> None:
        self.backends = backends
        self._next = itertools.cycle(range(len(backends)))

    async def _open_backend(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        last: OSError | None = None
        for _ in range(len(self.backends)):
            host, port = self.backends[next(self._next)]
            try:
                return await asyncio.wait_for(asyncio.open_connection(host, port), 5)
            except (OSError, asyncio.TimeoutError) as exc:
                last = OSError(str(exc))
        raise last or OSError("no backend")

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(_CHUNK):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - closing a broken socket
                pass

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            b_reader, b_writer = await self._open_backend()
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, b_writer), self._pipe(b_reader, writer))


async def serve(listen: tuple[str, int], backends: list[tuple[str, int]]) -> None:
    """Serve until SIGTERM/SIGINT."""
    balancer = Balancer(backends)
    server = await asyncio.start_server(balancer.handle, listen[0], listen[1],
                                        reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"balancer listening on {listen[0]}:{listen[1]} -> "
          + ", ".join(f"{h}:{p}" for h, p in backends), flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clipper_local_process.balancer",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True, type=_addr)
    parser.add_argument("--backend", action="append", required=True, type=_addr)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.listen, args.backend))
    return 0


if __name__ == "__main__":
    sys.exit(main())
