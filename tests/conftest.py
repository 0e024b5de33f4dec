from functools import partial

import lightning as L
import pytest
import torch
from torch.utils.data import Subset

from byol import BYOL, TimmBackbone
from byol.data import DataModule, Digits
from byol.views import GreyImageViews

TINY_RESNET = {"stem_type": "", "stem_width": 8, "avg_down": False, "channels": [8, 8, 16, 16]}


def tiny_byol(**kwargs) -> BYOL:
    """A small BYOL on 8x8 grey images: fast enough for many training steps on a CPU."""
    torch.manual_seed(0)
    backbone = kwargs.pop("backbone", None) or TimmBackbone("resnet10t", in_chans=1, cifar_stem=True,
                                                            model_kwargs=TINY_RESNET)
    defaults = dict(
        projector_hidden_dim=32, projection_dim=16, predictor_hidden_dim=32,
        views=GreyImageViews(size=8, crop_scale=(0.5, 1.0)), warmup_epochs=0, num_classes=10,
        optimizer=partial(torch.optim.SGD, lr=0.05, momentum=0.9, weight_decay=1e-4),
    )
    defaults.update(kwargs)
    return BYOL(backbone, **defaults)


def tiny_data(n: int = 64, batch_size: int = 16) -> DataModule:
    return DataModule(Subset(Digits(split="train", size=8), range(n)), batch_size=batch_size, num_workers=0)


def trainer(**kwargs) -> L.Trainer:
    defaults = dict(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, max_epochs=1,
    )
    defaults.update(kwargs)
    return L.Trainer(**defaults)


@pytest.fixture
def make_model():
    return tiny_byol


@pytest.fixture
def make_data():
    return tiny_data


@pytest.fixture
def make_trainer():
    return trainer
