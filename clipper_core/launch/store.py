"""The Redis a cluster runs as its state store: durable, private, one description.

Every manager that starts Redis (Docker, Kubernetes, Nomad) runs it with
the flags of :class:`RedisServer`: append-only-file persistence synced
every second (a SIGKILL loses at most the last second; a restart on the
same data directory keeps every application, model, link and replica
count), no RDB snapshots besides, protected mode on, and a password.

The password never travels in argv: :meth:`RedisServer.command` is a
``sh -c`` wrapper that feeds ``requirepass`` to ``redis-server -`` on
standard input from the environment variable ``CLIPPER_STORE_PASSWORD``
(the same secret the frontends get, :data:`STORE_PASSWORD_ENV`), then
``exec``-s Redis, which stays the container's main process.
"""

from __future__ import annotations

import attrs

from ..secrets import STORE_PASSWORD_ENV

#: Where the data lives inside a Redis container (the image's volume).
REDIS_DATA_DIR = "/data"
REDIS_PORT = 6379

# $0 is redis-server; the here-document keeps the password out of argv and
# `exec` makes Redis the process the platform signals.
_SCRIPT = (f'if [ -n "${STORE_PASSWORD_ENV}" ]; then exec "$0" - "$@" <<EOF\n'
           f"requirepass ${STORE_PASSWORD_ENV}\nEOF\nfi\nexec \"$0\" \"$@\"")


@attrs.frozen(kw_only=True)
class RedisServer:
    """How a cluster's Redis runs.

    :param port: the port it listens on.
    :param data_dir: the directory of its append-only file (mount a volume there).
    :param bind: listen on this address only (None: Redis's default, every interface).
    :param fsync: ``appendfsync`` policy: ``everysec`` (default), ``always`` or ``no``.
    """

    port: int | str = REDIS_PORT
    data_dir: str = REDIS_DATA_DIR
    bind: str | None = None
    fsync: str = attrs.field(default="everysec",
                             validator=attrs.validators.in_(("everysec", "always", "no")))

    def args(self) -> list[str]:
        """``redis-server``'s arguments (never the password)."""
        out = ["--port", str(self.port), "--dir", self.data_dir, "--appendonly", "yes",
               "--appendfsync", self.fsync, "--save", "", "--protected-mode", "yes"]
        if self.bind:
            out += ["--bind", self.bind]
        return out

    def command(self, executable: str = "redis-server") -> list[str]:
        """The full command: a shell reads the password from the environment
        and execs ``executable`` with :meth:`args` (no password: Redis runs
        without one)."""
        return ["sh", "-c", _SCRIPT, executable, *self.args()]

    @staticmethod
    def config(password: str) -> str:
        """The configuration text :meth:`command` feeds Redis (for a manager
        that writes it to a 0600 file or a pipe itself)."""
        if not password or any(c.isspace() or c in "\"'" for c in password):
            raise ValueError("a Redis password must be non-empty, without spaces or quotes")
        return f"requirepass {password}\n"
