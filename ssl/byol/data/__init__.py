"""Datasets (deterministic decoding to fixed-size tensors) and datamodules."""

from .audio import FSDD, AudioFolder, AudioManifest
from .datamodule import DataModule
from .device_data import DeviceBatches
from .image_datasets import (
    CIFAR10, CIFAR100, MNIST, STL10, Digits, EncodedImages, FashionMNIST, ImageFolder, collate_images,
    decode_jpeg_batch,
)
from .table_rows import TableRows
from .tabular import RTDLSplitDataModule, SklearnTableDataModule, TableFileDataModule
from .tabular_preprocessing import TabularPreprocessing

__all__ = [
    "CIFAR10", "CIFAR100", "FSDD", "MNIST", "STL10", "AudioFolder", "AudioManifest", "DataModule", "DeviceBatches",
    "Digits", "EncodedImages", "FashionMNIST", "ImageFolder", "RTDLSplitDataModule", "SklearnTableDataModule",
    "TableFileDataModule", "TableRows", "TabularPreprocessing", "collate_images", "decode_jpeg_batch",
]
