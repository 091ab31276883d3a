"""Sequence backbones (lstm, gru, conv1d) for every family, and the VRAE."""
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import pyod_ae_ext
from pyod_ae_ext.backbones_sequence import conv_lengths
from pyod_ae_ext.errors import ModelFileError, ParameterError
from pyod_ae_ext.plugins.vrae import VRAE
from pyod_ae_ext.testing import check_detector

from model_payloads import rewrite_model, write_model

FAMILIES = ["ae", "toll", "rdae-l1", "rdae-l21", "vae", "vrae", "ksparse-ae", "deep-ocsvm", "deep-svdd"]
SEQUENCE_BACKBONES = ["lstm", "gru", "conv1d"]
STEPS, CHANNELS = 12, 2


def sequences(rows, steps=STEPS, channels=CHANNELS, seed=0):
    """Rows of phase-shifted sines (channel c has frequency c + 1), flattened time-major."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, size=(rows, 1, 1))
    t = np.arange(steps)[None, :, None]
    frequency = (np.arange(channels) + 1)[None, None, :]
    values = np.sin(2 * np.pi * frequency * t / steps + phase) + 0.05 * rng.normal(size=(rows, steps, channels))
    return values.reshape(rows, steps * channels)


def sequence_contract_data(seed=0):
    """Train and test sequences; the first 10 test rows carry a large spike."""
    train, test = sequences(200, seed=seed), sequences(60, seed=seed + 1)
    test[:10, 6 * CHANNELS] += 6.0
    return train, test


def _family_params(name, backbone):
    params = {"backbone": backbone, "input_shape": (STEPS, CHANNELS), "epochs": 2, "random_state": 0,
              "hidden_dims": (8,)}
    if name == "ksparse-ae":
        params.update(tied=False, k=4)
    return params


# vrae is recurrent by definition: its refusal of conv1d is tested below
@pytest.mark.parametrize("name, backbone", [(name, backbone) for name in FAMILIES for backbone in SEQUENCE_BACKBONES
                                            if (name, backbone) != ("vrae", "conv1d")])
def test_every_family_fits_scores_and_round_trips_on_sequences(name, backbone, tmp_path):
    X = sequences(48)
    params = _family_params(name, backbone)
    if name == "deep-svdd" and backbone != "conv1d":
        with pytest.raises(ParameterError, match=r"Ruff et al. 2018, Prop. 3.*backbone='conv1d'"):
            pyod_ae_ext.make_detector(name, **params).fit(X)
        return
    detector = pyod_ae_ext.make_detector(name, **params).fit(X)
    scores = detector.decision_function(X[:7])
    assert scores.shape == (7,) and np.isfinite(scores).all()
    loaded = pyod_ae_ext.load(write_model(tmp_path / "m.adscore", detector))
    np.testing.assert_array_equal(loaded.decision_function(X[:7]), scores)


@pytest.mark.parametrize("name, backbone", [("ae", "conv1d"), ("ae", "gru"), ("vrae", "lstm"), ("toll", "lstm")])
def test_the_detector_contract_holds_on_sequences(name, backbone):
    detector = pyod_ae_ext.make_detector(name, backbone=backbone, input_shape=(STEPS, CHANNELS), hidden_dims=(16,),
                                         epochs=15, lr=3e-3, random_state=0)
    check_detector(detector, data=sequence_contract_data())


def test_conv1d_deep_svdd_network_has_no_additive_constant():
    """phi(0) = 0 and phi(a x) = a phi(x) for a > 0: only a bias-free (leaky) ReLU network is positively homogeneous."""
    detector = pyod_ae_ext.make_detector("deep-svdd", backbone="conv1d", input_shape=(STEPS, CHANNELS),
                                         hidden_dims=(8, 8), epochs=2, random_state=0, device="cpu").fit(sequences(48))
    encoder = detector.net_.encoder.eval()
    x = torch.randn(5, STEPS * CHANNELS)
    with torch.no_grad():
        assert torch.equal(encoder(torch.zeros(1, STEPS * CHANNELS)), torch.zeros(1, detector.latent_dim))
        torch.testing.assert_close(encoder(2.5 * x), 2.5 * encoder(x), rtol=1e-5, atol=1e-6)
    plain = pyod_ae_ext.make_detector("ae", backbone="conv1d", input_shape=(STEPS, CHANNELS), hidden_dims=(8, 8),
                                      epochs=1, random_state=0, device="cpu").fit(sequences(48))
    with torch.no_grad():  # with biases it is not
        assert plain.net_.encoder(torch.zeros(1, STEPS * CHANNELS)).abs().max() > 0


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_recurrent_weights_are_shared_over_time(cell):
    """The same network reads a sequence of any length; the decoder is causal, so a longer
    sequence decoded from the same code starts with the shorter one's steps."""
    short = pyod_ae_ext.make_detector("ae", backbone=cell, input_shape=(8, CHANNELS), hidden_dims=(6,))
    long = pyod_ae_ext.make_detector("ae", backbone=cell, input_shape=(20, CHANNELS), hidden_dims=(6,))
    torch.manual_seed(0)
    short_net, long_net = short.build_network(8 * CHANNELS), long.build_network(20 * CHANNELS)
    assert sum(p.numel() for p in short_net.parameters()) == sum(p.numel() for p in long_net.parameters())
    long_net.load_state_dict(short_net.state_dict())
    code = torch.randn(4, short.latent_dim)
    with torch.no_grad():
        torch.testing.assert_close(long_net.decoder(code)[:, :8 * CHANNELS], short_net.decoder(code))


@pytest.mark.parametrize("steps", [1, 7, 13, 64])
def test_conv1d_restores_every_length_exactly(steps):
    assert conv_lengths(13, 3) == [13, 7, 4, 2]
    detector = pyod_ae_ext.make_detector("vae", backbone="conv1d", input_shape=(steps, 3), hidden_dims=(4, 4, 4),
                                         variance="sample")
    net = detector.build_network(steps * 3)
    x = torch.randn(2, steps * 3)
    mean, variance = net.decode(net.encode(x)[0])
    assert mean.shape == variance.shape == x.shape


def test_a_spike_is_reported_at_its_time_step_and_channel():
    """Per-feature contributions are per (step, channel), time-major, as the flat row is."""
    X = sequences(300)
    detector = pyod_ae_ext.make_detector("ae", backbone="conv1d", input_shape=(STEPS, CHANNELS), hidden_dims=(16, 16),
                                         latent_dim=4, epochs=30, lr=3e-3, random_state=0,
                                         latent_knn_weight=0.0).fit(X)
    test = sequences(20, seed=5)
    step, channel = 7, 1
    test[:, step * CHANNELS + channel] += 5.0
    peaks = detector.feature_contributions(test).argmax(axis=1)
    assert (peaks == step * CHANNELS + channel).mean() >= 0.9


@pytest.mark.parametrize("params, fragment", [
    ({"backbone": "lstm", "input_shape": (5, 5)}, r"input_shape=\(5, 5\) holds 25 values per row but the data has 24"),
    ({"backbone": "gru", "input_shape": (2, 3, 4)}, r"input_shape must be \(time_steps, channels\)"),
    ({"backbone": "lstm", "batch_norm": True}, "batch_norm=True is not available"),
    ({"backbone": "lstm", "hidden_dims": ()}, "needs at least one recurrent layer"),
])
def test_bad_sequence_parameters_are_refused(params, fragment):
    with pytest.raises(ParameterError, match=fragment):
        pyod_ae_ext.make_detector("ae", epochs=1, **params).fit(sequences(20))


def test_input_shape_none_reads_each_column_as_a_time_step():
    """Input mode 2: a table whose rows are univariate sequences, one score per row."""
    X = sequences(40, channels=1)
    detector = pyod_ae_ext.make_detector("ae", backbone="gru", epochs=1, random_state=0).fit(X)
    first_layer = detector.net_.encoder[1].stack.layers[0]
    assert first_layer.input_size == 1 and detector.decision_function(X).shape == (40,)


# ---- VRAE ------------------------------------------------------------------------


def test_vrae_is_registered_with_a_recurrent_default():
    detector = pyod_ae_ext.make_detector("vrae")
    assert isinstance(detector, VRAE) and detector.backbone == "lstm"
    with pytest.raises(ParameterError, match="vrae is recurrent.*use detector 'vae'"):
        pyod_ae_ext.make_detector("vrae", backbone="conv1d").fit(sequences(20))


def test_vrae_score_is_the_reconstruction_probability():
    """score(x) = -(1/L) sum_l log N(x | m(z_l), v), z_l = mu(x) + sigma(x) eps_l (An & Cho 2015)."""
    X = sequences(64)
    detector = VRAE(input_shape=(STEPS, CHANNELS), hidden_dims=(8,), epochs=3, n_samples=4, random_state=0,
                    device="cpu").fit(X)
    x = detector.network_input(X[:5])
    net = detector.net_.eval()
    eps = torch.randn(4, detector.latent_dim, generator=torch.Generator().manual_seed(detector.seed_ + 1))
    with torch.no_grad():
        mu, logvar = net.encode(x)
        variance = net.feature_variance
        log_p = [-0.5 * (math.log(2 * math.pi) + variance.log() + (x - net.decoder(mu + (0.5 * logvar).exp() * e))
                        .pow(2) / variance).sum(dim=1) for e in eps]
    expected = -torch.stack(log_p).mean(dim=0).double().numpy()
    np.testing.assert_allclose(detector.decision_function(X[:5]), expected, rtol=1e-5)


def test_vrae_wasserstein_score_is_the_median_w2_to_the_reference_posteriors():
    """Pereira & Silveira 2018: median_i ||mu - mu_i||^2 + ||sigma - sigma_i||^2 over the reference rows."""
    X = sequences(64)
    detector = VRAE(input_shape=(STEPS, CHANNELS), hidden_dims=(8,), epochs=3, n_reference=15, device="cpu",
                    score_method="wasserstein", random_state=0).fit(X)
    with torch.no_grad():
        mu, logvar = detector.net_.eval().encode(detector.network_input(X[:6]))
        sigma = (0.5 * logvar).exp()
    w2 = ((mu[:, None] - detector.reference_mu_[None]).pow(2).sum(-1)
          + (sigma[:, None] - detector.reference_sigma_[None]).pow(2).sum(-1))
    np.testing.assert_allclose(detector.decision_function(X[:6]), np.median(w2.double().numpy(), axis=1), rtol=1e-5)
    assert detector.reference_mu_.shape == (15, detector.latent_dim)


def test_vrae_ranks_distorted_sequences_above_normal_ones():
    train, test = sequences(300), sequences(60, seed=3)
    labels = np.zeros(60, dtype=int)
    labels[:10] = 1
    # a reversed time axis (the same values in the wrong order) and a flat stretch
    test[:5] = test[:5].reshape(5, STEPS, CHANNELS)[:, ::-1].reshape(5, -1)
    test[5:10, : 6 * CHANNELS] = 0.0
    detector = VRAE(input_shape=(STEPS, CHANNELS), hidden_dims=(32,), epochs=40, lr=3e-3, random_state=0).fit(train)
    assert roc_auc_score(labels, detector.decision_function(test)) > 0.95


def test_a_model_file_with_an_input_shape_that_does_not_fit_is_refused(tmp_path):
    detector = pyod_ae_ext.make_detector("ae", backbone="lstm", input_shape=(STEPS, CHANNELS), hidden_dims=(4,),
                                         epochs=1, random_state=0).fit(sequences(20))

    def edit(meta, tensors):
        meta["params"]["input_shape"] = {"__tuple__": [STEPS * CHANNELS, 2]}

    path = rewrite_model(write_model(tmp_path / "m.adscore", detector), edit)
    with pytest.raises(ModelFileError, match=r"is inconsistent: its parameters do not fit.*input_shape=\(24, 2\)"):
        pyod_ae_ext.load(path)
