"""A cluster's own certificate authority and server certificate, for HTTPS.

:func:`make_self_signed` writes into a directory a CA certificate
(``ca.pem``, give it to clients: ``ClipperConnection(ca_bundle=...)``,
``CLIPPER_CA_BUNDLE``), a server certificate signed by it for the given
host names and addresses (``cert.pem``) and the server's key (``key.pem``,
0600): the frontends serve them with ``--tls-cert``/``--tls-key``.  The
CA's own key is not kept, so nothing else can ever be signed with it.

Command line: ``python -m clipper_core.launch.tls DIR [HOST ...]``.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import sys
from collections.abc import Sequence

import attrs

from ..secrets import write_private

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")


@attrs.frozen(kw_only=True)
class TLSFiles:
    """Paths of a CA certificate, a server certificate it signed, and its key."""

    ca_cert: str
    cert: str
    key: str


def _name(common_name: str) -> object:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "clipper-core"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _alt_names(hosts: Sequence[str]) -> list[object]:
    from cryptography import x509

    out: list[object] = []
    for host in hosts:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            out.append(x509.DNSName(host))
    return out


def make_self_signed(directory: str | os.PathLike[str], hosts: Sequence[str] = DEFAULT_HOSTS,
                     *, days: int = 825) -> TLSFiles:
    """Make a CA and a server certificate for ``hosts`` in ``directory``
    (created 0700 if missing); return their paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    os.makedirs(directory, mode=0o700, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("clipper-core cluster CA")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)  # type: ignore[arg-type]
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(hosts[0] if hosts else "clipper"))  # type: ignore[arg-type]
            .issuer_name(ca_name).public_key(key.public_key())  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(_alt_names(hosts)), critical=False)  # type: ignore[arg-type]
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    files = TLSFiles(ca_cert=os.path.join(directory, "ca.pem"),
                     cert=os.path.join(directory, "cert.pem"),
                     key=os.path.join(directory, "key.pem"))
    write_private(files.key, key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    write_private(files.cert, cert.public_bytes(pem))
    write_private(files.ca_cert, ca.public_bytes(pem))
    return files


def main(argv: list[str] | None = None) -> int:
    """``python -m clipper_core.launch.tls DIR [HOST ...]``: print the three paths."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m clipper_core.launch.tls DIR [HOST ...]", file=sys.stderr)
        return 2
    files = make_self_signed(args[0], args[1:] or DEFAULT_HOSTS)
    print(f"ca_bundle={files.ca_cert}\ntls_cert={files.cert}\ntls_key={files.key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
