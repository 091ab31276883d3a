"""A thresholder object (pythresh's, or any object PyOD accepts) as ``contamination`` (issue 13)."""
import numpy as np
import pytest
from helpers import fast_detector

import pyod_ae_ext
from pyod_ae_ext.errors import ModelFileError
from pyod_ae_ext.persistence import load_detector, read_metadata, read_model_file, write_model_file

pythresh_iqr = pytest.importorskip("pythresh.thresholds.iqr")


class _FlagNothing:
    """A minimal object PyOD accepts as contamination: fit(scores) sets labels_ and thresh_."""

    def fit(self, scores):
        self.labels_ = np.zeros(len(scores), dtype=int)
        self.thresh_ = None
        return self


class _FlagTheMiddle(_FlagNothing):
    """Labels that no single threshold on the score reproduces."""

    def fit(self, scores):
        order = np.argsort(scores)
        self.labels_ = np.zeros(len(scores), dtype=int)
        self.labels_[order[len(scores) // 2]] = 1
        self.thresh_ = None
        return self


class _NoLabels:
    def fit(self, scores):
        return self


def _iqr_labels(scores):
    return pythresh_iqr.IQR().fit(np.asarray(scores)).labels_


def _assert_threshold_is_the_thresholders(detector, X_new):
    scores = detector.decision_scores_
    np.testing.assert_array_equal(detector.labels_, _iqr_labels(scores))
    np.testing.assert_array_equal(detector.labels_, (scores > detector.threshold_).astype(int))
    assert 0 < detector.labels_.sum() < len(scores)
    np.testing.assert_array_equal(detector.predict(X_new),
                                  (detector.decision_function(X_new) > detector.threshold_).astype(int))


def test_ensemble_with_a_pythresh_thresholder(rows):
    ensemble = pyod_ae_ext.make_detector("ensemble", detectors=("ae", "iforest"), contamination=pythresh_iqr.IQR(),
                                         detector_params={"ae": {"epochs": 2}}, random_state=0).fit(rows)
    _assert_threshold_is_the_thresholders(ensemble, rows[::3] * 1.5)
    # the thresholder thresholds the combined score; members keep a numeric contamination
    assert all(member.contamination == 0.1 for member in ensemble.members_)
    labels, confidence = ensemble.predict(rows, return_confidence=True)
    np.testing.assert_array_equal(labels, ensemble.labels_)
    assert confidence.shape == (len(rows),) and ((0 <= confidence) & (confidence <= 1)).all()


@pytest.mark.parametrize("name", ["rdae-l21", "rdae-l1"])
def test_rdae_auto_lambda_with_a_pythresh_thresholder(name, rows):
    import torch

    detector = fast_detector(name, contamination=pythresh_iqr.IQR(), lam="auto", epochs=4)
    detector.fit(rows)
    _assert_threshold_is_the_thresholders(detector, rows[::3] * 1.5)
    # lambda keeps exactly the groups / entries the thresholder flags in the residual's magnitudes
    residual = torch.as_tensor(np.random.default_rng(1).standard_t(2, size=(120, 4)))
    lam = detector._auto_lambda(residual)
    flagged = _iqr_labels(detector._magnitudes(residual).reshape(-1).numpy()).astype(bool)
    kept = detector._prox(residual, lam)
    kept = (kept != 0).any(dim=1) if name == "rdae-l21" else (kept != 0).reshape(-1)
    np.testing.assert_array_equal(kept.numpy(), flagged)
    if name == "rdae-l21":
        assert detector.outlier_mask_[:6].all()  # the planted rows are in S


def test_thresholder_model_file_saves_the_threshold_not_the_object(rows, tmp_path):
    detector = fast_detector("ae", contamination=pythresh_iqr.IQR(), epochs=2).fit(rows)
    path = tmp_path / "iqr.adscore"
    detector.save(path)
    meta = read_metadata(path)
    flagged = int(detector.labels_.sum())
    assert meta["thresholder"] == {"class": "pythresh.thresholds.iqr.IQR", "params": {"random_state": 1234},
                                   "flagged": flagged, "rows": len(rows)}
    assert meta["params"]["contamination"] == flagged / len(rows)
    loaded = load_detector(path)
    assert loaded.threshold_ == detector.threshold_ and loaded.contamination == flagged / len(rows)
    new = rows[::2] + 0.3
    np.testing.assert_array_equal(loaded.predict(new), detector.predict(new))
    np.testing.assert_allclose(loaded.predict_confidence(new), detector.predict_confidence(new))


@pytest.mark.parametrize("record, problem", [
    ({"class": "x.IQR", "params": {}, "flagged": 999, "rows": 120}, "flagged <= rows"),
    ({"class": "x.IQR", "params": {"f": [1]}, "flagged": 3, "rows": 120}, "plain values"),
    ("IQR", "must be an object"),
    ({"class": "x.IQR", "params": {}, "flagged": 3, "rows": 120}, "not the fraction"),
])
def test_thresholder_metadata_is_checked_on_load(record, problem, rows, tmp_path):
    path = tmp_path / "iqr.adscore"
    fast_detector("ae", contamination=pythresh_iqr.IQR(), epochs=1).fit(rows).save(path)
    meta, tensors = read_model_file(path)
    meta["thresholder"] = record
    write_model_file(path, meta, tensors)
    with pytest.raises(ModelFileError, match=problem):
        load_detector(path)


def test_thresholders_that_cannot_be_recorded_are_clear_errors(rows, tmp_path):
    from pyod_ae_ext.errors import AdscoreError, ParameterError

    none_flagged = fast_detector("ae", contamination=_FlagNothing(), epochs=1).fit(rows)
    assert none_flagged.labels_.sum() == 0 and none_flagged.threshold_ == none_flagged.decision_scores_.max()
    with pytest.raises(AdscoreError, match="flagged 0 of 120 training rows"):
        none_flagged.save(tmp_path / "none.adscore")
    assert not (tmp_path / "none.adscore").exists()
    with pytest.raises(ParameterError, match="no single threshold"):
        fast_detector("ae", contamination=_FlagTheMiddle(), epochs=1).fit(rows)
    with pytest.raises(ParameterError, match="is not one PyOD accepts"):
        fast_detector("ae", contamination=_NoLabels(), epochs=1).fit(rows)
    for bad in ("iqr", True, 0.7):
        with pytest.raises(ParameterError, match="contamination"):
            fast_detector("ae", contamination=bad, epochs=1).fit(rows)
    with pytest.raises(ParameterError, match="contamination"):
        pyod_ae_ext.make_detector("ensemble", contamination="iqr").fit(rows)
    ecod = pyod_ae_ext.make_detector("ecod", contamination=pythresh_iqr.IQR()).fit(rows)
    with pytest.raises(AdscoreError, match="numeric contamination"):
        pyod_ae_ext.save(ecod, tmp_path / "ecod.adscore")


def test_unify_probabilities_of_ensembles_saved_and_with_a_thresholder(rows, tmp_path):
    from scipy.special import erf

    new = rows[::2] * 1.3
    for contamination in (0.1, pythresh_iqr.IQR()):
        ensemble = pyod_ae_ext.make_detector("ensemble", detectors=("ae", "ecod"), combine="max",
                                             contamination=contamination,
                                             detector_params={"ae": {"epochs": 2}}, random_state=0).fit(rows)
        train = ensemble.decision_scores_
        expected = erf((ensemble.decision_function(new) - train.mean()) / (train.std() * np.sqrt(2))).clip(0, 1)
        proba, confidence = ensemble.predict_proba(new, method="unify", return_confidence=True)
        np.testing.assert_allclose(proba[:, 1], expected)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        assert confidence.shape == (len(new),)
        ensemble.save(tmp_path / "ens.adscore")
        loaded = load_detector(tmp_path / "ens.adscore")
        np.testing.assert_array_equal(loaded.predict_proba(new, method="unify"), proba)
