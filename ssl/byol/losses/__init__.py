"""The objectives of the family, pure functions of tensors that reduce over the global batch where they must."""

from .barlow_twins import barlow_twins_loss, cross_correlation, mixed_sample_regularizer
from .byol import normalized_mse, symmetric_byol_loss
from .cross_similarity import CrossCosineLoss, CrossSigmoidLoss, cross_similarity_loss
from .dino import (
    DINOCentering, SinkhornKnoppCentering, TeacherCentering, TeacherTemperature, dino_loss, ibot_patch_loss, koleo_loss,
)
from .infonce import infonce, symmetric_infonce
from .jepa import jepa_loss
from .simsiam import negative_cosine, symmetric_negative_cosine
from .vicreg import VICRegTerms, vicreg_loss, vicreg_terms

__all__ = [
    "CrossCosineLoss", "CrossSigmoidLoss", "DINOCentering", "SinkhornKnoppCentering", "TeacherCentering",
    "TeacherTemperature", "VICRegTerms", "barlow_twins_loss", "cross_correlation", "cross_similarity_loss",
    "dino_loss", "ibot_patch_loss", "infonce", "jepa_loss", "koleo_loss", "mixed_sample_regularizer", "negative_cosine",
    "normalized_mse", "symmetric_byol_loss", "symmetric_infonce", "symmetric_negative_cosine", "vicreg_loss",
    "vicreg_terms",
]
