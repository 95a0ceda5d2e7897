"""The rules every target meets whatever its area (no machine of their own)."""

from . import rules

__all__ = ["rules"]
