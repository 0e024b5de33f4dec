"""Encoders as plain ``nn.Module``s with a ``num_features`` attribute."""

from .audio_ntt import AudioNTT2020, AudioNTT2022
from .predictor import JEPAPredictor
from .tabular import TabularTransformer, TJEPAPredictor
from .timm_backbone import TimmBackbone

__all__ = ["AudioNTT2020", "AudioNTT2022", "JEPAPredictor", "TJEPAPredictor", "TabularTransformer", "TimmBackbone"]
