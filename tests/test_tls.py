"""HTTPS end to end with a CA the test makes (trustme): the management
frontend serves TLS and requires its token; AdminClient verifies against the
CA bundle; no token is 401; an untrusted certificate is refused.  The query
frontend's built-in server serves TLS too; the self-signed helper's CA works."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import free_port

from clipper_core.admin.client import AdminClient
from clipper_core.errors import AuthenticationError, ClipperException
from clipper_core.launch.tls import make_self_signed

trustme = pytest.importorskip("trustme")


def _serve(argv: list[str], env: dict[str, str], url: str, ca: str,
           log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", *argv], env={**os.environ, **env},
                                stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, verify=__import__("ssl").create_default_context(cafile=ca),
                      timeout=1)
            return proc
        except httpx.HTTPError:
            if proc.poll() is not None:
                raise RuntimeError(log.read_text()) from None
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(log.read_text())


def test_management_https_with_token_end_to_end(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    other = trustme.CA()
    other.cert_pem.write_to_path(str(tmp_path / "other.pem"))
    port, token = free_port(), "tok-" + os.urandom(8).hex()
    pem = str(tmp_path / "server.pem")
    proc = _serve(["clipper_frontends.management", "--store", f"sqlite:///{tmp_path}/s.db",
                   "--port", str(port), "--tls-cert", pem, "--tls-key", pem,
                   "--backup", str(tmp_path / "backup.json")],
                  {"CLIPPER_ADMIN_TOKEN": token}, f"https://127.0.0.1:{port}/healthz",
                  str(tmp_path / "ca.pem"), tmp_path / "mgmt.log")
    try:
        good = AdminClient(f"127.0.0.1:{port}", token=token, verify=str(tmp_path / "ca.pem"))
        assert good.base_url.startswith("https://")
        assert good.ping()["status"] == "ok"
        good.close()
        anonymous = AdminClient(f"127.0.0.1:{port}", verify=str(tmp_path / "ca.pem"))
        with pytest.raises(AuthenticationError):
            anonymous.ping()
        anonymous.close()
        untrusted = AdminClient(f"127.0.0.1:{port}", token=token,
                                verify=str(tmp_path / "other.pem"))
        with pytest.raises(ClipperException, match="(?i)certificate"):
            untrusted.ping()
        untrusted.close()
        with pytest.raises(httpx.HTTPError):  # plain HTTP is not served
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    finally:
        proc.terminate()
        proc.wait(10)
    assert token not in (tmp_path / "mgmt.log").read_text()


def test_query_frontend_https_with_the_self_signed_helper(tmp_path: Path) -> None:
    files = make_self_signed(tmp_path / "tls", ["127.0.0.1", "localhost"])
    assert oct(os.stat(files.key).st_mode & 0o777) == "0o600"
    port, rpc = free_port(), free_port()
    proc = _serve(["clipper_frontends.query", "--port", str(port), "--host", "127.0.0.1",
                   "--rpc-host", "127.0.0.1", "--rpc-port", str(rpc), "--rpc-auth", "none",
                   "--tls-cert", files.cert, "--tls-key", files.key],
                  {"CLIPPER_STORE_URL": f"sqlite:///{tmp_path}/q.db"},
                  f"https://127.0.0.1:{port}/healthz", files.ca_cert, tmp_path / "query.log")
    try:
        import ssl

        resp = httpx.get(f"https://127.0.0.1:{port}/metrics",
                         verify=ssl.create_default_context(cafile=files.ca_cert), timeout=5)
        assert resp.status_code == 200
        assert resp.json()["store"]["url"].startswith("sqlite:///")
    finally:
        proc.terminate()
        proc.wait(10)
