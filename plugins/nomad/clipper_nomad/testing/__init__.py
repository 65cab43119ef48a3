"""Test support for clipper-nomad: a fake Nomad agent (server + one client
node) speaking Nomad's HTTP API that runs allocations as local processes
(:class:`FakeNomad`), and what an image means locally (:class:`ImageSpec`,
:class:`ImageTable`).

Test support, not product code: nothing in the plugin imports it.

No Nomad agent can run in CI, so clipper-nomad is tested against this.  It
serves the real paths, status codes and JSON shapes python-nomad and the
plugin use, and it *really runs* every allocation's tasks as local processes:

- ``POST /v1/jobs`` and ``POST /v1/job/<id>`` register a job (400 with
  Nomad-style text when the job breaks the JSON job specification, checked
  with :mod:`clipper_nomad.jobspec`), ``GET``/``DELETE /v1/job/<id>``
  (``?purge=true``), ``GET``/``POST /v1/job/<id>/scale``,
  ``GET /v1/job/<id>/allocations``, ``GET /v1/jobs?prefix=&meta=``,
  ``GET /v1/allocations``, ``GET /v1/allocation/<id>``,
  ``GET /v1/client/fs/logs/<alloc>?task=&type=&plain=``,
  ``GET /v1/service/<name>``, ``GET /v1/services``, ``GET /v1/status/leader``,
  ``GET /v1/agent/self``.  Every answer has ``X-Nomad-Index``; ``GET``s with
  ``?index=N&wait=5s`` are blocking queries.  With ``token=`` set, requests
  without that ``X-Nomad-Token`` get 403 "Permission denied".
- Drivers: ``raw_exec`` runs ``command`` + ``args``; ``docker`` looks the image
  up in the ``images`` table the test gives (``image -> FakeImage(argv,
  model_dir)``): ``argv`` stands for the image's entrypoint (``config.args``
  are appended; a ``config.command`` replaces it, with ``python`` meaning this
  interpreter), and the image's ``/model`` is ``model_dir``.  An image not in
  the table fails like a failed pull ("Driver Failure").
- Each allocation gets its own ports (dynamic ports from the free range,
  reserved ports as given), exported as ``NOMAD_PORT_<label>``,
  ``NOMAD_IP_<label>``, ``NOMAD_ADDR_<label>`` ...; ``${NOMAD_*}`` in args and
  env are interpolated; templates using ``nomadService`` ranges and ``env``
  are rendered (``Envvars`` templates become environment variables) and
  re-rendered while the task runs: a change restarts it (``change_mode``
  ``restart``, the default), outside the restart policy's budget.
- Restart policies (attempts in interval, delay, mode fail/delay) with Nomad's
  task events; group services with provider ``nomad`` are registered with the
  allocation's address while it runs; http/tcp checks are run and, for jobs
  with an ``Update`` block, set ``DeploymentStatus.Healthy`` after
  ``MinHealthyTime`` (``HealthCheck`` ``checks`` or ``task_states``).

Not modelled: evaluations and deployments as objects, rescheduling of failed
allocations, several nodes, Consul, template change modes other than restart.
Everything runs on one "node" at ``127.0.0.1``.

The modules, from the wire inwards:

- ``server``: :class:`FakeNomad`, which puts the parts together.
- ``routes``: HTTP routing, errors, ``X-Nomad-Index``, blocking queries, ACL.
- ``scheduler``: job registration, scaling, deregistration and placement.
- ``state``: jobs, allocations, service registrations and the index.
- ``allocations``: allocations, their tasks' runs and events (wire shapes).
- ``tasks``: a task's process, templates and restart policy; ``drivers``:
  ``raw_exec`` and ``docker``, the task environment; ``templates``:
  ``${...}`` interpolation and the consul-template subset.
- ``health``: deployment health (checks or task states).
"""

from __future__ import annotations

from clipper_core.testing.process_pods import ImageSpec, ImageTable

from .server import FakeNomad

__all__ = ["FakeNomad", "ImageSpec", "ImageTable"]
