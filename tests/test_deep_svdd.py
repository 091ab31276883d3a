"""Tests of deep-svdd (Ruff et al. 2018): no biases, fixed centre, soft-boundary nu-property."""
import numpy as np
import pytest
import torch

from pyod_ae_ext.errors import ParameterError
from pyod_ae_ext.plugins.deep_svdd import DeepSVDD

# The paper's score: these tests check the method itself, without the latent-space kNN term.
PAPER = {"latent_knn_weight": 0.0, "n_members": 1}


def blob(n=300, d=5, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


@pytest.mark.parametrize("batch_norm", [False, True])
def test_no_bias_terms(batch_norm):
    det = DeepSVDD(**PAPER, epochs=2, batch_norm=batch_norm, random_state=0).fit(blob())
    for module in det.net_.modules():
        if isinstance(module, torch.nn.Linear):
            assert module.bias is None
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            assert not module.affine
    assert all(name.endswith("weight") for name, _ in det.net_.named_parameters())


def test_center_is_mean_of_initial_encodings_and_fixed():
    X = blob()
    untrained = DeepSVDD(**PAPER, epochs=0, random_state=1).fit(X)
    with torch.no_grad():
        mean = untrained.net_.encoder(untrained._to_tensor(X)).double().mean(0).cpu().numpy()
    expected = np.where(np.abs(mean) < 0.1, np.where(mean < 0, -0.1, 0.1), mean)
    np.testing.assert_allclose(untrained.center_, expected, rtol=1e-5, atol=1e-6)
    trained = DeepSVDD(**PAPER, epochs=20, random_state=1).fit(X)
    np.testing.assert_array_equal(trained.center_, untrained.center_)  # c is never trained
    assert "center" not in dict(trained.net_.named_parameters())
    assert "center" in dict(trained.net_.named_buffers())


def test_one_class_training_pulls_data_to_center():
    X = blob()
    before = DeepSVDD(**PAPER, epochs=0, random_state=0).fit(X).decision_scores_.mean()
    after = DeepSVDD(**PAPER, epochs=30, random_state=0).fit(X).decision_scores_.mean()
    assert after < 0.5 * before


def test_one_class_score_is_squared_distance():
    X = blob()
    det = DeepSVDD(**PAPER, epochs=3, random_state=0).fit(X)
    with torch.no_grad():
        z = det.net_.encoder(det._to_tensor(X)).double().cpu().numpy()
    np.testing.assert_allclose(det.decision_function(X), ((z - det.center_) ** 2).sum(1), rtol=1e-5)


@pytest.mark.parametrize("nu", [0.05, 0.2])
def test_soft_boundary_nu_property(nu):
    X = blob(400)
    det = DeepSVDD(**PAPER, objective="soft-boundary", nu=nu, epochs=20, warm_up_epochs=5, random_state=0).fit(X)
    assert det.radius_ > 0
    outside = (det.decision_scores_ > 0).mean()
    assert abs(outside - nu) <= 0.01
    with torch.no_grad():
        z = det.net_.encoder(det._to_tensor(X)).double().cpu().numpy()
    distance = ((z - det.center_) ** 2).sum(1)
    np.testing.assert_allclose(det.decision_function(X), distance - det.radius_ ** 2, rtol=1e-4, atol=1e-6)


def test_soft_boundary_radius_solved_even_if_training_ends_in_warm_up():
    det = DeepSVDD(**PAPER, objective="soft-boundary", nu=0.1, epochs=3, warm_up_epochs=10, random_state=0).fit(blob())
    assert det.radius_ > 0
    assert abs((det.decision_scores_ > 0).mean() - 0.1) <= 0.01


def test_soft_boundary_with_validation_and_pretraining():
    det = DeepSVDD(**PAPER, objective="soft-boundary", epochs=15, warm_up_epochs=3, validation_fraction=0.2,
                   pretrain_epochs=3, random_state=0).fit(blob())
    assert len(det.history_["pretrain_loss"]) == 3
    assert det.radius_ > 0 and np.isfinite(det.decision_scores_).all()


def test_detects_shifted_points():
    det = DeepSVDD(**PAPER, random_state=0).fit(blob(400))
    inliers = blob(200, seed=9)
    assert det.decision_function(inliers + 4).mean() > det.decision_function(inliers).mean()


@pytest.mark.parametrize("params", [dict(objective="hard"), dict(nu=0), dict(eps=0), dict(warm_up_epochs=-1),
                                    dict(pretrain_epochs=1.5), dict(activation="tanh"),
                                    dict(activation="sigmoid")])
def test_bad_params(params):
    with pytest.raises(ParameterError):
        DeepSVDD(**PAPER, **params).fit(blob(20))
