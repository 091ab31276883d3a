"""The detector contract as a test kit, for plugin authors and for this project's own suite.

::

    from pyod_ae_ext.testing import check_detector

    def test_my_detector_honours_the_contract():
        check_detector(MyDetector(epochs=3, random_state=0))

:func:`check_detector` fits a fresh clone of the detector on small generated data and
checks what every detector registered with adscore promises: PyOD's fitted attributes
and methods (``predict_proba`` with both of PyOD's methods; ``model_`` and ``c_``
where PyOD's deep detectors have them), scikit-learn's parameter conventions, reproducibility from
``random_state``, scores of a row that do not depend on the other rows scored with it,
anomalies that score higher, a saved model file that scores identically (when the
detector is registered) and a joblib round trip. A failed check raises an
``AssertionError`` naming the check and the detector.
"""
from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np

CHECKS = ("fitted_attributes", "scores_and_labels", "anomalies_score_higher", "sklearn_params",
          "same_seed_same_scores", "row_independence", "probabilities", "save_load", "joblib_round_trip",
          "pyod_names")


def contract_data(seed: int = 42):
    """200 training rows and 60 test rows of 5 correlated features; the first 10 test rows are shifted."""
    rng = np.random.RandomState(seed)
    mixing = rng.normal(size=(5, 5))
    train = rng.normal(size=(200, 5)) @ mixing
    test = rng.normal(size=(60, 5)) @ mixing
    test[:10] += 6.0
    return train, test


def check_detector(detector, data=None, contamination: float = 0.1, skip=()) -> None:
    """Run the adscore detector contract on an unfitted ``detector``.

    Parameters
    ----------
    detector : BaseDetector
        Unfitted; it is cloned (with ``contamination`` set) before each fit, so it
        stays unfitted. Give it a ``random_state`` for the reproducibility check.
    data : (train, test) arrays, optional
        Defaults to :func:`contract_data`; the first 10 test rows must be anomalies.
    contamination : float, default 0.1
    skip : iterable of str
        Names from :data:`CHECKS` to leave out (say why in your test).

    Raises
    ------
    AssertionError
        Naming the failed check and the detector.
    """
    from sklearn.base import clone

    unknown = set(skip) - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown check(s) {sorted(unknown)}; known: {', '.join(CHECKS)}")
    train, test = data if data is not None else contract_data()
    name = type(detector).__name__
    fitted = clone(detector).set_params(contamination=contamination)
    if fitted.fit(train) is not fitted:
        raise AssertionError(f"{name}: fit() must return self")
    for check in CHECKS:
        if check not in skip:
            _CHECKS[check](detector, fitted, train, test, contamination, name)


def _fitted_attributes(detector, fitted, train, test, contamination, name):
    for attribute in ("decision_scores_", "threshold_", "labels_"):
        _require(hasattr(fitted, attribute), name, f"a fitted detector has {attribute}")
    scores = np.asarray(fitted.decision_scores_)
    _require(scores.shape == (len(train),), name, f"decision_scores_ has one score per training row, "
                                                  f"got shape {scores.shape}")
    _require(np.isfinite(scores).all(), name, "decision_scores_ are finite")


def _scores_and_labels(detector, fitted, train, test, contamination, name):
    scores = fitted.decision_function(test)
    _require(np.shape(scores) == (len(test),) and np.isfinite(scores).all(), name,
             "decision_function gives one finite score per row")
    _require(set(np.unique(fitted.predict(test))) <= {0, 1}, name, "predict gives 0/1 labels")
    rate = float(np.mean(fitted.labels_))
    _require(contamination - 0.03 <= rate <= contamination + 1 / len(train), name,
             f"labels_ flag about `contamination` of the training rows (flagged {rate:.3f})")
    proba = fitted.predict_proba(test)
    _require(proba.shape == (len(test), 2) and np.allclose(proba.sum(axis=1), 1.0), name,
             "predict_proba gives two columns summing to 1")


def _probabilities(detector, fitted, train, test, contamination, name):
    from scipy.special import erf

    train_scores = np.asarray(fitted.decision_scores_, dtype=np.float64)
    scores = fitted.decision_function(test)
    for method in ("linear", "unify"):
        proba = fitted.predict_proba(test, method=method)
        _require(proba.shape == (len(test), 2) and np.allclose(proba.sum(axis=1), 1.0)
                 and ((proba >= 0) & (proba <= 1)).all(), name,
                 f"predict_proba(method={method!r}) gives two columns of probabilities summing to 1")
    # PyOD's unify (Kriegel et al. 2011): erf of the score standardised on the training scores
    expected = erf((scores - train_scores.mean()) / (train_scores.std() * np.sqrt(2))).clip(0, 1)
    _require(np.allclose(fitted.predict_proba(test, method="unify")[:, 1], expected), name,
             "predict_proba(method='unify') standardises with the training scores' mean and std")


def _pyod_names(detector, fitted, train, test, contamination, name):
    from .engine import AutoEncoderDetector

    if not isinstance(fitted, AutoEncoderDetector):
        return
    import torch

    if getattr(fitted, "members_", None) is not None:  # n_members > 1: PyOD's names live on each member
        for member in fitted.members_:
            _pyod_names(detector, member, train, test, contamination, name)
        return
    model = getattr(fitted, "model_", None)
    _require(isinstance(model, torch.nn.Module) and model is fitted.net_, name,
             "model_ is the fitted torch module (net_), as in PyOD's deep detectors")
    _require(_read_only(fitted, "model_"), name, "model_ is read-only")
    if hasattr(fitted, "center_"):
        centre = getattr(fitted, "c_", None)
        _require(isinstance(centre, torch.Tensor)
                 and np.allclose(centre.detach().cpu().double().numpy(), fitted.center_), name,
                 "c_ is the centre (center_) as a tensor, as in PyOD's DeepSVDD")
        _require(_read_only(fitted, "c_"), name, "c_ is read-only")


def _read_only(obj, attribute) -> bool:
    value = getattr(obj, attribute)
    try:
        setattr(obj, attribute, value)  # the same value: harmless if it is (wrongly) writable
    except AttributeError:
        return True
    return False


def _anomalies_score_higher(detector, fitted, train, test, contamination, name):
    scores = fitted.decision_function(test)
    _require(scores[:10].mean() > scores[10:].mean(), name, "shifted rows score higher than the others")


def _sklearn_params(detector, fitted, train, test, contamination, name):
    from sklearn.base import clone

    params = detector.get_params(deep=False)
    copy = clone(detector)
    _require(copy.get_params(deep=False).keys() == params.keys(), name, "clone keeps every parameter")
    _require(getattr(copy, "decision_scores_", None) is None, name, "a clone is unfitted")
    copy.set_params(contamination=0.2)
    _require(copy.contamination == 0.2, name, "set_params sets a parameter")
    fresh = type(detector)(**params)
    _require(fresh.get_params(deep=False) == params, name,
             "__init__ stores its parameters verbatim (get_params of a new instance is the same)")


def _same_seed_same_scores(detector, fitted, train, test, contamination, name):
    from sklearn.base import clone

    again = clone(fitted).fit(train)
    _require(np.array_equal(fitted.decision_scores_, again.decision_scores_), name,
             "the same random_state and data give identical training scores")
    _require(np.array_equal(fitted.decision_function(test), again.decision_function(test)), name,
             "the same random_state and data give identical scores")


def _row_independence(detector, fitted, train, test, contamination, name):
    scores = fitted.decision_function(test)
    alone = np.array([fitted.decision_function(test[i:i + 1])[0] for i in (0, 1, len(test) - 1)])
    reversed_scores = fitted.decision_function(test[::-1])[::-1]
    _require(np.allclose(alone, scores[[0, 1, len(test) - 1]], rtol=1e-5, atol=1e-6)
             and np.allclose(reversed_scores, scores, rtol=1e-5, atol=1e-6), name,
             "a row's score does not depend on the other rows scored with it")


def _save_load(detector, fitted, train, test, contamination, name):
    import pyod_ae_ext
    from pyod_ae_ext.registry import get_registry

    if get_registry().name_of(fitted) is None:
        return  # only registered detectors have model files
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.adscore"
        pyod_ae_ext.save(fitted, path)
        loaded = pyod_ae_ext.load(path)
    _require(type(loaded) is type(fitted), name, "a saved model loads as the same class")
    _require(loaded.get_params(deep=False) == fitted.get_params(deep=False), name,
             "a saved model keeps its parameters")
    _require(np.array_equal(loaded.decision_function(test), fitted.decision_function(test))
             and np.array_equal(loaded.decision_scores_, fitted.decision_scores_)
             and loaded.threshold_ == fitted.threshold_
             and np.array_equal(loaded.predict_proba(test, method="unify"),
                                fitted.predict_proba(test, method="unify")), name, "a saved model scores identically")


def _joblib_round_trip(detector, fitted, train, test, contamination, name):
    import joblib

    buffer = io.BytesIO()
    joblib.dump(fitted, buffer)
    buffer.seek(0)
    _require(np.array_equal(joblib.load(buffer).decision_function(test), fitted.decision_function(test)), name,
             "a joblib round trip scores identically")


def _require(condition, name, promise):
    if not condition:
        raise AssertionError(f"{name} breaks the detector contract: {promise}")


_CHECKS = {
    "fitted_attributes": _fitted_attributes,
    "scores_and_labels": _scores_and_labels,
    "probabilities": _probabilities,
    "anomalies_score_higher": _anomalies_score_higher,
    "sklearn_params": _sklearn_params,
    "same_seed_same_scores": _same_seed_same_scores,
    "row_independence": _row_independence,
    "save_load": _save_load,
    "joblib_round_trip": _joblib_round_trip,
    "pyod_names": _pyod_names,
}
