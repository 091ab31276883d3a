"""The contract every registered detector honours, ours, PyOD's and third parties'.

A detector joins this suite by being registered: the parameters below are
discovered from the registry, nothing here names a detector.
"""
import io

import joblib
import numpy as np
import pytest
from sklearn.base import clone

import pyod_ae_ext
from pyod_ae_ext.registry import get_registry

from helpers import fast_detector

DETECTORS = list(get_registry().detectors)


def test_every_shipped_family_is_registered():
    expected = {"ae", "toll", "iforest", "ecod", "copod", "knn", "lof", "pca", "ocsvm", "hbos"}
    assert expected <= set(DETECTORS)
    assert set(pyod_ae_ext.available_detectors()) == set(DETECTORS)


@pytest.fixture(params=DETECTORS)
def fitted(request, blobs):
    train, _ = blobs
    detector = fast_detector(request.param, contamination=0.1)
    assert detector.fit(train) is detector
    return request.param, detector


def test_scores_and_labels(fitted, blobs):
    name, detector = fitted
    train, test = blobs
    assert detector.decision_scores_.shape == (len(train),)
    assert np.isfinite(detector.decision_scores_).all()
    scores = detector.decision_function(test)
    assert scores.shape == (len(test),) and np.isfinite(scores).all()
    predictions = detector.predict(test)
    assert set(np.unique(predictions)) <= {0, 1}
    rate = detector.labels_.mean()
    assert 0.1 - 0.03 <= rate <= 0.1 + 1 / len(train), f"{name}: flagged {rate:.3f} of training rows"
    proba = detector.predict_proba(test)
    assert proba.shape == (len(test), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert detector.predict_confidence(test[:5]).shape == (5,)


def test_shifted_rows_score_higher(fitted, blobs):
    name, detector = fitted
    _, test = blobs
    scores = detector.decision_function(test)
    assert scores[:10].mean() > scores[10:].mean(), name


def test_sklearn_clone_and_params(fitted):
    name, detector = fitted
    params = detector.get_params(deep=False)
    copy = clone(detector)
    assert copy.get_params(deep=False).keys() == params.keys()
    assert getattr(copy, "decision_scores_", None) is None  # unfitted
    copy.set_params(contamination=0.2)
    assert copy.contamination == 0.2
    assert pyod_ae_ext.make_detector(name, **params).get_params(deep=False).keys() == params.keys()


def test_same_seed_same_scores(fitted, blobs):
    name, detector = fitted
    train, test = blobs
    again = clone(detector).fit(train)
    np.testing.assert_array_equal(detector.decision_scores_, again.decision_scores_, err_msg=name)
    np.testing.assert_array_equal(detector.decision_function(test), again.decision_function(test))


def test_save_load_identical_scores(fitted, blobs, tmp_path):
    name, detector = fitted
    _, test = blobs
    path = tmp_path / "model.adscore"
    pyod_ae_ext.save(detector, path)
    loaded = pyod_ae_ext.load(path)
    assert type(loaded) is type(detector)
    assert loaded.get_params(deep=False) == detector.get_params(deep=False)
    np.testing.assert_array_equal(loaded.decision_function(test), detector.decision_function(test))
    np.testing.assert_array_equal(loaded.decision_scores_, detector.decision_scores_)
    assert loaded.threshold_ == detector.threshold_
    np.testing.assert_array_equal(loaded.predict(test), detector.predict(test))


def test_joblib_round_trip(fitted, blobs):
    _, detector = fitted
    _, test = blobs
    buffer = io.BytesIO()
    joblib.dump(detector, buffer)
    buffer.seek(0)
    np.testing.assert_array_equal(joblib.load(buffer).decision_function(test), detector.decision_function(test))
