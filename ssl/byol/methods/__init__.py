"""Methods: short compositions of the core, models and views."""

from .byol import BYOL

__all__ = ["BYOL"]
