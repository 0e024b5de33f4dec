"""The online/target machinery shared by every method. Knows no modality."""

from .base import OnlineTargetModule
from .ema import ema_update, make_target
from .heads import BYOLMLP, BYOLPredictionHead, BYOLProjectionHead
from .monitor import OnlineLinearProbe, embedding_std, rankme
from .optim import param_groups
from .schedules import ConstantTau, CosineTau, LinearTau, TauSchedule, WarmupCosine, warmup_cosine

__all__ = [
    "BYOLMLP", "BYOLPredictionHead", "BYOLProjectionHead", "ConstantTau", "CosineTau", "LinearTau",
    "OnlineLinearProbe", "OnlineTargetModule", "TauSchedule", "WarmupCosine", "ema_update", "embedding_std",
    "make_target", "param_groups", "rankme", "warmup_cosine",
]
