"""Methods: short compositions of the core, the losses, models and views."""

from .barlow_twins import BarlowTwins
from .byol import BYOL
from .dino import DINO
from .mocov3 import MoCoV3
from .simsiam import SimSiam
from .tjepa import TJEPA
from .vicreg import VICReg

__all__ = ["BYOL", "BarlowTwins", "DINO", "MoCoV3", "SimSiam", "TJEPA", "VICReg"]
