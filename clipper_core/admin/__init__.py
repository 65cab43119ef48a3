"""The admin domain: Clipper's management rules, their wire, their client.

- :mod:`~clipper_core.admin.wire`: one attrs value per ``/admin/*`` request
  and response, shared by ``ClipperConnection`` and the management frontend;
- :mod:`~clipper_core.admin.service`: :class:`AdminService`, the rules over a
  state store, called by the management frontend's handlers;
- :mod:`~clipper_core.admin.guards`: the cross-process lock for the rules
  that read before they write;
- :mod:`~clipper_core.admin.replicas`: the one replica merge (frontend
  records and the container manager's view);
- :mod:`~clipper_core.admin.client`: :class:`AdminClient`, the HTTP side
  ``ClipperConnection`` talks through;
- :mod:`~clipper_core.admin.replica_api`: ``ClipperConnection``'s replica and
  stop methods (a base class, to keep each module small);
- :mod:`~clipper_core.admin.fields`: JSON body fields and their errors;
- :mod:`~clipper_core.admin.local`: ``test_predict_function``'s check.

Import the submodules themselves; this package imports nothing, so that
``ClipperConnection`` does not load the plugin manager the service needs.
"""
