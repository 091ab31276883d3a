"""The GPU path: the same scores as the CPU, batch-independent scores, mixed precision, moving models.

Every test that needs CUDA skips cleanly without it; the device-independent parts
(moving a model, loading it onto a device, the ``amp`` parameter) run everywhere.
The figures behind the tolerances are in benchmarks/RESULTS.md, "GPU".
"""
import numpy as np
import pytest
import torch

import pyod_ae_ext
from pyod_ae_ext.errors import DeviceError, ParameterError
from pyod_ae_ext.registry import get_registry

from helpers import assert_clean_error, fast_detector

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")

AUTOENCODERS = [name for name in get_registry().detectors
                if "device" in get_registry().resolve(name).parameters() and name != "ensemble"]
# Structured backbones, each on rows of the shape it reads.
BACKBONES = {
    "conv": ({"backbone": "conv", "hidden_dims": (4, 8)}, 64),
    "toll-mnist": ({"backbone": "toll-mnist"}, 784),
    "lstm": ({"backbone": "lstm", "input_shape": (8, 2), "hidden_dims": (8,)}, 16),
    "conv1d": ({"backbone": "conv1d", "input_shape": (8, 2), "hidden_dims": (4, 8)}, 16),
}


def table(n_rows=240, n_features=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, n_features)) @ rng.normal(size=(n_features, n_features))
    X[:8] += 6.0
    return X


def detector(name, **params):
    defaults = {"latent_dim": 4} if "latent_dim" in get_registry().resolve(name).parameters() else {}
    return fast_detector(name, **{**defaults, **params})


def relative_gap(actual, expected) -> float:
    """Largest absolute difference over the largest magnitude of the expected scores."""
    return float(np.abs(np.asarray(actual) - expected).max() / np.abs(expected).max())


def unit_interval(X):
    return (X - X.min()) / (X.max() - X.min())


# ---- everywhere ---------------------------------------------------------------


def test_moving_a_fitted_detector_keeps_its_scores():
    X = table()
    fitted = detector("toll", device="cpu").fit(X)
    before, training, labels = fitted.decision_function(X), fitted.decision_scores_, fitted.labels_
    assert fitted.to_device("cpu") is fitted
    np.testing.assert_array_equal(fitted.decision_function(X), before)
    np.testing.assert_array_equal(fitted.decision_scores_, training)
    np.testing.assert_array_equal(fitted.labels_, labels)
    assert fitted.predict(X).sum() == (before > fitted.threshold_).sum()


def test_moving_members_and_ensembles_keeps_their_scores():
    X = table()
    members = detector("ae", device="cpu", n_members=3).fit(X)
    ensemble = pyod_ae_ext.make_detector("ensemble", detectors=("toll", "iforest"), random_state=0,
                                 detector_params={"toll": {"epochs": 2, "device": "cpu"}}).fit(X)
    for fitted in (members, ensemble):
        before = fitted.decision_function(X)
        fitted.to_device("auto")
        np.testing.assert_allclose(fitted.decision_function(X), before, rtol=1e-4, atol=1e-6)
    assert ensemble.members_[0].device == "auto" and ensemble.detector_params["toll"]["device"] == "auto"


def test_a_bad_device_is_refused_before_anything_moves():
    fitted = detector("ae", device="cpu").fit(table())
    with pytest.raises(ParameterError, match="device must be"):
        fitted.to_device("gpu")
    assert fitted.device == "cpu" and fitted.device_ == "cpu"


def test_load_places_the_networks_on_the_device_asked_for(tmp_path):
    X = table()
    path = tmp_path / "ens.adscore"
    ensemble = pyod_ae_ext.make_detector("ensemble", detectors=("toll", "iforest"), random_state=0,
                                 detector_params={"toll": {"epochs": 2, "device": "cpu"}}).fit(X)
    ensemble.save(path)
    loaded = pyod_ae_ext.load(path, device="auto")
    toll = loaded.members_[0]
    assert toll.device == "auto" and loaded.detector_params["toll"]["device"] == "auto"
    np.testing.assert_allclose(loaded.decision_function(X), ensemble.decision_function(X), rtol=1e-4, atol=1e-6)
    with pytest.raises(ParameterError, match="device must be"):
        pyod_ae_ext.load(path, device="gpu")


@pytest.mark.skipif(CUDA, reason="this machine has a GPU")
def test_loading_onto_a_missing_gpu_is_a_clear_error(tmp_path):
    path = tmp_path / "ae.adscore"
    detector("ae", device="cpu").fit(table()).save(path)
    with pytest.raises(DeviceError, match="no usable CUDA GPU"):
        pyod_ae_ext.load(path, device="cuda")


def test_amp_is_checked_and_does_nothing_on_the_cpu():
    X = table()
    with pytest.raises(ParameterError, match="amp must be True or False"):
        detector("ae", amp="yes").fit(X)
    plain = detector("toll", device="cpu").fit(X).decision_function(X)
    np.testing.assert_array_equal(detector("toll", device="cpu", amp=True).fit(X).decision_function(X), plain)


def test_score_device_option(tmp_path):
    from click.testing import CliRunner

    from pyod_ae_ext.cli import cli

    data = tmp_path / "data.csv"
    np.savetxt(data, table(), delimiter=",", header="a,b,c,d,e,f", comments="")
    model = tmp_path / "ae.adscore"
    runner = CliRunner()
    fitted = runner.invoke(cli, ["fit", "-d", "ae", "-p", "epochs=2", "--device", "cpu", str(data), "-o", str(model)])
    assert fitted.exit_code == 0, fitted.output
    on_cpu = runner.invoke(cli, ["score", "-m", str(model), "--device", "cpu", str(data)])
    default = runner.invoke(cli, ["score", "-m", str(model), str(data)])
    assert on_cpu.exit_code == 0 and on_cpu.stdout == default.stdout
    assert_clean_error(runner.invoke(cli, ["score", "-m", str(model), "--device", "gpu", str(data)]),
                       "device must be")


# ---- on a GPU -------------------------------------------------------------------


@needs_cuda
@pytest.mark.parametrize("name", AUTOENCODERS)
def test_cuda_scores_equal_cpu_scores(name):
    X = table()
    fitted = detector(name, device="cpu").fit(X)
    cpu = fitted.decision_function(X)
    gpu = fitted.to_device("cuda").decision_function(X)
    assert fitted.device_ == "cuda"
    assert relative_gap(gpu, cpu) <= 1e-4


@needs_cuda
@pytest.mark.parametrize("backbone", BACKBONES)
def test_cuda_scores_equal_cpu_scores_with_structured_backbones(backbone):
    params, width = BACKBONES[backbone]
    X = unit_interval(table(n_rows=96, n_features=width))
    fitted = detector("toll", device="cpu", epochs=2, **params).fit(X)
    cpu = fitted.decision_function(X)
    assert relative_gap(fitted.to_device("cuda").decision_function(X), cpu) <= 1e-4


@needs_cuda
@pytest.mark.parametrize("name", AUTOENCODERS)
def test_a_fit_on_cuda_follows_the_cpu_fit(name):
    """Same seed, same initial weights and batches: only float rounding (and CUDA's own random streams) differ."""
    X = table()
    cpu = detector(name, device="cpu").fit(X).decision_function(X)
    gpu = detector(name, device="cuda").fit(X).decision_function(X)
    assert np.corrcoef(cpu, gpu)[0, 1] > 0.99


@needs_cuda
@pytest.mark.parametrize("name", AUTOENCODERS)
def test_a_rows_cuda_score_does_not_depend_on_the_rows_scored_with_it(name):
    X = table(n_rows=3000)
    fitted = detector(name, device="cuda").fit(X[:240])
    together = fitted.decision_function(X)
    np.testing.assert_array_equal(fitted.decision_function(X[5:6]), together[5:6])
    np.testing.assert_array_equal(fitted.decision_function(X[1000:2037]), together[1000:2037])


@needs_cuda
def test_the_pinned_copy_equals_the_plain_one(monkeypatch):
    X = table(n_rows=1000)
    fitted = detector("ae", device="cuda").fit(X)
    monkeypatch.setattr("pyod_ae_ext.engine._STANDARDISE_CHUNK_ROWS", 96)  # 11 chunks through 2 buffers
    on_gpu = fitted._to_tensor(X)
    assert on_gpu.is_cuda
    fitted.device_ = "cpu"
    np.testing.assert_array_equal(on_gpu.cpu().numpy(), fitted._to_tensor(X).numpy())


@needs_cuda
@pytest.mark.parametrize("name", ["ae", "toll", "vae", "deep-svdd"])
def test_amp_trains_in_bfloat16_and_ranks_like_float32(name):
    X = table(n_rows=600)
    plain = detector(name, device="cuda", epochs=20).fit(X)
    mixed = detector(name, device="cuda", epochs=20, amp=True).fit(X)
    scores = mixed.decision_function(X)
    assert np.isfinite(scores).all() and scores.dtype == np.float64
    assert np.corrcoef(scores, plain.decision_function(X))[0, 1] > 0.95
    with mixed.scoring_context(rows=4):
        x = torch.zeros(4, X.shape[1], device="cuda")
        assert mixed.net_.encoder(x).dtype == torch.bfloat16


@needs_cuda
def test_members_train_stacked_on_cuda_as_they_do_alone():
    X = table()
    together = detector("ae", device="cuda", n_members=3, epochs=3).fit(X)
    for k, member in enumerate(together.members_):
        alone = detector("ae", device="cuda", epochs=3, random_state=member.random_state).fit(X)
        assert relative_gap(member.decision_function(X), alone.decision_function(X)) <= 1e-4, k


@needs_cuda
def test_a_model_fitted_on_cuda_scores_on_a_cpu(tmp_path):
    X = table()
    fitted = detector("toll", device="cuda").fit(X)
    path = tmp_path / "toll.adscore"
    fitted.save(path)
    loaded = pyod_ae_ext.load(path, device="cpu")
    assert loaded.device_ == "cpu" and next(loaded.net_.parameters()).device.type == "cpu"
    assert relative_gap(loaded.decision_function(X), fitted.decision_function(X)) <= 1e-4
