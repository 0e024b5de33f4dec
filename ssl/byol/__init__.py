"""byol: BYOL-family self-supervised pretraining on PyTorch Lightning."""

from .core import OnlineTargetModule
from .methods import BYOL
from .models import TimmBackbone

__version__ = "0.1.0"

__all__ = ["BYOL", "OnlineTargetModule", "TimmBackbone", "__version__"]
