"""Score-combination ensembles of registered detectors (ours, PyOD's and third parties').

:class:`Ensemble` is itself a PyOD :class:`~pyod.models.base.BaseDetector`: it fits
every member on the same data, normalises each member's scores with statistics of
its *training* scores and combines the normalised scores row by row.

The combination rules are those of Aggarwal & Sathe, "Theoretical foundations and
algorithms for outlier ensembles", SIGKDD Explorations 17(1), 2015, as in
``pyod.models.combination``: mean, maximum, median, weighted mean, AOM (average of the
bucket maxima) and MOA (maximum of the bucket averages). They are re-implemented here
(vectorised, a few lines each) rather than called, because ``pyod.models.combination``
imports the optional ``combo`` package, which PyOD does not install, and its static
AOM/MOA refuse a member count that the bucket count does not divide (three members in
two buckets). Where combo's rules apply, the results are identical: members are
shuffled with ``sklearn.utils.shuffle(range(m), random_state=...)`` and cut into
consecutive buckets; here uneven counts give buckets whose sizes differ by at most one
(``numpy.array_split``). The bucket assignment is drawn once, at fit time, from
``random_state`` and stored with the model, so scoring is deterministic.
"""
from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass

import numpy as np
from pyod.models.base import BaseDetector
from sklearn.utils import check_random_state, shuffle
from sklearn.utils.validation import check_is_fitted

from .observers import member_fitted
from .validation import check_choice, check_new_data, check_number, check_training_data
from .errors import AdscoreError, ParameterError, TrainingError
from .thresholding import ThresholderSupport, check_contamination, is_fraction

COMBINATIONS = ("mean", "max", "median", "aom", "moa", "weighted")
NORMALIZATIONS = ("zscore", "rank", "minmax")
DEFAULT_MEMBERS = ("toll", "iforest", "ecod")


# --------------------------------------------------------------------------
# normalisation and combination (pure functions on score matrices)


def fit_normalizer(train_scores: np.ndarray, method: str) -> dict:
    """Statistics of each member's training scores (columns of ``train_scores``).

    ``zscore``: mean and standard deviation; ``minmax``: minimum and range; ``rank``: the
    sorted training scores (the empirical CDF). A constant column gets scale 1.
    """
    S = np.asarray(train_scores, dtype=np.float64)
    if method == "zscore":
        loc, scale = S.mean(axis=0), S.std(axis=0)
    elif method == "minmax":
        loc, scale = S.min(axis=0), S.max(axis=0) - S.min(axis=0)
    elif method == "rank":
        return {"sorted": np.sort(S, axis=0)}
    else:
        raise ParameterError(f"normalize must be one of {', '.join(map(repr, NORMALIZATIONS))}, got {method!r}")
    scale = np.where(scale > 1e-12 * np.maximum(1.0, np.abs(loc)), scale, 1.0)
    return {"loc": loc, "scale": scale}


def apply_normalizer(scores: np.ndarray, method: str, state: dict) -> np.ndarray:
    """Normalise a (rows, members) score matrix with :func:`fit_normalizer` statistics.

    ``rank`` maps a score to the fraction of training scores at or below it, so
    training scores map to ``rank / n_train`` and new scores to [0, 1].
    """
    S = np.asarray(scores, dtype=np.float64)
    if method == "rank":
        ref = state["sorted"]
        counts = [np.searchsorted(ref[:, j], S[:, j], side="right") for j in range(S.shape[1])]
        return np.column_stack(counts) / ref.shape[0]
    return (S - state["loc"]) / state["scale"]


def bucket_assignment(n_members: int, n_buckets: int, random_state=None) -> list:
    """Members shuffled (as combo does) and cut into ``n_buckets`` consecutive buckets."""
    order = shuffle(list(range(n_members)), random_state=random_state)
    return [[int(i) for i in part] for part in np.array_split(np.asarray(order, dtype=int), n_buckets)]


def combine_scores(scores: np.ndarray, method: str, weights=None, buckets=None) -> np.ndarray:
    """Combine a (rows, members) matrix of normalised scores into one score per row.

    mean/max/median across members; ``weighted``: ``sum_j w_j s_j / sum_j w_j``;
    ``aom``: mean over buckets of the maximum within each bucket; ``moa``: maximum over
    buckets of the mean within each bucket (Aggarwal & Sathe 2015).
    """
    S = np.asarray(scores, dtype=np.float64)
    if method == "mean":
        return S.mean(axis=1)
    if method == "max":
        return S.max(axis=1)
    if method == "median":
        return np.median(S, axis=1)
    if method == "weighted":
        w = np.asarray(weights, dtype=np.float64)
        return S @ w / w.sum()
    if method in ("aom", "moa"):
        if not buckets:
            raise ParameterError(f"combine={method!r} needs a bucket assignment")
        inner, outer = (np.max, np.mean) if method == "aom" else (np.mean, np.max)
        per_bucket = np.column_stack([inner(S[:, bucket], axis=1) for bucket in buckets])
        return outer(per_bucket, axis=1)
    raise ParameterError(f"combine must be one of {', '.join(map(repr, COMBINATIONS))}, got {method!r}")


def default_n_buckets(n_members: int) -> int:
    """Buckets for AOM/MOA when ``n_buckets=None``: half the members, at least 2, at most 5."""
    return max(1, min(n_members, 5, max(2, n_members // 2)))


# --------------------------------------------------------------------------
# fitting members (in worker processes when n_jobs != 1)


@dataclass
class _MemberFailure:
    name: str
    error_type: str
    message: str
    adscore_class: type | None


def _fit_member(name, detector, X):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=FutureWarning)
            detector.fit(X)
        return detector
    except Exception as exc:  # reported by the parent with the member's name
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        adscore_class = type(exc) if isinstance(exc, AdscoreError) else None
        if isinstance(exc, (ValueError, TypeError)) and adscore_class is None:
            adscore_class = ParameterError
        return _MemberFailure(name, type(exc).__name__, message, adscore_class)


def _member_error(failure: _MemberFailure) -> AdscoreError:
    text = f"ensemble member {failure.name!r} failed: {failure.message or failure.error_type}"
    cls = failure.adscore_class
    if cls is None:
        return TrainingError(f"ensemble member {failure.name!r} failed: {failure.error_type}: {failure.message}")
    try:
        return cls(text)
    except Exception:  # a third-party error class with another signature
        return AdscoreError(text)


# --------------------------------------------------------------------------
# the detector


class Ensemble(ThresholderSupport, BaseDetector):
    """An ensemble of registered detectors with normalised, combined scores.

    Every member is built with :func:`pyod_ae_ext.make_detector`, fitted on the same
    data, and its scores are normalised with statistics of its own training scores
    before they are combined. Members that accept ``random_state`` get their own seed,
    drawn from the ensemble's ``random_state``; members are fitted in parallel worker
    processes with joblib when ``n_jobs != 1``. A member that fails to fit fails the
    ensemble with an error naming it (nothing is dropped silently).

    Parameters
    ----------
    detectors : sequence of str, default ("toll", "iforest", "ecod")
        Registered detector names or aliases (see ``adscore plugins``); each at most once.
    detector_params : dict or None, default None
        ``{name: {param: value}}`` for members, e.g. ``{"toll": {"lam": 0.5}}``. A
        member's ``contamination`` defaults to the ensemble's when that is a number (a
        thresholder thresholds the combined scores only; members keep their own
        default) and its ``random_state`` to a seed drawn from the ensemble's.
    normalize : {"zscore", "rank", "minmax"}, default "zscore"
        Per-member normalisation fitted on the member's training scores: standard
        score, empirical CDF of the training scores, or min-max scaling.
    combine : {"mean", "max", "median", "aom", "moa", "weighted"}, default "mean"
        Combination of the normalised scores (Aggarwal & Sathe 2015); ``weighted`` is
        the weighted mean with ``weights``.
    weights : sequence of float or None, default None
        One non-negative weight per member (in ``detectors`` order), for ``combine="weighted"``.
    n_buckets : int or None, default None
        Buckets for ``aom``/``moa``, between 1 and the number of members; None uses
        half the members (at least 2, at most 5).
    n_jobs : int, default 1
        Members fitted in parallel (joblib's process pool); -1 uses every core.
        Starting the worker processes takes seconds, so this pays off for large data
        or slow members only. Results are identical to ``n_jobs=1``.
    contamination : float in (0, 0.5] or a thresholder, default 0.1
        Expected fraction of anomalies; sets ``threshold_`` on the combined training
        scores. A thresholder object PyOD accepts (e.g. pythresh's ``IQR()``) chooses
        it from those scores instead (:mod:`pyod_ae_ext.thresholding`).
    random_state : int, RandomState or None, default None
        Seeds the members' seeds and the AOM/MOA bucket assignment.

    Attributes
    ----------
    members_ : list of fitted detectors, in ``detectors`` order.
    member_names_ : list of str, the members' registered names.
    buckets_ : list of lists of member indices (aom/moa) or None.
    decision_scores_, threshold_, labels_ : as in PyOD.

    Examples
    --------
    >>> from pyod_ae_ext.ensemble import Ensemble
    >>> ens = Ensemble(("toll", "iforest"), {"toll": {"epochs": 20}}, combine="max",
    ...                random_state=0).fit(X_train)                      # doctest: +SKIP
    >>> ens.decision_function(X_test)                                    # doctest: +SKIP
    """

    def __init__(self, detectors=DEFAULT_MEMBERS, detector_params=None, normalize="zscore", combine="mean",
                 weights=None, n_buckets=None, n_jobs=1, contamination=0.1, random_state=None):
        # Stored verbatim (scikit-learn convention); checked by check_params() in fit().
        self.detectors = detectors
        self.detector_params = detector_params
        self.normalize = normalize
        self.combine = combine
        self.weights = weights
        self.n_buckets = n_buckets
        self.n_jobs = n_jobs
        self.contamination = contamination
        self.random_state = random_state

    # ---- parameters ---------------------------------------------------------

    def _member_names(self) -> list:
        from .registry import get_registry

        detectors = self.detectors
        if isinstance(detectors, str) or not isinstance(detectors, (list, tuple)) or not detectors:
            raise ParameterError(f"detectors must be a non-empty list of detector names, got {detectors!r}")
        registry = get_registry()
        names = [registry.resolve(name).name for name in detectors]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ParameterError(f"detectors names {', '.join(map(repr, duplicates))} more than once; "
                                 "each detector can be a member once")
        if "ensemble" in names:
            raise ParameterError("an ensemble cannot be a member of an ensemble")
        return names

    def _member_param_sets(self, names) -> list:
        from .registry import get_registry

        given = self.detector_params or {}
        if not isinstance(given, dict):
            raise ParameterError(f"detector_params must be a dict of name -> parameters, got {given!r}")
        registry = get_registry()
        per_member = {name: {} for name in names}
        for key, params in given.items():
            canonical = registry.resolve(key).name if isinstance(key, str) else key
            if canonical not in per_member:
                raise ParameterError(f"detector_params names {key!r}, which is not a member "
                                     f"(members: {', '.join(names)})")
            if not isinstance(params, dict):
                raise ParameterError(f"detector_params[{key!r}] must be a dict of parameters, got {params!r}")
            per_member[canonical].update(params)
        return [per_member[name] for name in names]

    def _build_members(self, seeds=None) -> list:
        from .registry import build_detector

        names = self._member_names()
        members = []
        for i, (name, params) in enumerate(zip(names, self._member_param_sets(names))):
            # a thresholder name (api-habits) is the ensemble's own cut, not the members'
            contamination = self.contamination if is_fraction(self.contamination) else None
            defaults = {"contamination": contamination,
                        "random_state": None if seeds is None else int(seeds[i])}
            member = build_detector(name, params, defaults=defaults, check=False)
            if hasattr(member, "check_params"):
                try:
                    member.check_params()
                except AdscoreError as exc:
                    raise type(exc)(f"ensemble member {name!r}: {exc}") from None
            members.append(member)
        return members

    def check_params(self) -> None:
        """Raise :class:`ParameterError` for any invalid parameter, the members' included."""
        check_choice("normalize", self.normalize, list(NORMALIZATIONS))
        check_choice("combine", self.combine, list(COMBINATIONS))
        check_contamination(self.contamination)
        if isinstance(self.n_jobs, bool) or not isinstance(self.n_jobs, numbers.Integral) or self.n_jobs == 0:
            raise ParameterError(f"n_jobs must be a non-zero integer (-1 for every core), got {self.n_jobs!r}")
        names = self._member_names()
        m = len(names)
        if self.n_buckets is not None:
            check_number("n_buckets", self.n_buckets, 1, m, integer=True)
        if self.combine == "weighted":
            w = self.weights
            if not isinstance(w, (list, tuple)) or len(w) != m:
                raise ParameterError(f"combine='weighted' needs weights: one number per member ({m}: "
                                     f"{', '.join(names)}), got {w!r}")
            for value in w:
                check_number("each weight", value, 0)
            if sum(w) <= 0:
                raise ParameterError("weights must not all be zero")
        elif self.weights is not None:
            raise ParameterError(f"weights are used only with combine='weighted', not combine={self.combine!r}")
        self._build_members()

    # ---- fitting ------------------------------------------------------------

    def fit(self, X, y=None):
        """Fit every member on ``X`` and the normalisation on their training scores."""
        self.check_params()
        X = check_training_data(self, X)
        self._set_n_classes(y)
        rng = check_random_state(self.random_state)
        names = self._member_names()
        seeds = rng.randint(np.iinfo(np.int32).max, size=len(names))
        members = self._build_members(seeds)
        self.members_ = self._fit_members(names, members, X)
        self.member_names_ = names
        train = self._raw_member_scores()
        self.normalizer_ = fit_normalizer(train, self.normalize)
        self.buckets_ = None
        if self.combine in ("aom", "moa"):
            n_buckets = self.n_buckets if self.n_buckets is not None else default_n_buckets(len(names))
            self.buckets_ = bucket_assignment(len(names), int(n_buckets), rng)
        self.decision_scores_ = self._combine(train)
        self._process_decision_scores()
        return self

    def _fit_members(self, names, members, X) -> list:
        if self.n_jobs == 1 or len(members) == 1:
            results = []
            for name, member in zip(names, members):
                results.append(_fit_member(name, member, X))
                member_fitted(name, results[-1])
        else:
            from joblib import Parallel, delayed, effective_n_jobs

            n_jobs = min(effective_n_jobs(self.n_jobs), len(members))
            results = Parallel(n_jobs=n_jobs)(delayed(_fit_member)(n, m, X) for n, m in zip(names, members))
            for name, result in zip(names, results):
                member_fitted(name, result)
        for result in results:
            if isinstance(result, _MemberFailure):
                raise _member_error(result)
        return results

    # ---- scoring ------------------------------------------------------------

    def _raw_member_scores(self, X=None) -> np.ndarray:
        """Members' raw scores of ``X`` (their training scores when None), one column each."""
        columns = []
        for name, member in zip(self.member_names_, self.members_):
            scores = member.decision_scores_ if X is None else member.decision_function(X)
            scores = np.asarray(scores, dtype=np.float64).ravel()
            if not np.isfinite(scores).all():
                raise TrainingError(f"ensemble member {name!r} produced non-finite scores")
            columns.append(scores)
        return np.column_stack(columns)

    def _combine(self, raw: np.ndarray) -> np.ndarray:
        normalised = apply_normalizer(raw, self.normalize, self.normalizer_)
        return combine_scores(normalised, self.combine, self.weights, self.buckets_)

    def member_scores(self, X) -> np.ndarray:
        """Normalised member scores of ``X``, shape (n_samples, n_members), in ``member_names_`` order."""
        check_is_fitted(self, ["members_", "decision_scores_"])
        raw = self._raw_member_scores(self._check_new_data(X))
        return apply_normalizer(raw, self.normalize, self.normalizer_)

    def decision_function(self, X):
        """Combined anomaly scores of ``X`` (higher = more anomalous), shape (n_samples,)."""
        check_is_fitted(self, ["members_", "decision_scores_"])
        return self._combine(self._raw_member_scores(self._check_new_data(X)))

    def _check_new_data(self, X) -> np.ndarray:
        return check_new_data(self, X)

    # ---- persistence --------------------------------------------------------

    def save(self, path, signing_key=None) -> None:
        """Save the fitted ensemble (members included) to one safe model file.

        ``signing_key`` (bytes or str; default ``$ADSCORE_SIGNING_KEY``) signs the file;
        one signature covers every member.
        """
        from .persistence import save_detector

        save_detector(self, path, signing_key=signing_key)

    @classmethod
    def load(cls, path, signing_key=None):
        """Load an ensemble saved with :meth:`save` (its signature checked when a key is set)."""
        from .errors import ModelFileError
        from .persistence import load_detector

        detector = load_detector(path, signing_key=signing_key)
        if not isinstance(detector, cls):
            raise ModelFileError(f"{path} holds a {type(detector).__name__}, not a {cls.__name__}")
        return detector

    def to_device(self, device):
        """Move the members that run on a device (the autoencoders) to ``device``; returns ``self``.

        A device named in ``detector_params`` becomes ``device`` too, as a model file
        loaded with ``device=`` has it.
        """
        from .persistence import member_params_on

        check_is_fitted(self, ["members_", "decision_scores_"])
        for member in self.members_:
            if hasattr(member, "to_device"):
                member.to_device(device)
        if isinstance(self.detector_params, dict):
            self.detector_params = member_params_on(self.detector_params, device)
        return self

    def _fitted_state(self) -> tuple[dict, dict]:
        """Each member's own (metadata, tensors), nested under ``member{i}.`` tensor prefixes."""
        import torch

        from .persistence import detector_to_state

        check_is_fitted(self, ["members_", "decision_scores_"])
        members_meta, tensors = [], {}
        for i, member in enumerate(self.members_):
            meta, member_tensors = detector_to_state(member)
            members_meta.append(meta)
            tensors.update({f"member{i}.{k}": v for k, v in member_tensors.items()})
        tensors["decision_scores"] = torch.from_numpy(np.asarray(self.decision_scores_, dtype=np.float64))
        tensors.update({f"norm.{k}": torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64))
                        for k, v in self.normalizer_.items()})
        meta = {"n_features_in": int(self.n_features_in_), "member_names": list(self.member_names_),
                "members": members_meta, "buckets": self.buckets_}
        return meta, tensors

    def _restore_fitted_state(self, meta: dict, tensors: dict) -> None:
        """Inverse of :meth:`_fitted_state`; a bad entry is an ``InconsistentModelError``."""
        from .errors import InconsistentModelError
        from .persistence import detector_from_state, require_int, require_tensor
        from .registry import get_registry

        n_features = require_int(meta, "n_features_in", minimum=1)
        names, members_meta = meta.get("member_names"), meta.get("members")
        expected = self._member_names()  # the `detectors` parameter, already checked
        if names != expected:
            raise InconsistentModelError(f"its members {names!r} are not its `detectors` parameter {expected!r}")
        if not isinstance(members_meta, list) or len(members_meta) != len(names) \
                or not all(isinstance(m, dict) for m in members_meta):
            raise InconsistentModelError(f"it must hold one saved detector per member ({len(names)})")
        members = []
        for i, (name, member_meta) in enumerate(zip(names, members_meta)):
            saved_as = member_meta.get("detector")
            try:
                saved_name = get_registry().resolve(saved_as).name
            except AdscoreError:
                saved_name = None
            # checked before loading the member, so that a member cannot nest another ensemble
            if saved_name != name:
                raise InconsistentModelError(f"member {i} is saved as {saved_as!r}, not as {name!r}")
            prefix = f"member{i}."
            member_tensors = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            member = detector_from_state(member_meta, member_tensors, source=f"ensemble member {name!r}")
            width = getattr(member, "n_features_in_", n_features)
            if width != n_features:
                raise InconsistentModelError(f"member {name!r} was fitted on {width} features, the ensemble "
                                             f"on {n_features}")
            members.append(member)
        scores = require_tensor(tensors, "decision_scores", ndim=1)
        self.n_features_in_ = n_features
        self.member_names_ = list(names)
        self.members_ = members
        self.buckets_ = self._restored_buckets(meta.get("buckets"), len(names))
        self.normalizer_ = self._restored_normalizer(tensors, len(names))
        self.decision_scores_ = scores.numpy().astype(np.float64)
        self._set_n_classes(None)

    def _restored_buckets(self, buckets, n_members: int):
        """The saved AOM/MOA buckets, checked: lists of member indices for aom/moa, else None."""
        from .errors import InconsistentModelError

        if self.combine not in ("aom", "moa"):
            return None
        valid = isinstance(buckets, list) and buckets and all(
            isinstance(b, list) and b and all(isinstance(i, int) and not isinstance(i, bool)
                                              and 0 <= i < n_members for i in b) for b in buckets)
        if not valid:
            raise InconsistentModelError(f"combine={self.combine!r} needs buckets of member indices, "
                                         f"got {buckets!r}")
        return buckets

    def _restored_normalizer(self, tensors: dict, n_members: int) -> dict:
        """The saved normalisation statistics, checked against ``normalize`` and the member count."""
        from .persistence import require_tensor

        if self.normalize == "rank":
            return {"sorted": require_tensor(tensors, "norm.sorted", shape=(None, n_members))
                    .numpy().astype(np.float64)}
        return {"loc": require_tensor(tensors, "norm.loc", shape=(n_members,)).numpy().astype(np.float64),
                "scale": require_tensor(tensors, "norm.scale", shape=(n_members,), positive=True)
                .numpy().astype(np.float64)}
