"""Clipper's frontends: the query REST API and the management REST API.

Each is a Starlette app factory plus a ``main()`` served by uvicorn:
``python -m clipper_frontends.query`` and ``python -m clipper_frontends.management``.
"""
