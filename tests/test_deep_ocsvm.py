"""Tests of deep-ocsvm (AE-1SVM, Nguyen & Vien 2018): RFF kernel, nu-property, fixed gamma."""
import math

import numpy as np
import pytest
import torch

from pyod_ae_ext.errors import ParameterError
from pyod_ae_ext.plugins.deep_ocsvm import DeepOCSVM, RandomFourierFeatures

# The paper's score: these tests check the method itself, without the latent-space kNN term.
PAPER = {"latent_knn_weight": 0.0, "n_members": 1}


def blob(n=300, d=4, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def test_rff_approximates_rbf_kernel():
    torch.manual_seed(0)
    gamma = 0.7
    rff = RandomFourierFeatures(3, 20000, gamma)
    a, b = torch.randn(40, 3), torch.randn(40, 3)
    approx = rff(a) @ rff(b).T
    exact = torch.exp(-gamma * torch.cdist(a, b).pow(2))
    assert (approx - exact).abs().max() < 0.05
    assert (approx - exact).abs().mean() < 0.01
    # phi(a).phi(a) ~ k(a, a) = 1
    assert torch.allclose((rff(a) ** 2).sum(1), torch.ones(40), atol=0.03)


def test_rff_buffers_fixed_and_saved():
    det = DeepOCSVM(**PAPER, epochs=3, random_state=0).fit(blob())
    names = dict(det.net_.named_buffers())
    assert {"rff.omega_unit", "rff.phase", "rff.gamma"} <= set(names)
    params = dict(det.net_.named_parameters())
    assert "w" in params and "rho" in params
    assert not any(n.startswith("rff.") for n in params)  # random features are never trained
    phase = names["rff.phase"]
    assert phase.min() >= 0 and phase.max() <= 2 * math.pi


def test_median_heuristic_gamma_fixed_from_initial_codes():
    X = blob()
    untrained = DeepOCSVM(**PAPER, epochs=0, random_state=3).fit(X)
    trained = DeepOCSVM(**PAPER, epochs=10, random_state=3).fit(X)
    # gamma is computed before training and never changes afterwards
    assert trained.gamma_ == untrained.gamma_
    with torch.no_grad():
        z = untrained.net_.encoder(untrained._to_tensor(X))
    median = torch.pdist(z.double()).median().item()
    assert untrained.gamma_ == pytest.approx(1 / (2 * median ** 2), rel=1e-5)
    assert DeepOCSVM(**PAPER, gamma=0.25, epochs=2, random_state=0).fit(X).gamma_ == pytest.approx(0.25)


def test_score_is_rho_minus_svm_margin():
    X = blob()
    det = DeepOCSVM(**PAPER, epochs=5, random_state=0).fit(X)
    net = det.net_
    with torch.no_grad():
        z = net.encoder(det._to_tensor(X))
        expected = net.rho - net.rff(z) @ net.w
    np.testing.assert_allclose(det.decision_function(X), expected.double().cpu().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("nu", [0.1, 0.3])
def test_nu_property_fraction_outside_boundary(nu, seed):
    """The nu-property holds exactly on the training rows, for any seed.

    After training, rho is set to its exact minimiser given the network, the
    ceil(nu N)-th smallest margin: fewer than nu N rows lie outside (score > 0) and at
    least nu N on or outside the boundary (Schoelkopf et al. 2001, Prop. 4). Minibatch
    Adam alone left 0.16-0.38 outside for nu = 0.3 across seeds.
    """
    X = blob(n=600, d=4, seed=1)
    det = DeepOCSVM(**PAPER, nu=nu, epochs=60, random_state=seed).fit(X)
    scores = det.decision_scores_
    n = len(scores)
    assert nu - 1 / n - 1e-12 <= (scores > 0).mean() < nu
    assert (scores >= 0).mean() >= nu - 1e-12
    assert det.rho_ > 0
    # rho_ is the ceil(nu N)-th smallest training margin w^T phi(E(x))
    margins = det.rho_ - scores
    assert det.rho_ == pytest.approx(np.sort(margins)[math.ceil(nu * n) - 1], abs=1e-6)


def test_loss_mean_is_paper_objective():
    X = blob(50)
    det = DeepOCSVM(**PAPER, epochs=1, nu=0.2, alpha=0.5, random_state=0).fit(X)
    net, x = det.net_, det._to_tensor(X)
    with torch.no_grad():
        _, recon, margin = net(x)
        objective = (0.5 * ((x - recon) ** 2).sum() / len(x) + 0.5 * net.w.pow(2).sum() - net.rho
                     + torch.clamp(net.rho - margin, min=0).sum() / (0.2 * len(x)))
        assert torch.allclose(det.row_loss(net, x, x).mean(), objective, rtol=1e-5)


def test_detects_shifted_points():
    X = blob(400, 5)
    det = DeepOCSVM(**PAPER, random_state=0).fit(X)
    inliers = blob(200, 5, seed=7)
    outliers = inliers + 5.0
    assert det.decision_function(outliers).mean() > det.decision_function(inliers).mean()


@pytest.mark.parametrize("params", [dict(nu=0), dict(nu=1.5), dict(gamma=-1), dict(gamma="median"),
                                    dict(n_features_rff=0), dict(alpha=-1), dict(alpha="x"),
                                    dict(code_activation="cube")])
def test_bad_params(params):
    with pytest.raises(ParameterError):
        DeepOCSVM(**PAPER, **params).fit(blob(20))
