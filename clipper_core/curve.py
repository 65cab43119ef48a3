"""CURVE keys of a cluster's RPC port: who may serve which model.

Every cluster has one server key pair (the query frontends' RPC sockets) and
a replica seed.  The key pair of the replicas of a model version is derived
from the seed, the model name and the version (:meth:`ClusterKeys.replica`),
so a frontend that holds the seed knows which model version each client key
may serve without any list of keys to distribute, and a replica holds only
its own key pair: it cannot pass for another model.

Who gets what (:mod:`clipper_core.launch` carries them as secrets):

- query frontends: ``CLIPPER_RPC_SERVER_SECRET`` and ``CLIPPER_RPC_REPLICA_SEED``
  (or ``--rpc-keys DIR``, a directory holding both as 0600 files);
- replicas: ``CLIPPER_RPC_SERVER_KEY`` (the server's public key, not a
  secret) and ``CLIPPER_RPC_CLIENT_SECRET`` (their model version's secret key).

Each secret variable may be given as ``<NAME>_FILE`` naming a file instead.
Keys are Z85 text (40 characters), the form ZeroMQ's CURVE options take.
``CLIPPER_RPC_AUTH=none`` turns CURVE off (Clipper's plain RPC v3).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs
import zmq
from zmq.utils import z85

#: ``curve`` (the default) or ``none``, for frontends, replicas and managers.
RPC_AUTH_ENV = "CLIPPER_RPC_AUTH"
RPC_AUTH_CURVE = "curve"
RPC_AUTH_NONE = "none"
RPC_AUTH_MODES = (RPC_AUTH_CURVE, RPC_AUTH_NONE)
#: The frontend's secret key and the replica seed.
SERVER_SECRET_ENV = "CLIPPER_RPC_SERVER_SECRET"
REPLICA_SEED_ENV = "CLIPPER_RPC_REPLICA_SEED"
#: A directory holding ``server_secret`` and ``replica_seed`` (``--rpc-keys``).
KEYS_DIR_ENV = "CLIPPER_RPC_KEYS_DIR"
#: What a replica reads: the server's public key and its own secret key.
SERVER_KEY_ENV = "CLIPPER_RPC_SERVER_KEY"
CLIENT_SECRET_ENV = "CLIPPER_RPC_CLIENT_SECRET"

SERVER_SECRET_FILE = "server_secret"
REPLICA_SEED_FILE = "replica_seed"
_DERIVE_CONTEXT = b"clipper-rpc-replica-v1"


class RPCKeyError(ValueError):
    """Keys that are missing, malformed or do not match."""


def rpc_auth_mode(value: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """``value``, else ``$CLIPPER_RPC_AUTH``, else ``curve``; ValueError if unknown."""
    environ = os.environ if environ is None else environ
    mode = (value or environ.get(RPC_AUTH_ENV) or RPC_AUTH_CURVE).strip().lower()
    if mode not in RPC_AUTH_MODES:
        raise ValueError(f"RPC auth must be one of {', '.join(RPC_AUTH_MODES)}, got {mode!r}")
    return mode


def curve_available() -> bool:
    """Whether this libzmq was built with CURVE (libsodium)."""
    return bool(zmq.has("curve"))


def _check_z85(what: str, key: str) -> str:
    key = key.strip()
    try:
        raw = z85.decode(key.encode("ascii"))
    except (ValueError, UnicodeEncodeError, KeyError, IndexError):
        raise RPCKeyError(f"{what} is not a Z85 key") from None
    if len(raw) != 32:
        raise RPCKeyError(f"{what} must be a 40-character Z85 key (32 bytes)")
    return key


@attrs.frozen
class KeyPair:
    """A CURVE key pair in Z85 text; the secret half is never shown."""

    public: str
    secret: str = attrs.field(repr=False)

    @classmethod
    def generate(cls) -> KeyPair:
        public, secret = zmq.curve_keypair()
        return cls(public.decode("ascii"), secret.decode("ascii"))

    @classmethod
    def from_secret(cls, secret: str) -> KeyPair:
        """The pair whose secret key is ``secret`` (its public key computed)."""
        secret = _check_z85("the secret key", secret)
        return cls(zmq.curve_public(secret.encode("ascii")).decode("ascii"), secret)


@attrs.frozen
class ClusterKeys:
    """A cluster's server key pair and replica seed (what frontends hold)."""

    server: KeyPair
    seed: str = attrs.field(repr=False)

    @classmethod
    def generate(cls) -> ClusterKeys:
        return cls(KeyPair.generate(), secrets.token_hex(32))

    def replica(self, model_name: str, model_version: str) -> KeyPair:
        """The key pair of the replicas of ``model_name:model_version``."""
        message = b"\0".join((_DERIVE_CONTEXT, model_name.encode(), model_version.encode()))
        raw = hmac.new(self.seed.encode(), message, hashlib.sha256).digest()
        return KeyPair.from_secret(z85.encode(raw).decode("ascii"))

    def replica_env(self, model_name: str, model_version: str) -> dict[str, str]:
        """The environment a replica of ``model_name:model_version`` needs."""
        return {SERVER_KEY_ENV: self.server.public,
                CLIENT_SECRET_ENV: self.replica(model_name, model_version).secret}

    # -- where frontends find them ---------------------------------------------
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClusterKeys | None:
        """The keys given by ``CLIPPER_RPC_SERVER_SECRET`` and
        ``CLIPPER_RPC_REPLICA_SEED`` (or their ``_FILE``); None if neither is set."""
        secret = read_secret(SERVER_SECRET_ENV, environ)
        seed = read_secret(REPLICA_SEED_ENV, environ)
        if secret is None and seed is None:
            return None
        if secret is None or seed is None:
            missing = SERVER_SECRET_ENV if secret is None else REPLICA_SEED_ENV
            raise RPCKeyError(f"{missing} is not set (the RPC keys come in pairs)")
        return cls(KeyPair.from_secret(secret), seed)

    @classmethod
    def from_dir(cls, directory: str | os.PathLike[str], create: bool = True) -> ClusterKeys:
        """The keys kept in ``directory`` (``server_secret``, ``replica_seed``);
        with ``create``, generated and written (0600) when it holds none."""
        root = Path(directory)
        secret_path, seed_path = root / SERVER_SECRET_FILE, root / REPLICA_SEED_FILE
        if not secret_path.exists() and not seed_path.exists():
            if not create:
                raise RPCKeyError(f"no RPC keys in {root}")
            keys = cls.generate()
            keys.save(root)
            return keys
        try:
            secret = secret_path.read_text().strip()
            seed = seed_path.read_text().strip()
        except OSError as exc:
            raise RPCKeyError(f"cannot read the RPC keys in {root}: {exc}") from exc
        if not seed:
            raise RPCKeyError(f"{seed_path} is empty")
        return cls(KeyPair.from_secret(secret), seed)

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write ``server_secret`` and ``replica_seed`` into ``directory``
        (made 0700), each readable by its owner only."""
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private(root / SERVER_SECRET_FILE, self.server.secret)
        write_private(root / REPLICA_SEED_FILE, self.seed)


class ReplicaKeyBook:
    """Which model version each client key may serve, for the ZAP handler.

    Learns the derived public keys of the model versions it is told of
    (:meth:`learn`, with the configuration's model versions); a key it does
    not know is refused.
    """

    def __init__(self, keys: ClusterKeys) -> None:
        self.keys = keys
        self._by_version: dict[tuple[str, str], str] = {}
        self._by_key: dict[str, tuple[str, str]] = {}

    def learn(self, versions: Iterable[tuple[str, str]]) -> None:
        """Know the keys of ``versions`` (name, version) from now on; forget
        the keys of versions no longer listed."""
        wanted = set(versions)
        for gone in set(self._by_version) - wanted:
            self._by_key.pop(self._by_version.pop(gone), None)
        for version in wanted - set(self._by_version):
            public = self.keys.replica(*version).public
            self._by_version[version] = public
            self._by_key[public] = version

    def lookup(self, public_key: str) -> tuple[str, str] | None:
        """The (model name, version) ``public_key`` may serve, or None."""
        return self._by_key.get(public_key)


def binding(model_name: str, model_version: str) -> str:
    """The ZAP User-Id of a key bound to a model version (``name:version``;
    validated names hold no ``:``)."""
    return f"{model_name}:{model_version}"


def read_secret(env: str, environ: Mapping[str, str] | None = None) -> str | None:
    """``$env``, else the content of the file ``$<env>_FILE`` names; None if
    neither is set.  OSError (as RPCKeyError) when the named file cannot be read."""
    environ = os.environ if environ is None else environ
    value = environ.get(env, "").strip()
    if value:
        return value
    path = environ.get(f"{env}_FILE")
    if not path:
        return None
    try:
        return Path(path).read_text().strip() or None
    except OSError as exc:
        raise RPCKeyError(f"cannot read {env}_FILE {path}: {exc}") from exc


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` created 0600 (never readable by others)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


@attrs.frozen
class ReplicaKeys:
    """What a replica holds: the server's public key and its own key pair."""

    server_public: str
    client: KeyPair

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ReplicaKeys | None:
        """The keys of ``CLIPPER_RPC_SERVER_KEY`` and ``CLIPPER_RPC_CLIENT_SECRET``
        (or their ``_FILE``); None if neither is set."""
        server = read_secret(SERVER_KEY_ENV, environ)
        secret = read_secret(CLIENT_SECRET_ENV, environ)
        if server is None and secret is None:
            return None
        if server is None or secret is None:
            missing = SERVER_KEY_ENV if server is None else CLIENT_SECRET_ENV
            raise RPCKeyError(f"{missing} is not set (the RPC keys come in pairs)")
        return cls(_check_z85(SERVER_KEY_ENV, server), KeyPair.from_secret(secret))

    def apply(self, sock: zmq.Socket[bytes]) -> None:
        """Make ``sock`` a CURVE client of the server (before it connects)."""
        sock.setsockopt(zmq.CURVE_SERVERKEY, self.server_public.encode("ascii"))
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.client.public.encode("ascii"))
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.client.secret.encode("ascii"))
