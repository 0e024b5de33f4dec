"""byol: BYOL-family self-supervised pretraining on PyTorch Lightning."""

from .core import Method
from .export import export_backbone, load_backbone, load_preprocess
from .methods import BYOL, DINO, TJEPA, BarlowTwins, MoCoV3, SimSiam, VICReg
from .models import TimmBackbone

__version__ = "0.1.0"

__all__ = [
    "BYOL", "BarlowTwins", "DINO", "Method", "MoCoV3", "SimSiam", "TJEPA", "TimmBackbone", "VICReg", "__version__",
    "export_backbone", "load_backbone", "load_preprocess",
]
