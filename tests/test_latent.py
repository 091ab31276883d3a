"""Latent-space scoring: kNN distances between codes, combined with a family's own score."""
import numpy as np
import pytest
import torch

import pyod_ae_ext
from pyod_ae_ext import latent
from pyod_ae_ext.engine import AutoEncoderDetector
from pyod_ae_ext.errors import ParameterError
from pyod_ae_ext.plugins.autoencoder import AutoEncoder
from pyod_ae_ext.registry import get_registry
from pyod_ae_ext.testing import check_detector

FAMILIES = [name for name, spec in get_registry().detectors.items() if issubclass(spec.cls, AutoEncoderDetector)]


def test_a_row_the_decoder_reconstructs_but_no_training_row_resembles_is_flagged():
    """Training rows lie on the segment t * (1, 2), |t| <= 1. A linear autoencoder with a 1-D
    code reconstructs the whole line, so t = 6 has no reconstruction error; only its
    distance from every training code says it is unusual."""
    rng = np.random.RandomState(0)
    t = rng.uniform(-1, 1, size=400)
    X = np.c_[t, 2 * t] + 0.01 * rng.normal(size=(400, 2))
    far_on_the_line, typical = np.array([[6.0, 12.0]]), np.array([[0.2, 0.4]])
    params = dict(hidden_dims=(), latent_dim=1, activation="identity", epochs=60, lr=1e-2, random_state=0)
    plain = AutoEncoder(n_members=1, latent_knn_weight=0.0, **params).fit(X)
    assert plain.predict(far_on_the_line)[0] == 0  # reconstruction error alone misses it
    combined = AutoEncoder(n_members=1, latent_knn_weight=0.5, **params).fit(X)
    assert combined.predict(far_on_the_line)[0] == 1
    assert combined.predict(typical)[0] == 0
    assert combined.decision_function(far_on_the_line)[0] > combined.decision_scores_.max()


def test_knn_distance_leaves_a_training_rows_own_code_out():
    reference = torch.tensor([[0.0], [1.0], [3.0]])
    codes = torch.tensor([[0.0], [1.0], [10.0]])
    assert latent.knn_distance(codes, reference, k=1).tolist() == [0.0, 0.0, 7.0]
    own = torch.tensor([0, 1, -1])
    assert latent.knn_distance(codes, reference, k=1, reference_rows=own).tolist() == [1.0, 1.0, 7.0]
    assert latent.knn_distance(codes, reference, k=2, reference_rows=own).tolist() == [2.0, 1.5, 8.0]


def _codes_far_from_the_origin(generator):
    reference = torch.randn(300, 8, generator=generator) * 0.01 + 1e4
    return reference, torch.randn(5000, 8, generator=generator) * 0.01 + 1e4


def _tight_clusters_far_apart(generator):
    centres = torch.randn(30, 8, generator=generator) * 100
    reference = centres.repeat(10, 1) + torch.randn(300, 8, generator=generator) * 1e-3
    return reference, centres.repeat(170, 1)[:5000] + torch.randn(5000, 8, generator=generator) * 1e-3


@pytest.mark.parametrize("layout", [_codes_far_from_the_origin, _tight_clusters_far_apart])
def test_knn_distance_equals_the_brute_force_mean_of_the_k_smallest_distances(layout):
    """Both layouts defeat neighbours chosen on float32 |x|^2 - 2xr + |r|^2 (cancellation
    swamps the small distances between neighbours); the result must still be the true
    neighbours' mean distance, whichever block a row falls in."""
    reference, codes = layout(torch.Generator().manual_seed(0))
    distances = torch.cdist(codes.double(), reference.double())
    fast = latent.knn_distance(codes, reference, k=7)
    assert fast.dtype == torch.float32
    expected = distances.topk(7, dim=1, largest=False).values.mean(dim=1)
    np.testing.assert_allclose(fast.numpy(), expected.numpy(), rtol=1e-5, atol=1e-7)
    own = torch.arange(5000) % 350 - 50  # rows 50..349 of each 350 are reference rows 0..299
    rows = torch.nonzero(own >= 0).flatten()
    distances[rows, own[rows]] = float("inf")
    expected = distances.topk(7, dim=1, largest=False).values.mean(dim=1)
    np.testing.assert_allclose(latent.knn_distance(codes, reference, 7, own).numpy(), expected.numpy(),
                               rtol=1e-5, atol=1e-7)
    one_by_one = torch.cat([latent.knn_distance(codes[i:i + 1], reference, k=7) for i in range(0, 5000, 997)])
    assert torch.equal(one_by_one, fast[::997])


def test_the_reference_set_is_capped_and_drawn_by_the_seed():
    X = np.random.RandomState(1).normal(size=(300, 4))
    params = dict(epochs=2, latent_knn_weight=0.5, latent_reference_size=50)
    a = AutoEncoder(n_members=1, random_state=3, **params).fit(X)
    b = AutoEncoder(n_members=1, random_state=3, **params).fit(X)
    c = AutoEncoder(n_members=1, random_state=4, **params).fit(X)
    assert a.latent_reference_.shape == (50, a.latent_dim)
    assert torch.equal(a.latent_reference_, b.latent_reference_)
    assert not torch.equal(a.latent_reference_, c.latent_reference_)


def test_weight_zero_is_the_familys_own_score():
    X = np.random.RandomState(2).normal(size=(200, 4))
    plain = AutoEncoder(n_members=1, epochs=2, random_state=0, latent_knn_weight=0.0).fit(X)
    np.testing.assert_array_equal(plain.family_score(X), plain.decision_function(X))
    assert not hasattr(plain, "latent_reference_")
    net = plain.net_
    with torch.no_grad():
        x = plain._to_tensor(X)
        expected = (net(x)[1] - x).pow(2).sum(1).double().cpu().numpy()
    np.testing.assert_allclose(plain.decision_function(X), expected, rtol=1e-6)


def test_weight_one_is_the_latent_distance_alone(tmp_path):
    X = np.random.RandomState(3).normal(size=(200, 4))
    detector = AutoEncoder(n_members=1, epochs=2, random_state=0, latent_knn_weight=1.0, latent_knn_k=3).fit(X)
    new = np.random.RandomState(4).normal(size=(20, 4))
    with torch.no_grad():
        codes = detector.net_.encoder(detector._to_tensor(new))
        distances = torch.cdist(codes, detector.latent_reference_, compute_mode="donot_use_mm_for_euclid_dist")
        distances = distances.topk(3, largest=False).values.mean(1)
    _, _, mean, std = detector.latent_standardisers_
    np.testing.assert_allclose(detector.decision_function(new), (distances.double().cpu().numpy() - mean) / std,
                               rtol=1e-5, atol=1e-6)
    path = tmp_path / "latent.adscore"
    detector.save(path)
    np.testing.assert_array_equal(pyod_ae_ext.load(path).decision_function(new), detector.decision_function(new))


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_honours_the_contract_with_latent_scoring(name):
    spec = get_registry().resolve(name)
    fast = {k: v for k, v in {"epochs": 3, "outer_iterations": 2, "inner_epochs": 1}.items() if k in spec.parameters()}
    check_detector(spec.cls(latent_knn_weight=0.5, random_state=0, **fast))


@pytest.mark.parametrize("params", [{"latent_knn_weight": 1.5}, {"latent_knn_weight": -0.1},
                                    {"latent_knn_k": 0}, {"latent_reference_size": 1}])
def test_invalid_latent_parameters(params):
    with pytest.raises(ParameterError):
        AutoEncoder(n_members=1, **params).fit(np.zeros((10, 2)))


# ---- a PyOD detector on the codes (latent_detector) -------------------------------


def _codes(detector, X):
    x = detector.network_input(X)
    with detector.scoring_context(rows=x.shape[0]):  # in the scoring batches, as the engine computes them
        return detector.map_batches(lambda batch: detector.row_code(detector.net_, batch), x).double().cpu().numpy()


def test_a_named_pyod_detector_fitted_on_the_reference_codes_is_the_latent_score():
    from pyod.models.knn import KNN

    rng = np.random.RandomState(0)
    X, X_new = rng.normal(size=(300, 5)), rng.normal(size=(40, 5)) * 2
    detector = AutoEncoder(n_members=1, latent_knn_weight=1.0, latent_detector="knn", latent_reference_size=200,
                           epochs=3, random_state=0).fit(X)
    reference = detector.latent_reference_.double().cpu().numpy()
    knn = KNN().fit(reference)
    _, _, mean, spread = detector.latent_standardisers_
    np.testing.assert_allclose(detector.decision_function(X_new), (knn.decision_function(_codes(detector, X_new))
                                                                   - mean) / spread, rtol=1e-6, atol=1e-9)
    # a reference row's training score leaves the row itself out (PyOD's decision_scores_),
    # unlike scoring the same code as a new row, whose nearest reference code is itself
    train_codes = _codes(detector, X)
    in_reference = np.array([np.any(np.all(np.isclose(reference, code), axis=1)) for code in train_codes])
    assert 150 < in_reference.sum() <= 200
    training = (detector.decision_scores_ * spread + mean)[in_reference]  # the reference keeps the rows' order
    np.testing.assert_allclose(training, knn.decision_scores_, rtol=1e-6)
    as_new = knn.decision_function(train_codes[in_reference])
    assert np.all(as_new <= training + 1e-9) and np.mean(as_new < training - 1e-9) > 0.9


@pytest.mark.parametrize("name", latent.CODE_DETECTORS)
def test_every_code_detector_scores_rows_independently_and_round_trips(name, tmp_path):
    check_detector(AutoEncoder(latent_detector=name, epochs=2, random_state=0, n_members=2, member_subsample=None))
    X = np.random.RandomState(1).normal(size=(120, 4))
    fitted = AutoEncoder(latent_detector=name, epochs=2, random_state=0, n_members=1).fit(X)
    fitted.save(tmp_path / "m.adscore")
    np.testing.assert_array_equal(pyod_ae_ext.load(tmp_path / "m.adscore").decision_function(X),
                                  fitted.decision_function(X))


@pytest.mark.parametrize("name", ["ecod", "copod", "iforest2", "ae"])
def test_latent_detector_names_a_row_independent_pyod_detector(name):
    with pytest.raises(ParameterError, match=r"latent_detector must be None \(the kNN distance\) or a PyOD detector "
                                             r"whose score .* 'iforest', 'knn', .*'loda'; got"):
        AutoEncoder(latent_detector=name).fit(np.zeros((20, 3)))


def test_a_latent_detector_that_cannot_fit_the_reference_says_so():
    with pytest.raises(ParameterError, match=r"latent_detector='knn' could not be fitted on 4 reference codes"):
        AutoEncoder(latent_detector="knn", n_members=1, epochs=1, random_state=0).fit(
            np.random.RandomState(0).normal(size=(4, 3)))


# ---- the encoder's features as the latent space (latent_space="features") -----------


def _unit_features(detector, X):
    x = detector.network_input(X)
    with torch.no_grad():
        features = detector.net_.encoder[:-1](x)  # the MLP encoder: hidden layers, then the code layer
    return features / features.norm(dim=1, keepdim=True)


def test_feature_space_is_the_distance_between_unit_length_features_before_the_code_layer(tmp_path):
    rng = np.random.RandomState(5)
    X, new = rng.normal(size=(200, 6)), rng.normal(size=(20, 6)) * 1.5
    detector = AutoEncoder(n_members=1, epochs=2, random_state=0, latent_space="features", latent_knn_weight=1.0,
                           latent_knn_k=3).fit(X)
    assert detector.latent_reference_.shape == (200, detector.hidden_widths()[-1])
    np.testing.assert_allclose(detector.latent_reference_.norm(dim=1).numpy(), 1.0, rtol=1e-6)
    distances = torch.cdist(_unit_features(detector, new).double(), detector.latent_reference_.double())
    _, _, mean, std = detector.latent_standardisers_
    expected = (distances.topk(3, largest=False).values.mean(1).numpy() - mean) / std
    np.testing.assert_allclose(detector.decision_function(new), expected, rtol=1e-5, atol=1e-6)
    path = tmp_path / "features.adscore"
    detector.save(path)
    np.testing.assert_array_equal(pyod_ae_ext.load(path).decision_function(new), detector.decision_function(new))


def test_feature_space_compares_directions_so_a_longer_feature_vector_scores_the_same():
    """Deep SVDD's encoder has no biases and ReLU is positively homogeneous, so 3x has three
    times x's features: the same direction, the same feature-space score. Codes are three
    times longer, so the code-space score tells them apart."""
    X = np.random.RandomState(6).normal(size=(200, 5))
    rows = X[:10]
    params = dict(n_members=1, epochs=2, random_state=0, standardize=False, latent_knn_weight=1.0)
    by_features = pyod_ae_ext.make_detector("deep-svdd", latent_space="features", **params).fit(X)
    np.testing.assert_allclose(by_features.decision_function(3 * rows), by_features.decision_function(rows),
                               rtol=1e-4, atol=1e-4)
    by_codes = pyod_ae_ext.make_detector("deep-svdd", latent_space="code", **params).fit(X)
    assert np.all(by_codes.decision_function(3 * rows) > by_codes.decision_function(rows))


def test_auto_takes_the_space_and_weight_of_the_backbone():
    conv = pyod_ae_ext.make_detector("toll", backbone="conv")
    assert (conv.resolved_latent_space(), conv.resolved_latent_weight()) == ("features", 0.8)
    mlp = pyod_ae_ext.make_detector("toll")
    assert (mlp.resolved_latent_space(), mlp.resolved_latent_weight()) == ("code", 0.5)
    chosen = pyod_ae_ext.make_detector("toll", backbone="conv", latent_space="code", latent_knn_weight=0.3)
    assert (chosen.resolved_latent_space(), chosen.resolved_latent_weight()) == ("code", 0.3)
    assert pyod_ae_ext.make_detector("vae", backbone="conv").resolved_latent_weight() == 0.0
    images = np.random.RandomState(7).uniform(0, 255, size=(64, 64))
    fitted = pyod_ae_ext.make_detector("toll", backbone="conv", epochs=1, random_state=0).fit(images)
    assert fitted.latent_reference_.shape == (64, 128)  # 8 x 8 -> 32 x 4 x 4 -> 64 x 2 x 2 -> 128 x 1 x 1


@pytest.mark.parametrize("params, message", [({"latent_space": "pixels"}, "latent_space must be one of"),
                                             ({"latent_knn_weight": "often"}, "latent_knn_weight must be one of")])
def test_invalid_latent_space_or_weight_names_the_choices(params, message):
    with pytest.raises(ParameterError, match=message):
        AutoEncoder(n_members=1, **params).fit(np.zeros((10, 2)))


class _Unstacked(torch.nn.Module):
    def __init__(self, n_features):
        super().__init__()
        self.encoder = torch.nn.Linear(n_features, 2)
        self.decoder = torch.nn.Linear(2, n_features)

    def forward(self, x):
        z = self.encoder(x)
        return z, self.decoder(z)


class _UnstackedEncoder(AutoEncoder):
    def build_network(self, n_features):
        return _Unstacked(n_features)


def test_features_of_an_encoder_that_is_not_sequential_are_a_clear_error():
    X = np.random.RandomState(8).normal(size=(50, 3))
    _UnstackedEncoder(n_members=1, epochs=1, latent_space="code").fit(X)
    with pytest.raises(ParameterError, match="no sequential encoder to take features from"):
        _UnstackedEncoder(n_members=1, epochs=1, latent_space="features").fit(X)
