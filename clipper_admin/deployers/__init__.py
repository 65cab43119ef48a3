"""Clipper's ``clipper_admin.deployers``: ``from clipper_admin.deployers import python``."""
