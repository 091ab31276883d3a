"""The contract every registered detector honours, ours, PyOD's and third parties'.

A detector joins this suite by being registered: nothing here names a detector. The
checks themselves are the public kit :func:`pyod_ae_ext.testing.check_detector`.
"""
import numpy as np
import pytest
import torch

import pyod_ae_ext
from pyod_ae_ext.engine import AutoEncoderDetector, squared_error
from pyod_ae_ext.registry import get_registry
from pyod_ae_ext.testing import CHECKS, check_detector

from helpers import fast_detector

DETECTORS = list(get_registry().detectors)
# PyOD's ECOD and COPOD refit their empirical CDFs on the training rows plus the rows
# being scored, so a row's score depends on the batch; the default ensemble has ECOD.
BATCH_DEPENDENT = {"ecod", "copod", "ensemble"}


def test_every_shipped_family_is_registered():
    expected = {"ae", "toll", "iforest", "ecod", "copod", "knn", "lof", "pca", "ocsvm", "hbos"}
    assert expected <= set(DETECTORS)
    assert set(pyod_ae_ext.available_detectors()) == set(DETECTORS)


@pytest.mark.parametrize("name", DETECTORS)
def test_contract(name):
    check_detector(fast_detector(name), skip=["row_independence"] if name in BATCH_DEPENDENT else [])


def test_the_batch_dependent_baselines_really_are():
    """Keeps BATCH_DEPENDENT honest: drop a name from it when PyOD changes."""
    for name in BATCH_DEPENDENT:
        with pytest.raises(AssertionError, match="other rows"):
            check_detector(fast_detector(name), skip=[c for c in CHECKS if c != "row_independence"])


class _BatchDependent(AutoEncoderDetector):
    """Breaks the contract on purpose: each row is scored against its batch's mean."""

    def row_loss(self, net, x, target):
        return squared_error(net(x)[1], target)

    def row_score(self, net, x):
        return squared_error(net(x)[1], x) + (x - x.mean(dim=0)).pow(2).sum(dim=1)


class _Unseeded(_BatchDependent):
    """Breaks reproducibility on purpose: noise from an unseeded generator."""

    def row_score(self, net, x):
        return squared_error(net(x)[1], x) + torch.rand(x.shape[0], generator=torch.Generator().manual_seed(
            int(np.random.randint(1 << 30)))).to(x.device)


def test_the_kit_catches_a_broken_detector():
    with pytest.raises(AssertionError, match="a row's score does not depend on the other rows"):
        check_detector(_BatchDependent(epochs=2, random_state=0), skip=["save_load"])
    with pytest.raises(AssertionError, match="identical"):
        check_detector(_Unseeded(epochs=2, random_state=0), skip=["save_load"])
    with pytest.raises(ValueError, match="unknown check"):
        check_detector(_BatchDependent(epochs=2), skip=["no-such-check"])
    assert "row_independence" in CHECKS
