"""What every method shares: the base module, EMA teachers, schedules, heads, monitors. Knows no modality."""

from .base import Method, StepOutput
from .ema import ema_update, make_target
from .heads import BYOLMLP, MLP, BYOLPredictionHead, BYOLProjectionHead, DINOHead, Encoder, WeightNormLinear
from .monitor import OnlineLinearProbe, embedding_std, rankme
from .optim import param_groups
from .schedules import Constant, ConstantTau, CosineTau, LinearTau, LRSchedule, TauSchedule, WarmupCosine, warmup_cosine
from .teacher import EMATeacher

__all__ = [
    "BYOLMLP", "BYOLPredictionHead", "BYOLProjectionHead", "Constant", "ConstantTau", "CosineTau", "DINOHead", "EMATeacher", "Encoder",
    "LinearTau", "LRSchedule", "MLP", "Method", "OnlineLinearProbe", "StepOutput", "TauSchedule", "WarmupCosine", "WeightNormLinear", "ema_update",
    "embedding_std", "make_target", "param_groups", "rankme", "warmup_cosine",
]
