"""Clipper's ``clipper_admin.exceptions``: the errors users catch."""

from clipper_core.errors import ClipperException, UnconnectedException

__all__ = ["ClipperException", "UnconnectedException"]
