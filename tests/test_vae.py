"""Tests of the variational autoencoder detector (plugins/vae.py)."""
import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal, spearmanr
from sklearn.base import clone

from pyod_ae_ext.errors import DataError, ParameterError
from pyod_ae_ext.plugins import vae as vae_module
from pyod_ae_ext.plugins.vae import VAE

LOG_2PI = np.log(2 * np.pi)


def fitted_copy(detector):
    """An unfitted clone restored from the fitted state that the model files hold."""
    meta, tensors = detector._fitted_state()
    restored = clone(detector)
    restored._restore_fitted_state(meta, {k: v.clone() for k, v in tensors.items()})
    return restored


@pytest.fixture(scope="module")
def independent_gaussian():
    """Independent features with different means and scales: after standardisation N(0, I)."""
    rng = np.random.default_rng(0)
    means, scales = np.array([1.0, -2.0, 0.0, 10.0]), np.array([0.5, 1.0, 2.0, 5.0])
    X = means + scales * rng.normal(size=(1000, 4))
    X_test = means + scales * rng.normal(size=(2000, 4))
    true_log_density = multivariate_normal(means, np.diag(scales ** 2)).logpdf(X_test)
    model = VAE(hidden_dims=(16,), latent_dim=2, epochs=20, random_state=0).fit(X)
    return model, X_test, true_log_density, scales


def test_registered():
    import pyod_ae_ext

    assert type(pyod_ae_ext.make_detector("vae")) is VAE


def test_reconstruction_probability_is_the_true_log_density(independent_gaussian):
    """Standardised N(0, I) data: the VAE's optimum ignores z and the decoder is N(0, I).

    The reconstruction probability is then exactly the negative log-density, so it must
    rank test points like the true density and average to the empirical negative
    log-density of the test rows. Tolerance 0.1 nats for 4 features: the decoder's mean
    and variance are estimated from 1,000 rows (excess of order d / n = 0.004) and the
    posterior does not collapse completely in 20 epochs; a missing log(2 pi) term would
    be off by 3.7 nats, a missing variance term by sum(log v) in general, a
    squared error without the 1/2 by about 2 nats.
    """
    model, X_test, true_log_density, scales = independent_gaussian
    score = model.decision_function(X_test)
    assert spearmanr(score, -true_log_density)[0] > 0.99
    # standardised units: log p_std(x) = log p(x) + sum(log scale)
    true_std = true_log_density + np.log(scales).sum()
    assert abs(score.mean() - (-true_std.mean())) < 0.1
    # the expected value is the entropy of N(0, I_4) = 2 (1 + log 2 pi)
    assert abs(score.mean() - 2 * (1 + LOG_2PI)) < 0.15
    # original units: the documented offset sum(log scale_)
    original = model.reconstruction_log_probability(X_test, original_units=True)
    standardised = model.reconstruction_log_probability(X_test)
    np.testing.assert_allclose(standardised, -score, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(standardised - original, np.log(model.scaler_scale_).sum(), rtol=1e-9)
    assert abs(original.mean() - true_log_density.mean()) < 0.1
    # the learned per-feature variances are those of standardised data
    np.testing.assert_allclose(model.net_.feature_variance.cpu().numpy(), 1.0, atol=0.1)


def correlated_gaussian(n, rng):
    """x1 = z + e1, x2 = z + e2 (noise sd 0.1), x3, x4 independent N(0, 1)."""
    z = rng.normal(size=n)
    return np.c_[z + 0.1 * rng.normal(size=n), z + 0.1 * rng.normal(size=n), rng.normal(size=(n, 2))]


def test_reconstruction_probability_ranks_like_the_true_density():
    """The variance term is what makes it a density: a point slightly off the x1 = x2 line
    (A) is far less likely than a point 2.5 sd out in an independent feature (B); the
    reconstruction probability says so, the reconstruction error says the opposite."""
    rng = np.random.default_rng(1)
    cov = np.array([[1.01, 1, 0, 0], [1, 1.01, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    X, X_test = correlated_gaussian(1000, rng), correlated_gaussian(1000, rng)
    truth = multivariate_normal(np.zeros(4), cov)
    params = dict(hidden_dims=(16,), latent_dim=2, epochs=20, lr=1e-2, random_state=0)
    probability = VAE(**params).fit(X)
    error = VAE(score_method="reconstruction_error", **params).fit(X)
    rho_probability = spearmanr(probability.decision_function(X_test), -truth.logpdf(X_test))[0]
    # The score omits the prior term of the latent direction, so even the exact
    # factor-analysis model (loadings 1, 1, 0, 0; noise 0.01, 0.01, 1, 1) with its exact
    # posterior reaches only 0.865 on these test rows (0.713 for its L1 error).
    assert rho_probability > 0.75
    A, B = [0.3, -0.3, 0.0, 0.0], [0.0, 0.0, 2.5, 0.0]
    assert truth.logpdf(A) < truth.logpdf(B) - 5
    a, b = probability.decision_function(np.array([A, B]))
    assert a > b + 2
    a, b = error.decision_function(np.array([A, B]))
    assert a < b
    # the learned variances of x1 and x2 are close to the factor-analysis noise 0.01 / 1.01
    variance = probability.net_.feature_variance.cpu().numpy()
    assert variance[:2].max() < 0.03 and variance[2:].min() > 0.9


def test_reconstruction_probability_matches_a_manual_computation(independent_gaussian):
    model, X_test, _, _ = independent_gaussian
    model = clone(model).set_params(n_samples=3, device="cpu").fit(X_test[:300])
    x = torch.as_tensor((X_test[:50] - model.scaler_mean_) / model.scaler_scale_, dtype=torch.float32)
    net = model.net_
    eps = torch.randn(3, model.latent_dim, generator=torch.Generator().manual_seed(model.seed_ + 1))
    with torch.no_grad():
        mu, logvar = net.encode(x)
        total = 0
        for draw in range(3):
            z = mu + torch.exp(0.5 * logvar) * eps[draw]
            mean = net.decoder(z)
            v = net.feature_variance
            total = total + (0.5 * (LOG_2PI + v.log() + (x - mean) ** 2 / v)).sum(1)
    np.testing.assert_allclose(model.decision_function(X_test[:50]), (total / 3).numpy(), rtol=1e-5)


@pytest.mark.parametrize("score", VAE.SCORES)
def test_scores_are_deterministic_and_survive_a_round_trip(score):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 5))
    model = VAE(score_method=score, epochs=5, random_state=3).fit(X)
    first = model.decision_function(X)
    assert np.array_equal(first, model.decision_function(X))
    assert np.array_equal(first, VAE(score_method=score, epochs=5, random_state=3).fit(X).decision_function(X))
    assert np.array_equal(first, fitted_copy(model).decision_function(X))
    if score != "wasserstein":  # Monte Carlo: another seed draws other z
        other = VAE(score_method=score, epochs=5, random_state=4).fit(X).decision_function(X)
        assert not np.array_equal(first, other)


def test_more_samples_reduce_monte_carlo_noise():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 4))
    model = VAE(epochs=3, n_samples=1, random_state=0).fit(X)
    spread = {}
    for n_samples in (1, 50):
        model.set_params(n_samples=n_samples)
        draws = []
        for seed in range(5):  # the Monte Carlo draws are fixed by seed_
            model.seed_ = seed
            with torch.inference_mode():
                draws.append(model._score_tensor(model._to_tensor(X)))
        spread[n_samples] = np.std(draws, axis=0).mean()
    assert spread[50] < spread[1] / 4  # 1 / sqrt(50) = 0.14


@pytest.mark.parametrize("score", VAE.SCORES)
def test_a_rows_score_does_not_depend_on_the_other_rows(score, monkeypatch):
    """One row alone, the full set, reversed, and split across scoring batches: the same scores."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(2500, 6))
    model = VAE(score_method=score, epochs=2, random_state=0).fit(X[:300])
    full = model.decision_function(X)
    alone = np.array([model.decision_function(X[i:i + 1])[0] for i in (0, 7, 2499)])
    np.testing.assert_allclose(alone, full[[0, 7, 2499]], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.decision_function(X[::-1])[::-1], full, rtol=1e-5, atol=1e-6)
    monkeypatch.setattr("pyod_ae_ext.engine._SCORING_BATCH_ELEMENTS", 1)  # batches of 1024 rows
    np.testing.assert_allclose(model.decision_function(X), full, rtol=1e-5, atol=1e-6)


def test_wasserstein_is_the_median_over_reference_posteriors():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(150, 5))
    model = VAE(score_method="wasserstein", n_reference=40, epochs=5, random_state=0, device="cpu").fit(X)
    assert model.reference_mu_.shape == model.reference_sigma_.shape == (40, model.latent_dim)
    assert len(np.unique(model.reference_index_)) == 40
    X_new = rng.normal(size=(30, 5)) * 2
    x = torch.as_tensor((X_new - model.scaler_mean_) / model.scaler_scale_, dtype=torch.float32)
    with torch.no_grad():
        mu, logvar = model.net_.encode(x)
        ref_mu, ref_logvar = model.net_.encode(model._to_tensor(X)[model.reference_index_])
    mu, sigma = mu.double().numpy(), np.exp(0.5 * logvar.double().numpy())
    ref_mu, ref_sigma = ref_mu.double().numpy(), np.exp(0.5 * ref_logvar.double().numpy())
    np.testing.assert_allclose(ref_mu, model.reference_mu_.numpy(), rtol=1e-5, atol=1e-6)
    w2 = ((mu[:, None] - ref_mu[None]) ** 2).sum(-1) + ((sigma[:, None] - ref_sigma[None]) ** 2).sum(-1)
    expected = np.median(w2, axis=1)
    np.testing.assert_allclose(model.decision_function(X_new), expected, rtol=1e-4, atol=1e-6)
    # fewer training rows than n_reference: every row is a reference
    small = VAE(score_method="wasserstein", n_reference=500, epochs=2, random_state=0).fit(X[:20])
    assert small.reference_mu_.shape[0] == 20


def test_wasserstein_chunking_gives_the_same_scores(monkeypatch):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 4))
    model = VAE(score_method="wasserstein", n_reference=64, epochs=3, random_state=0).fit(X)
    whole = model.decision_function(X)
    monkeypatch.setattr(vae_module, "_WASSERSTEIN_CHUNK_ELEMENTS", 64 * 7)  # chunks of 7 rows
    np.testing.assert_array_equal(model.decision_function(X), whole)


def test_feature_contributions_sum_to_the_score():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(200, 5))
    for score in ("reconstruction_probability", "reconstruction_error"):
        model = VAE(score_method=score, epochs=3, random_state=0).fit(X)
        np.testing.assert_allclose(model.feature_contributions(X).sum(1), model.decision_function(X),
                                   rtol=1e-5, atol=1e-5)
    model = VAE(score_method="wasserstein", epochs=1, random_state=0).fit(X)
    with pytest.raises(NotImplementedError):
        model.feature_contributions(X)


def test_per_sample_variance_head():
    rng = np.random.default_rng(7)
    # heteroscedastic data: the noise of x2 grows with |x1|
    x1 = rng.normal(size=2000)
    X = np.c_[x1, x1 + (0.05 + 0.5 * np.abs(x1)) * rng.normal(size=2000)]
    model = VAE(variance="sample", latent_dim=1, hidden_dims=(32,), epochs=30, lr=3e-3, random_state=0).fit(X)
    x = model._to_tensor(np.array([[0.0, 0.0], [2.5, 2.5]]))
    with torch.no_grad():
        mu, _ = model.net_.encode(x)
        _, variance = model.net_.decode(mu)
    assert variance.shape == (2, 2)
    assert variance[1, 1] > 3 * variance[0, 1]  # larger predicted variance where the noise is larger
    assert not hasattr(model.net_, "feature_variance")


def test_bernoulli_likelihood_uses_values_in_the_unit_interval():
    rng = np.random.default_rng(8)
    prototypes = rng.random((3, 12)) < 0.5
    X = (prototypes[rng.integers(0, 3, 400)] ^ (rng.random((400, 12)) < 0.05)).astype(float)
    model = VAE(likelihood="bernoulli", epochs=30, random_state=0).fit(X)
    score = model.decision_function(X)
    assert (score > 0).all()  # -log of a probability of binary data
    # the same score for the standardised/original unit choice: a probability, not a density
    np.testing.assert_array_equal(model.reconstruction_log_probability(X[:20], original_units=True),
                                  model.reconstruction_log_probability(X[:20]))
    flipped = X[:50].copy()
    flipped[:, :6] = 1 - flipped[:, :6]
    assert np.median(model.decision_function(flipped)) > np.quantile(score, 0.9)
    # fractional values in [0, 1] are accepted (cross-entropy), values outside are not
    model.decision_function(X[:5] * 0.5)
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        model.decision_function(X[:5] * 2)
    with pytest.raises(DataError, match="min-max"):
        VAE(likelihood="bernoulli").fit(X - 0.5)
    # with the engine's standardisation off the encoder sees the raw values; same checks
    raw = VAE(likelihood="bernoulli", standardize=False, epochs=5, random_state=0).fit(X)
    assert (raw.decision_function(X) > 0).all()
    with pytest.raises(DataError):
        raw.decision_function(X[:5] - 0.5)


def test_wasserstein_references_are_saved_in_the_model_file(tmp_path):
    import pyod_ae_ext

    rng = np.random.default_rng(11)
    X = rng.normal(size=(120, 4))
    model = VAE(score_method="wasserstein", n_reference=30, epochs=3, random_state=0).fit(X)
    pyod_ae_ext.save(model, tmp_path / "vae")
    loaded = pyod_ae_ext.load(tmp_path / "vae")
    assert torch.equal(loaded.reference_mu_, model.reference_mu_)
    assert torch.equal(loaded.reference_sigma_, model.reference_sigma_)
    np.testing.assert_array_equal(loaded.decision_function(X), model.decision_function(X))


def penalised_activity(model, X):
    """Mean over rows of the L1 norms that activity_l1 penalises (hidden layers and encoder output)."""
    from pyod_ae_ext.engine import _activity_modules

    outputs = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: outputs.append(out))
             for m in _activity_modules(model.net_)]
    with torch.no_grad():
        model.net_.encode(model._to_tensor(X))
    for hook in hooks:
        hook.remove()
    return sum(o.abs().sum(1).mean().item() for o in outputs)


def test_activity_l1_shrinks_the_penalised_activations():
    rng = np.random.default_rng(9)
    X = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6))
    activity = {}
    for weight in (0.0, 0.1):
        model = VAE(activity_l1=weight, epochs=20, lr=1e-2, random_state=0).fit(X)
        activity[weight] = penalised_activity(model, X)
        assert np.isfinite(model.decision_scores_).all()
    assert activity[0.1] < 0.1 * activity[0.0]  # measured: 0.02 against 20


@pytest.mark.parametrize("corruption", ["gaussian", "mask"])
def test_corruption_feeds_the_encoder_a_corrupted_row_and_scores_the_clean_one(monkeypatch, corruption):
    rng = np.random.default_rng(10)
    X = rng.normal(size=(200, 5))
    seen = []
    original = VAE.row_loss

    def spy(self, net, x, target):
        if net.training:
            seen.append((x.detach().clone(), target.detach().clone()))
        return original(self, net, x, target)

    monkeypatch.setattr(VAE, "row_loss", spy)
    model = VAE(corruption=corruption, corruption_level=0.3, epochs=2, random_state=0).fit(X)
    x, target = seen[0]
    assert not torch.equal(x, target)
    standardised = model._to_tensor(X)
    # every target row is a clean training row
    distance = torch.cdist(target, standardised, compute_mode="donot_use_mm_for_euclid_dist")
    assert distance.min(1).values.max() < 1e-6
    if corruption == "mask":
        assert ((x == 0) | (x == target)).all()
    plain = VAE(epochs=2, random_state=0).fit(X)
    assert not np.allclose(model.decision_scores_, plain.decision_scores_)


@pytest.mark.parametrize("params", [
    dict(score_method="likelihood"), dict(beta=-1.0), dict(likelihood="poisson"), dict(variance="row"),
    dict(min_variance=0.0), dict(n_samples=0), dict(n_reference=0), dict(n_samples=2.5),
])
def test_invalid_parameters(params):
    with pytest.raises(ParameterError):
        VAE(**params).fit(np.zeros((10, 2)) + np.arange(10)[:, None])
