"""Methods: short compositions of the core, models and views."""

from .byol import BYOL
from .tjepa import TJEPA

__all__ = ["BYOL", "TJEPA"]
