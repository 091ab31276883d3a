"""The benchmark harness shared by ``adscore benchmark`` and the suites in ``benchmarks/``.

One *cell* is one detector fitted and scored once, on one split of one labelled data
set, with one seed. Two protocols:

``one-class`` (the "semi-supervised" protocol of the Toll and Deep SVDD papers)
    Stratified train/test split of all rows (by default 70/30, ADBench's proportions),
    seeded by the cell's seed; the detector is fitted on the **normal** rows of the
    train part only and scores the whole test part.
``unsupervised`` (ADBench's protocol)
    The same split; the detector is fitted on the **whole** train part, anomalies
    included, and scores the test part.

Labels are used only to choose the fitting rows (one-class) and to evaluate. Each
cell reports the test ROC-AUC, the average precision (area under the precision-recall
curve, whose chance level is the anomaly fraction), the wall-clock seconds of ``fit``
(which, as in PyOD, includes scoring the training rows) and of ``decision_function``
on the test part. Over seeds: mean and sample standard deviation (ddof=1; 0 for one
seed). Detectors are ranked by mean ROC-AUC (ties by mean AP).

Detectors are named as for ``adscore fit`` (any registered name or alias, with
parameters), or as a PyOD class path ``pyod.models.auto_encoder:AutoEncoder`` so
PyOD's own deep detectors run side by side. Only ``pyod.`` class paths are importable.
Each cell passes ``random_state=seed`` where the detector accepts it (unless given),
``verbose=0`` to PyOD classes that accept it, fills a required ``n_features`` argument
(PyOD's DeepSVDD) from the data, and seeds numpy's and torch's global RNGs first, so
detectors without a ``random_state`` (PyOD's AE1SVM) are reproducible too. Anything a
detector prints while fitting or scoring is discarded.
"""
from __future__ import annotations

import contextlib
import io
import math
import random
import time
from dataclasses import dataclass, field

import numpy as np

from .errors import AdscoreError, DataError, ParameterError
from .registry import (build_detector, check_parameter_names, constructor_parameters, find_detector,
                       is_class_path)

PROTOCOLS = ("one-class", "unsupervised")
DEFAULT_TEST_SIZE = 0.3


# --------------------------------------------------------------------------
# detectors


@dataclass
class DetectorChoice:
    """A detector to benchmark: how to build it for a seed and a feature count.

    ``target`` is what :func:`pyod_ae_ext.registry.build_detector` builds from: the
    registered name, the PyOD class path, or the class itself (the default).
    """

    label: str
    cls: type
    params: dict = field(default_factory=dict)
    kind: str = "registered"  # or "pyod-class"
    registered_name: str | None = None
    target: object = None

    def accepted(self) -> dict:
        """Constructor parameter name -> default (``inspect.Parameter.empty`` if required)."""
        return constructor_parameters(self.cls)

    def build(self, seed: int, n_features: int):
        """An unfitted detector for this seed and feature count (through the registry's factory)."""
        defaults = {"random_state": seed}
        if self.kind == "pyod-class":
            defaults["verbose"] = 0
        target = self.target or self.registered_name or self.cls
        return build_detector(target, self.params, defaults=defaults, n_features=n_features)

    def describe_params(self) -> dict:
        """The parameters given explicitly (JSON-safe), for reports."""
        return {k: _json_safe(v) for k, v in sorted(self.params.items())}


def resolve_detector(name: str, params: dict | None = None, label: str | None = None) -> DetectorChoice:
    """A :class:`DetectorChoice` for a registered name/alias or a ``pyod.`` class path.

    Unknown names, class paths outside ``pyod.``, and unknown parameter names raise
    an :class:`AdscoreError` with the fix in the message.
    """
    params = dict(params or {})
    found = find_detector(name)
    check_parameter_names(found.cls, found.label, params)
    if is_class_path(name.strip()):
        return DetectorChoice(label or name.strip(), found.cls, params, kind="pyod-class", target=name.strip())
    return DetectorChoice(label or found.registered, found.cls, params, kind="registered",
                          registered_name=found.registered)


# --------------------------------------------------------------------------
# data and splits


def check_labelled(X, y, what="the data") -> tuple[np.ndarray, np.ndarray]:
    """``X`` as a finite float64 matrix and ``y`` as 0/1 ints, with enough of each class."""
    from .validation import as_feature_matrix

    X = as_feature_matrix(X, what=what)
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise DataError(f"{what}: labels must be one per row ({X.shape[0]} rows, labels of shape {y.shape})")
    if not np.isin(y, (0, 1)).all():
        raise DataError(f"{what}: labels must be 0 (normal) or 1 (anomaly)")
    y = y.astype(int)
    n_anomalies, n_normal = int(y.sum()), int((y == 0).sum())
    if n_anomalies < 2 or n_normal < 4:
        raise DataError(f"{what} needs at least 2 labelled anomalies and 4 normal rows to benchmark "
                        f"(found {n_anomalies} anomalies, {n_normal} normal rows)")
    return X, y


def split_indices(y: np.ndarray, seed: int, test_size: float = DEFAULT_TEST_SIZE):
    """Stratified (train, test) row indices for ``seed``; both parts hold both classes."""
    from sklearn.model_selection import train_test_split

    if not 0 < test_size < 1:
        raise ParameterError(f"test size must be in (0, 1), got {test_size!r}")
    rows = np.arange(len(y))
    n_test = int(math.ceil(test_size * len(y)))
    n_anomalies = int(np.sum(y))
    if n_test < 2 or len(y) - n_test < 2 or min(n_anomalies, len(y) - n_anomalies) < 2:
        raise DataError(f"cannot split {len(y)} rows ({n_anomalies} anomalies) into stratified "
                        f"train and test parts with test size {test_size}")
    train, test = train_test_split(rows, test_size=test_size, stratify=y, random_state=seed)
    return np.sort(train), np.sort(test)


def protocol_rows(y, train, protocol):
    """The rows a detector is fitted on under ``protocol``."""
    if protocol == "one-class":
        return train[y[train] == 0]
    if protocol == "unsupervised":
        return train
    raise ParameterError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")


def describe_protocol(protocol: str, test_size: float = DEFAULT_TEST_SIZE) -> str:
    split = f"{round(100 * (1 - test_size))}/{round(100 * test_size)} stratified train/test split per seed"
    if protocol == "one-class":
        return f"one-class: {split}; fit on the train part's normal rows, score the test part"
    return f"unsupervised: {split}; fit on the whole train part (anomalies included), score the test part"


# --------------------------------------------------------------------------
# metrics


def f1_at_top(y, scores, fraction: float) -> float:
    """F1 when the ``fraction`` highest-scoring rows are labelled anomalous."""
    y = np.asarray(y).astype(bool)
    k = int(round(fraction * len(y)))
    flagged = np.zeros(len(y), dtype=bool)
    flagged[np.argsort(-np.asarray(scores), kind="stable")[:k]] = True
    tp = int(np.sum(flagged & y))
    if tp == 0:
        return 0.0
    precision, recall = tp / flagged.sum(), tp / y.sum()
    return float(2 * precision * recall / (precision + recall))


def score_metrics(y, scores) -> dict:
    from sklearn.metrics import average_precision_score, roc_auc_score

    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (len(y),):
        raise AdscoreError(f"the detector returned scores of shape {scores.shape} for {len(y)} rows")
    if not np.isfinite(scores).all():
        raise AdscoreError(f"the detector returned {int((~np.isfinite(scores)).sum())} non-finite scores")
    return {"roc_auc": float(roc_auc_score(y, scores)), "ap": float(average_precision_score(y, scores))}


# --------------------------------------------------------------------------
# running


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global RNGs (for detectors without random_state)."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return
    torch.manual_seed(seed)


@contextlib.contextmanager
def quiet():
    """Discard what a detector prints to stdout (PyOD's AE1SVM prints every 10 epochs)."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def timed_fit_and_score(detector, X_fit, X_score):
    """Fit ``detector`` on ``X_fit`` and score ``X_score`` quietly; (scores, fit s, score s)."""
    with quiet():
        started = time.perf_counter()
        detector.fit(X_fit)
        fit_seconds = time.perf_counter() - started
        started = time.perf_counter()
        scores = detector.decision_function(X_score)
        score_seconds = time.perf_counter() - started
    return np.asarray(scores, dtype=np.float64), fit_seconds, score_seconds


def fit_and_score(choice: DetectorChoice, X_fit, X_test, seed: int):
    """Build, fit and score; returns (test scores, fit seconds, score seconds)."""
    seed_everything(seed)
    return timed_fit_and_score(choice.build(seed, X_fit.shape[1]), X_fit, X_test)


def warm_up(choice: DetectorChoice, n_features: int, rows: int = 128) -> float:
    """Fit and score once on a little random data; returns the seconds it took.

    The first fit in a process pays one-off costs that are no property of the detector
    (PyOD compiles a numba kernel on its first scoring, ~1-20 s; torch initialises its
    kernels), so the timings of the cells that follow are steady-state. Failures are
    left to the real cells to report.
    """
    X = np.random.default_rng(0).standard_normal((rows, n_features))
    started = time.perf_counter()
    try:
        fit_and_score(choice, X, X[:16], 0)
    except Exception:  # reported by the cells themselves
        pass
    return time.perf_counter() - started


def run_cell(choice: DetectorChoice, X, y, seed: int, protocol: str,
             test_size: float = DEFAULT_TEST_SIZE, split=None) -> dict:
    """Fit and evaluate one detector on one seeded split; returns a JSON-able record.

    ``split`` is an optional precomputed ``(train, test)`` pair from :func:`split_indices`.
    """
    train, test = split if split is not None else split_indices(y, seed, test_size)
    fit_rows = protocol_rows(y, train, protocol)
    scores, fit_seconds, score_seconds = fit_and_score(choice, X[fit_rows], X[test], seed)
    return {
        "detector": choice.label,
        "seed": int(seed),
        "protocol": protocol,
        **score_metrics(y[test], scores),
        "fit_s": fit_seconds,
        "score_s": score_seconds,
        "n_fit": int(len(fit_rows)),
        "n_test": int(len(test)),
        "n_test_anomalies": int(y[test].sum()),
    }


def describe_failure(choice: DetectorChoice, seed: int, exc: BaseException) -> str:
    text = str(exc).strip()
    message = text.splitlines()[0] if text else type(exc).__name__
    if not isinstance(exc, AdscoreError):
        message = f"{type(exc).__name__}: {message}"
    return f"detector {choice.label!r} failed (seed {seed}): {message}"


def run_benchmark(choices, X, y, seeds, protocol="one-class", test_size=DEFAULT_TEST_SIZE, progress=None):
    """Every detector on every seed; returns the list of cell records.

    A failing cell raises an :class:`AdscoreError` naming the detector and the seed.
    ``progress(record)`` is called after each cell.
    """
    if protocol not in PROTOCOLS:
        raise ParameterError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    records = []
    for choice in choices:
        choice.build(0, X.shape[1])  # parameter errors now, before any fitting
        warm_up(choice, X.shape[1])
    for seed in seeds:
        split = split_indices(y, seed, test_size)
        for choice in choices:
            try:
                record = run_cell(choice, X, y, seed, protocol, test_size, split=split)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                raise AdscoreError(describe_failure(choice, seed, exc)) from exc
            records.append(record)
            if progress is not None:
                progress(record)
    return records


# --------------------------------------------------------------------------
# summaries


def mean_std(values) -> tuple[float, float]:
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if values.size == 0:
        return float("nan"), float("nan")
    return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0


def summarise(records, order=None) -> list[dict]:
    """Per detector: mean and std over seeds of each metric, and the rank by mean ROC-AUC."""
    by_detector: dict[str, list] = {}
    for record in records:
        by_detector.setdefault(record["detector"], []).append(record)
    names = list(order) if order is not None else list(by_detector)
    rows = []
    for name in names:
        cells = by_detector.get(name, [])
        if not cells:
            continue
        row = {"detector": name, "n_seeds": len(cells)}
        for metric in ("roc_auc", "ap", "fit_s", "score_s"):
            row[f"{metric}_mean"], row[f"{metric}_std"] = mean_std(c[metric] for c in cells)
        rows.append(row)
    ranked = sorted(rows, key=lambda r: (-_nan_low(r["roc_auc_mean"]), -_nan_low(r["ap_mean"])))
    for rank, row in enumerate(ranked, 1):
        row["rank"] = rank
    return ranked


def _nan_low(value):
    return -math.inf if value is None or not np.isfinite(value) else value


def average_ranks(table: dict) -> dict:
    """``table[dataset][detector] = value`` (higher is better) -> detector -> mean rank.

    Ranks are 1 for the best, ties get the average rank; datasets missing a detector
    are left out of that detector's mean.
    """
    from scipy.stats import rankdata

    ranks: dict[str, list] = {}
    for values in table.values():
        names = [n for n, v in values.items() if v is not None and np.isfinite(v)]
        if not names:
            continue
        r = rankdata([-values[n] for n in names], method="average")
        for name, rank in zip(names, r):
            ranks.setdefault(name, []).append(float(rank))
    return {name: float(np.mean(v)) for name, v in ranks.items()}


def format_summary(rows, digits=3) -> str:
    """A plain-text table of :func:`summarise` rows."""
    header = ["rank", "detector", "ROC-AUC", "AP", "fit s", "score s"]
    body = []
    for row in rows:
        body.append([
            str(row["rank"]), row["detector"],
            f"{row['roc_auc_mean']:.{digits}f} ± {row['roc_auc_std']:.{digits}f}",
            f"{row['ap_mean']:.{digits}f} ± {row['ap_std']:.{digits}f}",
            _seconds(row["fit_s_mean"]), _seconds(row["score_s_mean"]),
        ])
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in body]
    return "\n".join(lines)


def _seconds(value) -> str:
    if value is None or not np.isfinite(value):
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _json_safe(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return repr(value)
