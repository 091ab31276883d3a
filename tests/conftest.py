import numpy as np
import pytest
from click.testing import CliRunner


@pytest.fixture
def blobs():
    """200 training rows and 60 test rows of 5 correlated features, with 10 shifted test rows."""
    rng = np.random.RandomState(42)
    mixing = rng.normal(size=(5, 5))
    train = rng.normal(size=(200, 5)) @ mixing
    test = rng.normal(size=(60, 5)) @ mixing
    test[:10] += 6.0
    return train, test


@pytest.fixture
def rows():
    """120 rows of 4 standard-normal features, the first 6 shifted by 5."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4))
    X[:6] += 5.0
    return X


@pytest.fixture
def runner():
    """click's in-process runner for `adscore` commands."""
    return CliRunner()
