"""Fixtures of the tabular tests: the shared real data sets, and one CPU thread per test."""

from pathlib import Path

import pytest
import torch
from threadpoolctl import threadpool_limits

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
CALIFORNIA_RTDL = SHARED_DATA / "california_housing" / "rtdl_split"
HOUSING_CSV = SHARED_DATA / "california_housing" / "handson_ml2" / "housing.csv"


@pytest.fixture(autouse=True)
def one_thread():
    """Small tensors run fastest on one thread, and far faster on a machine shared with other jobs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):  # scikit-learn's OpenMP
        yield
    torch.set_num_threads(threads)


@pytest.fixture
def california_rtdl() -> Path:
    if not (CALIFORNIA_RTDL / "info.json").is_file():
        pytest.skip(f"California Housing (rtdl split) not found at {CALIFORNIA_RTDL.resolve()}: "
                    "../shared/data is absent")
    return CALIFORNIA_RTDL


@pytest.fixture
def housing_csv() -> Path:
    if not HOUSING_CSV.is_file():
        pytest.skip(f"handson-ml2 housing.csv not found at {HOUSING_CSV.resolve()}: ../shared/data is absent")
    return HOUSING_CSV
