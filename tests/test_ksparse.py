"""Tests of the k-sparse autoencoder detector (plugins/ksparse.py)."""
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from pyod_ae_ext.errors import ParameterError
from pyod_ae_ext.plugins.ksparse import KSparseAE, keep_top_k

# The paper's score: these tests check the method itself, without the latent-space kNN term.
PAPER = {"latent_knn_weight": 0.0, "n_members": 1}


def fitted_copy(detector):
    meta, tensors = detector._fitted_state()
    restored = clone(detector)
    restored._restore_fitted_state(meta, {k: v.clone() for k, v in tensors.items()})
    return restored


def sparse_dictionary_data(n, rng, n_atoms=24, n_features=12, active=3):
    """Rows that are sums of ``active`` of ``n_atoms`` fixed atoms (the model's own assumption)."""
    atoms = np.random.default_rng(100).normal(size=(n_atoms, n_features))
    codes = np.zeros((n, n_atoms))
    for row, chosen in enumerate(np.argsort(rng.random((n, n_atoms)), axis=1)[:, :active]):
        codes[row, chosen] = rng.uniform(1, 2, size=active)
    return codes @ atoms + 0.05 * rng.normal(size=(n, n_features))


def capture_training_codes(model, X):
    """Fit ``model`` on X and return the sparse codes its training steps produced, per step."""
    codes = []
    original = KSparseAE.build_network

    def build(self, n_features):
        net = original(self, n_features)
        net.register_forward_hook(lambda m, _i, out: codes.append((m.training, m.support, out[0].detach().clone())))
        return net

    KSparseAE.build_network = build
    try:
        model.fit(X)
    finally:
        KSparseAE.build_network = original
    return [(support, h) for training, support, h in codes if training]


def test_registered_with_aliases():
    import pyod_ae_ext

    for name in ("ksparse-ae", "ksparse", "k-sparse-ae"):
        assert type(pyod_ae_ext.make_detector(name)) is KSparseAE


def test_keep_top_k_keeps_the_largest_values_and_their_gradient():
    z = torch.tensor([[3.0, -1.0, 2.0, 0.5], [-4.0, -3.0, -2.0, -1.0]], requires_grad=True)
    h = keep_top_k(z, 2)
    assert torch.equal(h, torch.tensor([[3.0, 0, 2.0, 0], [0, 0, -2.0, -1.0]]))  # largest, not |largest|
    h.sum().backward()
    assert torch.equal(z.grad, torch.tensor([[1.0, 0, 1, 0], [0, 0, 1, 1]]))


def test_training_codes_have_exactly_k_and_scoring_codes_alpha_k_nonzeros():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 8))
    model = KSparseAE(**PAPER, k=3, alpha=2.5, latent_dim=40, epochs=4, sparsity_schedule=0.0, random_state=0)
    steps = capture_training_codes(model, X)
    assert len(steps) == 4 * 3  # 4 epochs of 3 batches
    for support, h in steps:
        assert support == 3
        assert ((h != 0).sum(1) == 3).all()
    assert model.scoring_support_ == 8  # round(2.5 * 3)
    codes = model.codes(X)
    assert codes.shape == (300, 40)  # overcomplete: 40 units for 8 features
    assert ((codes != 0).sum(1) == 8).all()
    # the kept units are the 8 largest of the linear code W^T x + b
    with torch.no_grad():
        dense = model.net_.encoder(model._to_tensor(X)).double().cpu().numpy()
    eighth = np.sort(dense, axis=1)[:, -8]
    np.testing.assert_array_equal(codes != 0, dense >= eighth[:, None])
    np.testing.assert_allclose(codes[codes != 0], dense[codes != 0], rtol=1e-6)
    np.testing.assert_array_equal((model.codes(X, support=3) != 0).sum(1), 3)


def test_score_is_the_squared_error_of_the_tied_reconstruction():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 6))
    model = KSparseAE(**PAPER, k=2, alpha=2, latent_dim=12, epochs=5, random_state=0).fit(X)
    W = model.net_.encoder[0].weight.detach().double().cpu().numpy()  # (latent, features)
    b_dec = model.net_.decoder_bias.detach().double().cpu().numpy()
    x = (X - model.scaler_mean_) / model.scaler_scale_
    recon = model.codes(X) @ W + b_dec  # x_hat = W h + b' (tied)
    np.testing.assert_allclose(model.decision_function(X), ((x - recon) ** 2).sum(1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.feature_contributions(X).sum(1), model.decision_function(X), rtol=1e-5)


def test_only_the_kept_units_receive_gradient():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(5, 6))
    model = KSparseAE(**PAPER, k=2, latent_dim=30, epochs=0, random_state=0).fit(np.r_[X, rng.normal(size=(20, 6))])
    net = model.net_
    net.train()
    x = model._to_tensor(X)
    h, _ = net(x)
    used = (h != 0).any(0)
    assert (~used).any()
    model.row_loss(net, x, x).sum().backward()
    grad = net.encoder[0].weight.grad
    bias_grad = net.encoder[0].bias.grad
    # tied weights: an unused unit's row gets no encoder gradient and no decoder gradient
    assert torch.equal(grad[~used], torch.zeros_like(grad[~used]))
    assert torch.equal(bias_grad[~used], torch.zeros_like(bias_grad[~used]))
    assert (grad[used].abs().sum(1) > 0).all()


def test_sparsity_schedule_lowers_k_linearly():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(100, 5))
    model = KSparseAE(**PAPER, k=2, latent_dim=20, epochs=8, batch_size=100, sparsity_schedule=0.5, random_state=0)
    steps = capture_training_codes(model, X)
    supports = [support for support, _ in steps]
    assert supports == [16, 11, 7, 2, 2, 2, 2, 2]  # 20 -> 2 over 4 epochs
    for support, h in steps:
        assert ((h != 0).sum(1) == support).all()
    assert model.n_epochs_ == 8


def test_sparsity_separates_sparse_combinations_from_dense_mixtures():
    """Normal rows combine 3 of 24 atoms; anomalies combine 12, rescaled to the normal
    rows' typical norm so that size gives nothing away. With k = 3 the model can only
    reproduce sparse combinations; with k = latent_dim it is a linear autoencoder with
    an overcomplete code that reproduces everything (AUC 0.5)."""
    rng = np.random.default_rng(4)
    X, normal = sparse_dictionary_data(1000, rng), sparse_dictionary_data(200, rng)
    anomalies = sparse_dictionary_data(200, rng, active=12)
    centre, typical = X.mean(0), np.median(np.linalg.norm(normal - X.mean(0), axis=1))
    directions = anomalies - anomalies.mean(0)
    anomalies = centre + typical * directions / np.linalg.norm(directions, axis=1, keepdims=True)
    y = np.r_[np.zeros(200), np.ones(200)]
    auc = {}
    for k in (3, 48):
        model = KSparseAE(**PAPER, k=k, latent_dim=48, epochs=40, lr=1e-2, random_state=0).fit(X)
        auc[k] = roc_auc_score(y, model.decision_function(np.r_[normal, anomalies]))
    assert auc[3] > 0.75  # measured 0.82 (0.91 with 1,500 rows and 60 epochs)
    assert auc[48] < 0.65


def test_larger_scoring_support_never_reconstructs_worse_on_average():
    """With alpha * k = latent_dim the code is dense: the linear autoencoder's reconstruction."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 6))
    model = KSparseAE(**PAPER, k=2, latent_dim=10, epochs=10, random_state=0).fit(X)
    scores = {}
    for alpha in (1, 2, 5):
        model.set_params(alpha=alpha)
        scores[alpha] = model.decision_function(X)
    assert scores[5].mean() <= scores[2].mean() <= scores[1].mean()
    model.set_params(alpha=100)  # capped at latent_dim
    assert model.scoring_support_ == 10
    np.testing.assert_array_equal(model.decision_function(X), scores[5])


def test_deep_untied_variant_and_round_trip():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(200, 5))
    model = KSparseAE(**PAPER, k=3, tied=False, hidden_dims=(16,), latent_dim=24, epochs=5, random_state=0).fit(X)
    scores = model.decision_function(X)
    assert np.array_equal(scores, fitted_copy(model).decision_function(X))
    assert np.array_equal(scores, clone(model).fit(X).decision_function(X))
    tied = KSparseAE(**PAPER, epochs=5, random_state=0).fit(X)
    assert np.array_equal(tied.decision_function(X), fitted_copy(tied).decision_function(X))


def test_activity_l1_shrinks_the_dense_code():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(300, 6))
    dense = {}
    for weight in (0.0, 1.0):
        model = KSparseAE(**PAPER, k=2, latent_dim=16, activity_l1=weight, epochs=20, lr=1e-2, random_state=0).fit(X)
        with torch.no_grad():
            dense[weight] = model.net_.encoder(model._to_tensor(X)).abs().sum(1).mean().item()
        assert np.isfinite(model.decision_scores_).all()
    # tied weights: a smaller code also means a smaller reconstruction, so the penalty
    # trades off against the error (measured: 2.0 against 11.3)
    assert dense[1.0] < 0.3 * dense[0.0]


@pytest.mark.parametrize("corruption", ["gaussian", "mask"])
def test_denoising_trains_on_corrupted_inputs_against_clean_targets(monkeypatch, corruption):
    rng = np.random.default_rng(8)
    X = rng.normal(size=(200, 5))
    seen = []
    original = KSparseAE.row_loss

    def spy(self, net, x, target):
        if net.training:
            seen.append((x.detach().clone(), target.detach().clone()))
        return original(self, net, x, target)

    monkeypatch.setattr(KSparseAE, "row_loss", spy)
    model = KSparseAE(**PAPER, corruption=corruption, corruption_level=0.3, epochs=2, random_state=0).fit(X)
    x, target = seen[0]
    assert not torch.equal(x, target)
    distance = torch.cdist(target, model._to_tensor(X), compute_mode="donot_use_mm_for_euclid_dist")
    assert distance.min(1).values.max() < 1e-6
    if corruption == "mask":
        assert ((x == 0) | (x == target)).all()
    plain = KSparseAE(**PAPER, epochs=2, random_state=0).fit(X)
    assert not np.allclose(model.decision_scores_, plain.decision_scores_)


@pytest.mark.parametrize("params", [
    dict(k=0), dict(k=40, latent_dim=32), dict(k=2.5), dict(alpha=0.5), dict(sparsity_schedule=1.5),
    dict(tied="yes"), dict(hidden_dims=(8,)),
])
def test_invalid_parameters(params):
    with pytest.raises(ParameterError):
        KSparseAE(**PAPER, **params).fit(np.arange(20.0).reshape(10, 2) ** 2)
