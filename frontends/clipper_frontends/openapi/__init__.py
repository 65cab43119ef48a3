"""OpenAPI 3.1 documents of the two REST APIs and the page that renders them.

- :mod:`.common`: the pieces both documents share (the error body, JSON
  content, the document's frame);
- :mod:`.admin`: the management API's document, its request schemas derived
  from :mod:`clipper_core.admin.wire` so the two cannot drift;
- :mod:`.docs`: ``GET /docs``, one self-contained HTML page that fetches
  ``/openapi.json`` and renders it (no CDN, no build step).

The query API's document is :mod:`clipper_frontends.query.openapi`.
"""

from .docs import docs_page

__all__ = ["docs_page"]
