"""``contamination`` as PyOD takes it: a fraction, or a thresholder object (e.g. pythresh's).

PyOD's :class:`~pyod.models.base.BaseDetector` accepts, instead of a fraction, any
object with ``fit(scores)`` that sets ``labels_`` (1 = anomaly) and ``thresh_``, such as
the thresholders of `pythresh <https://github.com/KulikDM/pythresh>`_ (``IQR()``,
``MAD()``, ``FILTER()``, ...). PyOD then leaves ``threshold_`` on the thresholder's own
scale (pythresh's is the training scores min-max normalised), while everything in
adscore (``predict``, ``score``'s ``label`` column, ``evaluate``, streaming) compares raw
scores with ``threshold_``. :class:`ThresholderSupport` runs PyOD's own path and then
expresses the thresholder's decision on the raw scale: ``threshold_`` is the highest
training score the thresholder left unflagged, so ``decision_scores_ > threshold_``
reproduces its training labels exactly, and ``predict`` flags new rows above it (the
same rule a saved model applies).

A model file stores the result, not the object: ``contamination`` is saved as the
fraction of training rows the thresholder flagged (it must be in (0, 0.5], like any
contamination) and the metadata entry ``thresholder`` says which thresholder chose the
threshold (see :func:`pyod_ae_ext.persistence.read_metadata`). A loaded model applies the
saved threshold; refitting it uses the saved fraction.

Nothing here imports torch.
"""
from __future__ import annotations

import copy
import numbers

import numpy as np
from pyod.models.base import BaseDetector

from .errors import ParameterError


def is_fraction(contamination) -> bool:
    """True for a numeric contamination (PyOD's percentile rule), False for a thresholder object."""
    return isinstance(contamination, numbers.Real) and not isinstance(contamination, bool)


def is_thresholder(value) -> bool:
    """An object PyOD accepts as contamination: it has ``fit(scores)`` (and is no number or string)."""
    return not isinstance(value, (numbers.Number, str, bytes)) and callable(getattr(value, "fit", None))


def check_contamination(contamination) -> None:
    """Raise :class:`ParameterError` unless ``contamination`` is a fraction in (0, 0.5] or a thresholder."""
    if is_fraction(contamination):
        if not 0 < contamination <= 0.5:
            raise ParameterError(f"contamination must be in (0, 0.5], got {contamination!r}")
        return
    if not is_thresholder(contamination):
        raise ParameterError(f"contamination must be a fraction in (0, 0.5] or a thresholder object with "
                             f"fit(scores) and labels_ (e.g. pythresh.thresholds.iqr.IQR()), got {contamination!r}")


def threshold_labels(thresholder, values) -> tuple[np.ndarray, float]:
    """Fit a copy of ``thresholder`` on ``values``; (its 0/1 labels, the highest unflagged value).

    The copy leaves the caller's object untouched. Labels that are not a cut of the
    values (a flagged value at or below an unflagged one) are a :class:`ParameterError`:
    adscore needs one threshold on the score.
    """
    own = copy.deepcopy(thresholder)
    own.fit(values)
    labels = _checked_labels(own, values)
    return labels, highest_unflagged(values, labels)


def highest_unflagged(values, labels) -> float:
    """The largest value with label 0: ``values > it`` is exactly the flagged set for a cut.

    All flagged: the next float below the smallest value; none flagged: the largest value.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    inliers = values[labels == 0]
    if inliers.size == 0:
        return float(np.nextafter(values.min(), -np.inf))
    return float(inliers.max())


def _checked_labels(thresholder, values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).ravel()
    name = type(thresholder).__name__
    try:
        labels = np.asarray(thresholder.labels_).ravel()
    except AttributeError:
        raise ParameterError(f"the thresholder {name} set no labels_ when fitted; give a thresholder whose "
                             "fit(scores) sets labels_ (as pythresh's do), or a numeric contamination") from None
    if labels.shape != values.shape or not np.isin(labels, (0, 1)).all():
        raise ParameterError(f"the thresholder {name} gave labels_ that are not one 0/1 label per score")
    labels = labels.astype(int)
    if labels.any() and (~labels.astype(bool)).any() and values[labels == 1].min() <= values[labels == 0].max():
        raise ParameterError(f"the thresholder {name} flags a score at or below one it leaves unflagged, so no "
                             "single threshold reproduces it; use a thresholder that cuts the scores, or a "
                             "numeric contamination")
    return labels


class ThresholderSupport:
    """Mixin for PyOD detectors: a thresholder object as ``contamination``, on the raw score scale.

    Goes before :class:`~pyod.models.base.BaseDetector` in the bases. With a numeric
    contamination everything is PyOD's own code.
    """

    def _process_decision_scores(self):
        if is_fraction(self.contamination):
            return BaseDetector._process_decision_scores(self)
        try:
            BaseDetector._process_decision_scores(self)  # PyOD's path: fits the thresholder
        except AttributeError as exc:
            raise ParameterError(f"the thresholder {type(self.contamination).__name__} is not one PyOD accepts: "
                                 f"after fit(scores) it has no {exc.name or 'labels_ or thresh_'} (PyOD reads "
                                 "labels_ and thresh_); give a pythresh thresholder or a numeric contamination") \
                from None
        scores = np.asarray(self.decision_scores_, dtype=np.float64).ravel()
        self.labels_ = _checked_labels(self.contamination, scores)
        self.threshold_ = highest_unflagged(scores, self.labels_)
        return self

    def predict(self, X, return_confidence=False):
        """PyOD's ``predict``: 1 for rows scoring above ``threshold_``, 0 otherwise.

        With a thresholder as ``contamination``, ``threshold_`` is the cut it chose on the
        training scores (as a saved model applies it).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        return_confidence : bool, default False
            Also return :meth:`predict_confidence`.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        confidence : ndarray of shape (n_samples,), only with ``return_confidence``
        """
        return BaseDetector.predict(self._with_realised_fraction(), X, return_confidence)

    def predict_confidence(self, X):
        """PyOD's ``predict_confidence``; a thresholder counts as the fraction it flagged in training."""
        return BaseDetector.predict_confidence(self._with_realised_fraction(), X)

    def _with_realised_fraction(self):
        """``self``, or a shallow copy whose contamination is the fraction its thresholder flagged."""
        if is_fraction(self.contamination) or not hasattr(self, "labels_"):
            return self
        view = copy.copy(self)
        view.contamination = float(np.mean(self.labels_))
        return view


def describe_thresholder(thresholder, labels) -> dict:
    """The metadata entry ``thresholder`` of a model file: which object chose the threshold, and its result."""
    cls = type(thresholder)
    labels = np.asarray(labels).ravel()
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "params": _plain_params(thresholder),
            "flagged": int(labels.sum()), "rows": int(labels.size)}


def _plain_params(thresholder) -> dict:
    """The thresholder's parameters that are plain JSON values (for the record only; never used to build one)."""
    get_params = getattr(thresholder, "get_params", None)
    try:
        params = get_params(deep=False) if callable(get_params) else {}
    except Exception:  # a third-party object; the class name is record enough
        return {}
    plain = (str, bool, int, float, type(None))
    return {str(k): v for k, v in params.items() if isinstance(v, plain)
            and not (isinstance(v, float) and not np.isfinite(v))}
