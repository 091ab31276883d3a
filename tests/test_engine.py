"""The shared engine: checks, standardisation, seeding, early stopping, devices."""
import numpy as np
import pandas as pd
import pytest
import torch

import pyod_ae_ext
from pyod_ae_ext.engine import resolve_device
from pyod_ae_ext.errors import DataError, DeviceError, ParameterError, TrainingError
from pyod_ae_ext.plugins.autoencoder import AutoEncoder


def test_non_finite_input_names_the_column(blobs):
    train, _ = blobs
    frame = pd.DataFrame(train, columns=list("abcde"))
    frame.loc[17, "c"] = np.nan
    with pytest.raises(DataError, match=r"nan in feature 'c' at row 17"):
        AutoEncoder(n_members=1, epochs=1).fit(frame)
    bad = train.copy()
    bad[3, 4] = np.inf
    with pytest.raises(DataError, match=r"inf in feature 'column 4' at row 3"):
        AutoEncoder(n_members=1, epochs=1).fit(bad)


@pytest.mark.parametrize("X, message", [
    (np.zeros((0, 3)), "empty"),
    (np.zeros(5), "2-D"),
    (np.array([["a", "b"], ["c", "d"]]), "numeric"),
    (np.zeros((1, 3)), "at least 2 rows"),
])
def test_unusable_input_is_a_clear_error(X, message):
    with pytest.raises(DataError, match=message):
        AutoEncoder(n_members=1, epochs=1).fit(X)


def test_feature_count_is_enforced_when_scoring(blobs):
    train, _ = blobs
    detector = AutoEncoder(n_members=1, epochs=1, random_state=0).fit(train)
    with pytest.raises(DataError, match="has 4 features but the detector was fitted on 5"):
        detector.decision_function(train[:, :4])


def test_dataframe_columns_are_matched_by_name(blobs):
    train, test = blobs
    columns = list("abcde")
    detector = AutoEncoder(n_members=1, epochs=2, random_state=0).fit(pd.DataFrame(train, columns=columns))
    shuffled = pd.DataFrame(test, columns=columns)[["e", "d", "c", "b", "a"]].assign(extra=1.0)
    np.testing.assert_allclose(detector.decision_function(shuffled), detector.decision_function(test))
    with pytest.raises(DataError, match="lacks the feature"):
        detector.decision_function(shuffled.drop(columns="c"))


def test_constant_feature_is_standardised_safely(blobs):
    train, test = blobs
    train = np.column_stack([train, np.full(len(train), 7.0)])
    test = np.column_stack([test, np.full(len(test), 7.0)])
    detector = AutoEncoder(n_members=1, epochs=2, random_state=0).fit(train)
    # a constant feature gets the pooled floor: a tenth of the median feature's standard deviation
    assert detector.scaler_scale_[-1] == pytest.approx(0.1 * np.median(train[:, :-1].std(axis=0)))
    assert detector.scaler_mean_[-1] == 7.0
    assert np.isfinite(detector.decision_function(test)).all()
    test[:, -1] = 8.0  # a value the training data never had: scored, finite
    assert np.isfinite(detector.decision_function(test)).all()


@pytest.mark.parametrize("params, name", [
    (dict(lr=-1), "lr"), (dict(epochs=1.5), "epochs"), (dict(hidden_dims=[64, 0]), "hidden_dims"),
    (dict(activation="swish"), "activation"), (dict(dropout=1.5), "dropout"),
    (dict(validation_fraction=0.9), "validation_fraction"), (dict(device="tpu"), "device"),
    (dict(corruption="salt"), "corruption"), (dict(contamination=0.7), "contamination"),
])
def test_bad_engine_parameters_are_clear_errors(blobs, params, name):
    with pytest.raises(ParameterError, match=name):
        AutoEncoder(n_members=1, **params).fit(blobs[0])


def test_non_finite_loss_stops_training_with_advice(blobs):
    train, _ = blobs
    with pytest.raises(TrainingError, match="lower the learning rate"):
        AutoEncoder(n_members=1, lr=1e30, epochs=3, random_state=0).fit(train * 1e6)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_clear_error(blobs):
    with pytest.raises(DeviceError, match="no usable CUDA GPU"):
        AutoEncoder(n_members=1, device="cuda", epochs=1).fit(blobs[0])
    assert resolve_device("auto").type == "cpu"


def test_seed_reproducible_and_leaves_global_rng_alone(blobs):
    train, test = blobs
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = AutoEncoder(n_members=1, epochs=3, dropout=0.2, random_state=7).fit(train)
    after = torch.rand(3)
    torch.testing.assert_close(before, after)
    b = AutoEncoder(n_members=1, epochs=3, dropout=0.2, random_state=7).fit(train)
    c = AutoEncoder(n_members=1, epochs=3, dropout=0.2, random_state=8).fit(train)
    np.testing.assert_array_equal(a.decision_function(test), b.decision_function(test))
    assert not np.array_equal(a.decision_function(test), c.decision_function(test))


def test_early_stopping_restores_the_best_epoch(blobs):
    train, _ = blobs
    detector = AutoEncoder(n_members=1, epochs=200, validation_fraction=0.2, patience=3, lr=3e-2, random_state=0).fit(train)
    val = detector.history_["val_loss"]
    assert detector.n_epochs_ == len(val) < 200
    best = int(np.argmin(val))
    assert len(val) - 1 - best == 3  # stopped after `patience` epochs without improvement
    restored = detector.evaluate_loss(detector.net_, detector._split_validation(detector._to_tensor(train))[1])
    assert restored == pytest.approx(val[best], rel=1e-5)


def test_training_reduces_the_loss(blobs):
    detector = AutoEncoder(n_members=1, epochs=30, random_state=0).fit(blobs[0])
    assert detector.history_["loss"][-1] < 0.5 * detector.history_["loss"][0]


def test_verbose_reports_on_stderr_only(blobs, capsys):
    AutoEncoder(n_members=1, epochs=2, verbose=True, validation_fraction=0.2, random_state=0).fit(blobs[0])
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "epoch 2/2" in captured.err and "val_loss" in captured.err
    AutoEncoder(n_members=1, epochs=2, random_state=0).fit(blobs[0])
    assert capsys.readouterr().err == ""


def test_batch_norm_dropout_and_odd_batch_sizes(blobs):
    train, test = blobs
    detector = AutoEncoder(n_members=1, batch_norm=True, dropout=0.2, batch_size=199, epochs=2, random_state=0).fit(train)
    assert np.isfinite(detector.decision_function(test)).all()


def test_denoising_and_activity_penalty(blobs):
    train, test = blobs
    for params in (dict(corruption="gaussian", corruption_level=0.3), dict(corruption="mask", corruption_level=0.2),
                   dict(activity_l1=0.1)):
        detector = AutoEncoder(n_members=1, epochs=3, random_state=0, **params).fit(train)
        assert np.isfinite(detector.decision_function(test)).all()


def test_activity_penalty_makes_codes_sparser(blobs):
    train, _ = blobs

    def code_l1(detector):
        with torch.inference_mode():
            z, _ = detector.net_.eval()(detector._to_tensor(train))
        return z.abs().sum(1).mean().item()

    plain = AutoEncoder(n_members=1, epochs=30, random_state=0).fit(train)
    sparse = AutoEncoder(n_members=1, epochs=30, random_state=0, activity_l1=0.5).fit(train)
    assert code_l1(sparse) < 0.5 * code_l1(plain)


def test_make_detector_unknown_name_and_parameter():
    with pytest.raises(pyod_ae_ext.AdscoreError, match=r"unknown detector 'tol'.*Did you mean 'toll'"):
        pyod_ae_ext.make_detector("tol")
    with pytest.raises(ParameterError, match=r"unknown parameter\(s\) 'lamda'.*valid parameters:.*lam"):
        pyod_ae_ext.make_detector("toll", lamda=1)
    assert type(pyod_ae_ext.make_detector("isolation-forest")).__name__ == "IForest"
