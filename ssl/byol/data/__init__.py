"""Datasets (deterministic decoding to fixed-size tensors) and the datamodule."""

from .datamodule import DataModule
from .image_datasets import CIFAR10, CIFAR100, MNIST, STL10, Digits, FashionMNIST, ImageFolder

__all__ = ["CIFAR10", "CIFAR100", "MNIST", "STL10", "DataModule", "Digits", "FashionMNIST", "ImageFolder"]
