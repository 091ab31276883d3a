"""RDAE-l1 and RDAE-l2,1 (Zhou & Paffenroth, KDD 2017): the properties of the method."""
import numpy as np
import pytest
import torch

import pyod_ae_ext
from pyod_ae_ext.errors import ParameterError
from pyod_ae_ext.plugins.rdae import RDAEL1, RDAEL21, auto_lambda, group_norms, group_shrink, soft_threshold

# latent_knn_weight=0: the paper's score; these tests check the method itself.
SMALL = dict(hidden_dims=(16,), latent_dim=3, epochs=20, random_state=0, latent_knn_weight=0.0)


def _low_rank(seed=0, n=200, d=12, rank=2, noise=0.05):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, rank)) @ rng.normal(size=(rank, d)) + noise * rng.normal(size=(n, d))


def _low_rank_with_outlier_rows(seed=0, n=300, d=20, rank=3, n_out=15, strength=1.0):
    """Rank-3 data; 5% of the rows pushed far along one shared direction off the subspace.

    A shared direction is what misleads a plain autoencoder trained on the contaminated
    data: with a spare latent unit it learns to reconstruct the outliers too.
    """
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(rank, d))
    X = rng.normal(size=(n, rank)) @ W + 0.1 * rng.normal(size=(n, d))
    u = rng.normal(size=d)
    u -= W.T @ np.linalg.lstsq(W.T, u, rcond=None)[0]
    u /= np.linalg.norm(u)
    rows = rng.choice(n, n_out, replace=False)
    sizes = rng.choice([-1, 1], n_out) * (1 + 0.2 * rng.normal(size=n_out))
    X[rows] += strength * np.sqrt(d) * np.outer(sizes, u)
    y = np.zeros(n, dtype=bool)
    y[rows] = True
    return X, y


# ---- the proximal operators ------------------------------------------------------


def test_soft_threshold_is_the_l1_prox():
    S = torch.tensor([[-3.0, -0.5, 0.0, 0.2, 2.5]])
    out = soft_threshold(S, 1.0)
    torch.testing.assert_close(out, torch.tensor([[-2.0, 0.0, 0.0, 0.0, 1.5]]))
    assert (out[0, 1:4] == 0).all()  # exact zeros
    # prox optimality: out minimises 0.5||s - S||^2 + lam ||s||_1 (check against perturbations)
    rng = np.random.default_rng(0)
    S = torch.from_numpy(rng.normal(size=(50, 8)))
    out = soft_threshold(S, 0.7)
    objective = lambda s: 0.5 * (s - S).pow(2).sum() + 0.7 * s.abs().sum()  # noqa: E731
    for _ in range(20):
        assert objective(out) <= objective(out + 1e-3 * torch.randn_like(out))


@pytest.mark.parametrize("groups", ["rows", "columns"])
def test_group_shrink_is_the_l21_prox(groups):
    rng = np.random.default_rng(1)
    S = torch.from_numpy(rng.normal(size=(30, 6)))
    lam = float(group_norms(S, groups).median())  # keeps some groups, zeroes others
    out = group_shrink(S, lam, groups)
    dim = 1 if groups == "rows" else 0
    norms_in, norms_out = group_norms(S, groups), group_norms(out, groups)
    # each group's norm shrinks by exactly lam (or to 0), keeping its direction
    torch.testing.assert_close(norms_out, torch.clamp(norms_in - lam, min=0))
    kept = norms_out > 0
    direction_in = S / norms_in.unsqueeze(dim)
    direction_out = out / norms_out.clamp_min(1e-300).unsqueeze(dim)
    keep = kept.unsqueeze(dim).expand_as(S)
    torch.testing.assert_close(direction_out[keep], direction_in[keep])
    # groups are all-zero or not: no partially zeroed group
    nonzero = (out != 0).sum(dim=dim)
    assert set(nonzero.tolist()) <= {0, S.shape[dim]}
    assert 0 < kept.sum() < kept.numel()
    # the correct sign: g * (1 - lam/||g||), not g * (1 + lam/||g||) or g * (lam/||g|| - 1)
    objective = lambda s: 0.5 * (s - S).pow(2).sum() + lam * group_norms(s, groups).sum()  # noqa: E731
    for _ in range(20):
        assert objective(out) <= objective(out + 1e-3 * torch.randn_like(out))


def test_prox_sparser_as_lambda_grows():
    S = torch.from_numpy(np.random.default_rng(2).normal(size=(100, 10)))
    counts_l1 = [int((soft_threshold(S, lam) != 0).sum()) for lam in (0.0, 0.5, 1.0, 2.0, 5.0)]
    counts_l21 = [int((group_shrink(S, lam) != 0).any(1).sum()) for lam in (0.0, 2.0, 3.0, 4.0, 10.0)]
    assert counts_l1 == sorted(counts_l1, reverse=True) and counts_l1[0] == S.numel() and counts_l1[-1] == 0
    assert counts_l21 == sorted(counts_l21, reverse=True) and counts_l21[0] == 100 and counts_l21[-1] == 0


@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.1, 0.33, 1.0])
def test_auto_lambda_keeps_the_requested_fraction(fraction):
    magnitudes = torch.from_numpy(np.random.default_rng(3).exponential(size=200))
    lam = auto_lambda(magnitudes, fraction)
    assert int((magnitudes > lam).sum()) == round(fraction * 200)
    S = torch.from_numpy(np.random.default_rng(4).normal(size=(200, 7)))
    lam = auto_lambda(group_norms(S), fraction)
    assert int((group_shrink(S, lam) != 0).any(1).sum()) == round(fraction * 200)


# ---- the fitted decomposition -------------------------------------------------------


@pytest.mark.parametrize("name, params", [("rdae-l21", {}), ("rdae-l21", {"groups": "columns"}),
                                          ("rdae-l1", {}), ("rdae-l21", {"lam": 3.0}), ("rdae-l1", {"lam": 1.0})])
def test_decomposition_adds_up_in_the_original_units(name, params):
    X = _low_rank() * [1.0, 100.0, 0.01, 5.0, 1, 1, 1, 1, 1, 1, 1, 1] + 50.0
    detector = pyod_ae_ext.make_detector(name, **SMALL, **params).fit(X)
    assert detector.S_.shape == detector.L_.shape == X.shape
    np.testing.assert_allclose(detector.L_ + detector.S_, X, rtol=1e-12, atol=1e-12)
    assert (detector.S_ == 0).any() and (detector.S_ != 0).any()  # exactly sparse, not empty
    assert 1 <= detector.n_iter_ <= detector.outer_iterations
    # outlier_mask_ is where S is non-zero: rows/columns for l2,1, entries for l1
    if name == "rdae-l1":
        np.testing.assert_array_equal(detector.outlier_mask_, detector.S_ != 0)
    else:
        axis = 1 if detector.groups == "rows" else 0
        np.testing.assert_array_equal(detector.outlier_mask_, (detector.S_ != 0).any(axis=axis))
        # every group of S is all-zero or all-non-zero
        counts = (detector.S_ != 0).sum(axis=axis)
        assert set(np.unique(counts)) <= {0, X.shape[axis]}


def test_auto_lambda_flags_the_contamination_fraction():
    X = _low_rank()
    rows = RDAEL21(lam="auto", contamination=0.1, **SMALL).fit(X)
    assert rows.outlier_mask_.sum() == 20 and rows.outlier_mask_.shape == (200,)
    columns = RDAEL21(lam="auto", groups="columns", contamination=0.25, **SMALL).fit(X)
    assert columns.outlier_mask_.sum() == 3 and columns.outlier_mask_.shape == (12,)
    entries = RDAEL1(lam="auto", contamination=0.05, **SMALL).fit(X)
    assert entries.outlier_mask_.sum() == round(0.05 * X.size)
    assert rows.lambda_ > 0 and entries.lambda_ > 0


def test_sparser_as_lambda_grows():
    X = _low_rank()
    for cls, lams in ((RDAEL21, (0.5, 1.5, 4.0, 1e9)), (RDAEL1, (0.1, 0.5, 2.0, 1e9))):
        counts = [int((cls(lam=lam, **SMALL).fit(X).S_ != 0).sum()) for lam in lams]
        assert counts == sorted(counts, reverse=True) and counts[0] > counts[-2], (cls.__name__, counts)
        assert counts[-1] == 0


@pytest.mark.parametrize("cls", [RDAEL1, RDAEL21])
def test_infinite_lambda_is_the_plain_autoencoder(cls):
    X = _low_rank()
    params = dict(SMALL, contamination=0.1)
    rdae = cls(lam=1e12, outer_iterations=4, inner_epochs=5, tol=0.0, **params).fit(X)
    ae = pyod_ae_ext.make_detector("ae", **dict(params, epochs=20, n_members=1)).fit(X)
    assert not rdae.S_.any() and not rdae.outlier_mask_.any()
    assert rdae.n_iter_ == 4 and rdae.n_epochs_ == 20
    np.testing.assert_allclose(rdae.decision_scores_, ae.decision_scores_, rtol=1e-6)
    np.testing.assert_allclose(rdae.decision_function(X[:20] * 1.5), ae.decision_function(X[:20] * 1.5), rtol=1e-6)


def test_training_scores_are_the_inductive_score_and_not_tied():
    X = _low_rank()
    detector = RDAEL21(lam="auto", contamination=0.1, **SMALL).fit(X)
    np.testing.assert_array_equal(detector.decision_scores_, detector.decision_function(X))
    clean = ~detector.outlier_mask_
    assert len(np.unique(detector.decision_scores_[clean])) == clean.sum()  # S = 0 there, still ranked
    contributions = detector.feature_contributions(X)
    np.testing.assert_allclose(contributions.sum(axis=1), detector.decision_scores_, rtol=1e-5)


def test_rdae_l21_finds_outlier_rows_that_the_plain_autoencoder_learns_to_reconstruct():
    X, y = _low_rank_with_outlier_rows(seed=0)
    params = dict(contamination=0.05, hidden_dims=(32,), latent_dim=4, epochs=200, batch_size=64, random_state=0,
                  latent_knn_weight=0.0)
    rdae = pyod_ae_ext.make_detector("rdae-l21", **params).fit(X)
    ae = pyod_ae_ext.make_detector("ae", **params).fit(X)
    recall_mask = (rdae.outlier_mask_ & y).sum() / y.sum()
    recall_rdae = (rdae.labels_.astype(bool) & y).sum() / y.sum()
    recall_ae = (ae.labels_.astype(bool) & y).sum() / y.sum()
    assert recall_mask >= 0.9
    assert recall_rdae >= 0.9
    assert recall_ae <= recall_rdae - 0.4, (recall_rdae, recall_ae)


def test_tolerance_stops_early_and_records_the_criteria():
    X = _low_rank()
    # lam = 0 puts the whole residual into S, so X - L_D - S = 0 after one iteration
    detector = RDAEL1(lam=0.0, **SMALL).fit(X)
    assert detector.n_iter_ == 1 and detector.convergence_[0][0] == 0.0
    detector = RDAEL21(lam=1.0, tol=0.0, outer_iterations=3, inner_epochs=1, **{**SMALL, "epochs": 3}).fit(X)
    assert detector.n_iter_ == 3 and len(detector.convergence_) == 3


def test_inner_epochs_default_spreads_the_epoch_budget():
    X = _low_rank(n=60)
    assert RDAEL21(outer_iterations=5, **{**SMALL, "epochs": 20}).fit(X).n_epochs_ == 20
    assert RDAEL21(outer_iterations=5, inner_epochs=2, **SMALL).fit(X).n_epochs_ == 10


def test_save_load_keeps_the_decomposition(tmp_path):
    X = _low_rank()
    detector = RDAEL21(lam="auto", contamination=0.1, **SMALL).fit(X)
    pyod_ae_ext.save(detector, tmp_path / "m.adscore")
    loaded = pyod_ae_ext.load(tmp_path / "m.adscore")
    np.testing.assert_array_equal(loaded.S_, detector.S_)
    np.testing.assert_array_equal(loaded.outlier_mask_, detector.outlier_mask_)
    assert loaded.n_iter_ == detector.n_iter_ and loaded.lambda_ == detector.lambda_
    np.testing.assert_array_equal(loaded.decision_function(X), detector.decision_function(X))


@pytest.mark.parametrize("params", [{"lam": -1.0}, {"lam": "big"}, {"outer_iterations": 0},
                                    {"inner_epochs": -1}, {"tol": -1e-3}, {"groups": "blocks"},
                                    {"validation_fraction": 0.2}])
def test_bad_parameters_are_rejected(params):
    with pytest.raises(ParameterError):
        RDAEL21(**params).fit(_low_rank(n=30))
