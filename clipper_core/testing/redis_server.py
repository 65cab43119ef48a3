"""A throw-away ``redis-server`` for the tests of backends that need Redis."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest


class RedisServer:
    """A throw-away ``redis-server`` on a free port, persisting to ``directory``
    with an append-only file, so it can be stopped and restarted with its data.

    ``tls=True`` serves TLS only, with a certificate for 127.0.0.1 signed by a
    throw-away CA (``ca_file``; made with the ``openssl`` command);
    ``password`` sets ``requirepass``.
    """

    def __init__(self, directory: Path, port: int | None = None, *, tls: bool = False,
                 password: str | None = None) -> None:
        self.directory = directory
        self.port = port or _free_port()
        self.tls = tls
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = directory / "redis.log"
        self.ca_file = directory / "ca.pem"

    @property
    def url(self) -> str:
        """``redis://`` (or ``rediss://`` with the CA) URL of database 0."""
        auth = f":{self.password}@" if self.password else ""
        if self.tls:
            return (f"rediss://{auth}127.0.0.1:{self.port}/0"
                    f"?ssl_ca_certs={urllib.parse.quote(str(self.ca_file))}")
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def _make_certificates(self) -> list[str]:
        exe = shutil.which("openssl")
        if exe is None:
            pytest.fail("the openssl command is needed for a TLS redis-server")
        d = self.directory
        if not (d / "server.pem").exists():
            (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
            ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
            for cmd in (
                ["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                 "-subj", "/CN=clipper-test-ca"],
                ["req", *ec, "-keyout", "server.key", "-out", "server.csr",
                 "-subj", "/CN=127.0.0.1"],
                ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext"],
            ):
                subprocess.run([exe, *cmd], cwd=d, check=True, capture_output=True)
        return ["--port", "0", "--tls-port", str(self.port),
                "--tls-cert-file", str(d / "server.pem"), "--tls-key-file", str(d / "server.key"),
                "--tls-ca-cert-file", str(d / "ca.pem"), "--tls-auth-clients", "no"]

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and return when it accepts connections."""
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server is not installed (apt-get install redis-server)")
        self.directory.mkdir(parents=True, exist_ok=True)
        listen = self._make_certificates() if self.tls else ["--port", str(self.port)]
        auth = ["--requirepass", self.password] if self.password else []
        self.proc = subprocess.Popen(
            [exe, *listen, *auth, "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--dir", str(self.directory), "--logfile", str(self.log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: "
                                   f"{self.log.read_text() if self.log.exists() else ''}")
            if self._answers():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not start in {timeout}s")

    def _answers(self) -> bool:
        """True when the server replies to PING (an auth error is a reply too)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw:
                conn: socket.socket = raw
                if self.tls:
                    ctx = ssl.create_default_context(cafile=str(self.ca_file))
                    conn = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
                conn.sendall(b"PING\r\n")
                reply = conn.recv(64)
                return reply.startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def stop(self) -> None:
        """Shut down gracefully (the AOF is flushed), killing it if it hangs."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
