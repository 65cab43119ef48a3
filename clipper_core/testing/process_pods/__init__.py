"""Run a pod's container (or a Nomad task) as a local process.

The fakes of the Kubernetes and Nomad APIs (``clipper_k8s.testing``, ``clipper_nomad.testing``)
share this package for the part that is the same whatever the orchestrator:
turning "run image X with command C, args A and env E" into a supervised
local process.  It is test support, not product code.

Public API (keep it stable, both fakes use it), by module:

- ``images``: :class:`ImageSpec`, :class:`ImageTable`: what an image means
  locally.  A test maps each image name to an entrypoint and, for model
  images, a local model directory (``CLIPPER_MODEL_PATH`` is rewritten to
  it).  An image not in the table cannot be "pulled".
- ``commands``: :func:`local_argv` (``python``/``python3`` ->
  ``sys.executable``); :func:`expand_vars` (Kubernetes ``$(VAR)`` expansion
  in command and args); :func:`rewrite_ports` (give a process its own local
  ports: the value after any ``--...port`` flag (``--port 1337``,
  ``--rpc-port=7000``) that names a declared port is replaced by the local
  port allocated for it); :func:`rewrite_port_env` (the same for ``*PORT``
  environment variables).
- ``network``: :func:`allocate_port` (a free local port never handed out
  twice by this process, so two fake pods never race for the same one);
  :func:`http_probe`, :func:`tcp_probe` (health checks against 127.0.0.1).
- ``containers``: :class:`ContainerProcess`: one container with a restart
  policy, restart count, back-off, a log file per run (the previous run's
  log is kept), and a state (:class:`ProcessState`: ``waiting``/``running``/
  ``terminated``) with reason and exit code; :func:`die_with_parent`, the
  ``preexec_fn`` that ties a child to the thread that spawned it.
"""

from __future__ import annotations

from .commands import expand_vars, local_argv, rewrite_port_env, rewrite_ports
from .containers import ContainerProcess, ProcessState, die_with_parent
from .images import MODEL_RUNTIME, ImageSpec, ImageTable
from .network import allocate_port, http_probe, tcp_probe

__all__ = [
    "MODEL_RUNTIME", "ContainerProcess", "ImageSpec", "ImageTable", "ProcessState",
    "allocate_port", "die_with_parent", "expand_vars", "http_probe", "local_argv",
    "rewrite_port_env", "rewrite_ports", "tcp_probe",
]
