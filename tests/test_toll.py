"""Toll's defining properties (Ghafourian et al. 2024)."""
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import pyod_ae_ext
from pyod_ae_ext.plugins.toll import Toll

# The paper's score: these tests check the method itself, without the latent-space kNN term.
PAPER = {"latent_knn_weight": 0.0, "n_members": 1}


def _paper_fig2_data(seed=0):
    """Normal data from N(0, diag(4, 1)); anomalies far out along the first principal axis."""
    rng = np.random.RandomState(seed)
    train = rng.normal(size=(1500, 2)) * [2.0, 1.0]
    normal = rng.normal(size=(300, 2)) * [2.0, 1.0]
    anomalies = np.column_stack([rng.choice([-1, 1], 60) * rng.uniform(7, 10, 60), rng.normal(0, 0.3, 60)])
    test = np.vstack([normal, anomalies])
    labels = np.r_[np.zeros(len(normal)), np.ones(len(anomalies))]
    return train, test, labels


LINEAR_1D = dict(**PAPER, hidden_dims=(), latent_dim=1, activation="identity", standardize=False, epochs=60,
                 batch_size=64, lr=1e-2, random_state=0)


def test_fig2_toll_catches_anomalies_along_the_principal_axis_that_the_ae_misses():
    train, test, labels = _paper_fig2_data()
    ae = pyod_ae_ext.make_detector("ae", **LINEAR_1D).fit(train)
    toll = pyod_ae_ext.make_detector("toll", lam=3.0, **LINEAR_1D).fit(train)
    auc_ae = roc_auc_score(labels, ae.decision_function(test))
    auc_toll = roc_auc_score(labels, toll.decision_function(test))
    # The 1-D autoencoder keeps the first principal axis, so points far along it are
    # reconstructed almost perfectly; only the latent norm gives them away.
    assert auc_ae < 0.5
    assert auc_toll > 0.9
    assert auc_toll - auc_ae > 0.5


def _mean_latent_norm(detector, X):
    Xs = detector._to_tensor(X)
    with torch.inference_mode():
        z, _ = detector.net_.eval()(Xs)
    return z.pow(2).sum(1).mean().item()


def test_penalty_shrinks_the_latent_norm_monotonically(blobs):
    train, _ = blobs
    common = dict(epochs=30, random_state=0, latent_dim=3)
    norms = [_mean_latent_norm(Toll(**PAPER, lam=lam, **common).fit(train), train)
             for lam in (0.0, 0.1, 1.0, 10.0)]
    assert all(a > b for a, b in zip(norms, norms[1:])), norms


def test_score_is_reconstruction_error_plus_weighted_latent_norm(blobs):
    train, test = blobs
    for norm in ("squared", "l2"):
        toll = Toll(**PAPER, lam=0.7, norm=norm, epochs=5, random_state=1).fit(train)
        Xs = toll._to_tensor(test)
        with torch.inference_mode():
            z, recon = toll.net_.eval()(Xs)
        latent = z.pow(2).sum(1)
        latent = latent if norm == "squared" else latent.sqrt()
        expected = (recon - Xs).pow(2).sum(1) + 0.7 * latent
        np.testing.assert_allclose(toll.decision_function(test), expected.double().cpu().numpy(), rtol=1e-6)
        contributions = toll.feature_contributions(test)
        np.testing.assert_allclose(contributions.sum(1) + toll.latent_penalty(test), toll.decision_function(test),
                                   rtol=1e-6)


def test_lam_zero_is_the_plain_autoencoder(blobs):
    train, test = blobs
    toll = Toll(**PAPER, lam=0.0, epochs=5, random_state=3).fit(train)
    ae = pyod_ae_ext.make_detector("ae", **PAPER, epochs=5, random_state=3).fit(train)
    np.testing.assert_allclose(toll.decision_function(test), ae.decision_function(test), rtol=1e-6)


@pytest.mark.parametrize("bad", [dict(lam=-1), dict(norm="l1")])
def test_bad_parameters_are_clear_errors(blobs, bad):
    with pytest.raises(pyod_ae_ext.AdscoreError, match=next(iter(bad))):
        Toll(**PAPER, epochs=1, **bad).fit(blobs[0])
