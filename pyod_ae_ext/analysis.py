"""What an analyst does after fitting: explain scores, choose thresholds, evaluate, plot.

Library functions behind ``adscore explain``, ``adscore threshold`` and ``adscore
evaluate``; every one works on plain NumPy arrays and a fitted detector.

Explanations
    :func:`explain` ranks rows by score and reports each row's per-feature
    contributions (``detector.feature_contributions``: squared reconstruction error
    per feature for the autoencoders, the residuals that the rows of S absorb for
    RDAE). A part of the score that belongs to no feature (Toll's latent penalty) is
    reported as one extra column, ``<latent>`` (``<other>`` for other detectors), so
    the columns always add up to the family's own score; a latent-space kNN term
    (``latent_knn_weight``) ranks the rows but is not attributed to features. A *share* is a contribution divided by the
    sum of the absolute contributions of its row. An :class:`~pyod_ae_ext.ensemble.Ensemble`
    is explained through its members that provide contributions: rows are ranked by
    the ensemble's score and the shares are the mean of those members' shares (its
    PyOD members attribute nothing to features and are left out of the shares).

Thresholds
    :func:`threshold_table` evaluates every distinct cut point of the scores at once
    (sorting and ``searchsorted``, no loop over candidates) so :func:`best_threshold`
    finds the exact optimum of F1 or of the cost ``A * false alarms + B * missed``.
    With ``tolerance=N`` (ordered data), an anomaly at row ``i`` counts as detected
    when any of rows ``i-N .. i`` raises an alarm, and an alarm at row ``j`` is a
    false alarm only when none of rows ``j .. j+N`` is an anomaly.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import AdscoreError, DataError, ParameterError

PLOT_INSTALL_HINT = 'pip install "pyod-ae-ext[plot]"'


# --------------------------------------------------------------------------
# explanations


@dataclass
class Contributions:
    """Per-row attribution of scores to columns (features plus non-feature terms)."""

    values: np.ndarray      # (rows, columns): contributions, or shares for an ensemble
    shares: np.ndarray      # (rows, columns): values / row sum of |values|
    columns: list           # column names
    unit: str               # "contribution" or "share"
    source: str             # what the attribution comes from, in words

    @classmethod
    def of(cls, values, columns, source: str, unit: str = "contribution") -> "Contributions":
        """``values`` (rows, columns) with their shares of each row's total."""
        values = np.asarray(values, dtype=np.float64)
        return cls(values, _shares(values), list(columns), unit, source)


def _detector_name(detector) -> str:
    from .registry import get_registry

    return get_registry().name_of(detector) or type(detector).__name__


def _shares(values: np.ndarray) -> np.ndarray:
    total = np.abs(values).sum(axis=1, keepdims=True)
    return np.divide(values, total, out=np.zeros_like(values), where=total > 0)


def _single_contributions(detector, X, feature_names):
    name = _detector_name(detector)
    if not hasattr(detector, "feature_contributions"):
        raise AdscoreError(f"detector {name!r} does not attribute its score to features; explanations need "
                           "a reconstruction-based detector (ae, toll, rdae-l1, rdae-l21, vae, ksparse-ae) "
                           "or an ensemble with one")
    try:
        values = np.asarray(detector.feature_contributions(X), dtype=np.float64)
    except NotImplementedError as exc:
        raise AdscoreError(f"detector {name!r} with these parameters gives no per-feature contributions "
                           f"({exc})") from None
    columns = list(feature_names)
    # The part of the score that features carry: the family's own score when the detector
    # adds a latent-space term (which belongs to no feature), else the whole score.
    score = detector.family_score(X) if hasattr(detector, "family_score") else detector.decision_function(X)
    rest = np.asarray(score, dtype=np.float64) - values.sum(axis=1)
    scale = max(1.0, float(np.abs(values).sum(axis=1).max(initial=0.0)))
    if np.abs(rest).max(initial=0.0) > 1e-6 * scale:
        values = np.column_stack([values, rest])
        columns.append("<latent>" if hasattr(detector, "latent_penalty") else "<other>")
    return values, columns, name


def contributions(detector, X, feature_names=None) -> Contributions:
    """Per-feature attribution of each row's score (see the module docstring)."""
    from .ensemble import Ensemble

    X = np.asarray(X, dtype=np.float64)
    feature_names = list(feature_names) if feature_names is not None else [f"x{j}" for j in range(X.shape[1])]
    if not isinstance(detector, Ensemble):
        values, columns, name = _single_contributions(detector, X, feature_names)
        return Contributions.of(values, columns, f"{name} contributions")
    explained, skipped, parts = [], [], []
    for name, member in zip(detector.member_names_, detector.members_):
        try:
            values, columns, _ = _single_contributions(member, X, feature_names)
        except AdscoreError:
            skipped.append(name)
            continue
        explained.append(name)
        parts.append((columns, _shares(values)))
    if not parts:
        raise AdscoreError(f"no member of this ensemble ({', '.join(detector.member_names_)}) attributes its "
                           "score to features; add a reconstruction-based member such as toll or ae")
    columns = list(feature_names)
    for member_columns, _ in parts:
        columns += [c for c in member_columns if c not in columns]
    mean = np.zeros((X.shape[0], len(columns)))
    for member_columns, shares in parts:
        index = [columns.index(c) for c in member_columns]
        mean[:, index] += shares / len(parts)
    source = f"mean feature shares of ensemble member(s) {', '.join(explained)}"
    if skipped:
        source += f" ({', '.join(skipped)} attribute nothing to features)"
    return Contributions.of(mean, columns, source, unit="share")


def explain(detector, X, feature_names=None, top=20, n_features=5, ids=None) -> dict:
    """Top-scoring rows with their most contributing columns, and a per-column summary.

    Returns a JSON-able dict: ``rows`` (the ``top`` highest-scoring rows, highest first:
    position in ``X``, optional ids, score, flagged, and the ``n_features`` columns
    with the largest contributions with their shares) and ``summary`` (per column,
    over the rows flagged by the detector's threshold, or over the top rows when none
    is flagged: mean share, mean value and in how many rows it is the top column).
    """
    X = np.asarray(X, dtype=np.float64)
    scores = np.asarray(detector.decision_function(X), dtype=np.float64)
    attribution = contributions(detector, X, feature_names)
    return explain_scores(_detector_name(detector), scores, attribution, float(detector.threshold_), top,
                          n_features, ids)


def explain_scores(detector_name, scores, attribution: Contributions, threshold, top=20, n_features=5, ids=None,
                   flag_at_threshold=False) -> dict:
    """:func:`explain` of given ``scores`` and their ``attribution`` (rows flagged above ``threshold``, or at or
    above it with ``flag_at_threshold``, as a series model's points are)."""
    scores = np.asarray(scores, dtype=np.float64)
    flagged = scores >= threshold if flag_at_threshold else scores > threshold
    order = np.argsort(-scores, kind="stable")[:top]
    k = min(n_features, len(attribution.columns))
    rank = np.argsort(-attribution.values[order], axis=1, kind="stable")[:, :k]
    rows = []
    for r, i in enumerate(order):
        entry = {"row": int(i)}
        if ids is not None:
            entry["id"] = {str(c): _plain(v) for c, v in ids.iloc[int(i)].items()}
        entry.update(score=float(scores[i]), flagged=bool(flagged[i]), features=[
            {"feature": attribution.columns[j], attribution.unit: float(attribution.values[i, j]),
             "share": float(attribution.shares[i, j])} for j in rank[r]])
        rows.append(entry)
    basis = np.flatnonzero(flagged) if flagged.any() else order
    top_column = np.argmax(attribution.values[basis], axis=1)
    counts = np.bincount(top_column, minlength=len(attribution.columns))
    mean_share = attribution.shares[basis].mean(axis=0)
    mean_value = attribution.values[basis].mean(axis=0)
    summary = [{"feature": attribution.columns[j], "mean_share": float(mean_share[j]),
                f"mean_{attribution.unit}": float(mean_value[j]), "top_in_rows": int(counts[j])}
               for j in np.argsort(-mean_share, kind="stable")]
    return {
        "detector": detector_name,
        "source": attribution.source,
        "unit": attribution.unit,
        "threshold": threshold,
        "n_rows": int(len(scores)),
        "n_flagged": int(flagged.sum()),
        "summary_over": "flagged rows" if flagged.any() else "top rows (no row is flagged)",
        "rows": rows,
        "summary": summary,
        "_heat": {"values": attribution.values[order], "columns": attribution.columns, "unit": attribution.unit,
                  **row_labels(order, ids)},
        "_scores": scores,
    }


def row_labels(positions, ids=None) -> dict:
    """``{"rows": [...], "row_label": ...}`` naming rows ``positions`` by their ids
    (several id columns joined by ", "), else by their position in the data."""
    if ids is None or ids.shape[1] == 0:
        return {"rows": [str(int(i)) for i in positions], "row_label": "row (file order, from 0)"}
    shown = ids.iloc[np.asarray(positions, dtype=int)]
    return {"rows": [", ".join(str(_plain(v)) for v in values) for values in shown.itertuples(index=False)],
            "row_label": ", ".join(map(str, ids.columns))}


def _plain(value):
    return value.item() if hasattr(value, "item") else value


# --------------------------------------------------------------------------
# thresholds


def _trailing_max(values: np.ndarray, window: int) -> np.ndarray:
    """``out[i] = max(values[i-window .. i])`` (fewer at the start)."""
    if window == 0:
        return values.copy()
    from scipy.ndimage import maximum_filter1d

    return maximum_filter1d(values, size=window + 1, origin=window // 2, mode="nearest")


def _check_labels(scores, labels, tolerance):
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel()
    if scores.shape != labels.shape:
        raise DataError(f"{len(scores)} scores but {len(labels)} labels")
    if not np.isin(labels, (0, 1)).all():
        raise DataError("labels must be 0 (normal) or 1 (anomaly)")
    labels = labels.astype(int)
    if labels.sum() == 0:
        raise DataError("the labels hold no anomaly (no 1); a threshold or an evaluation needs at least one")
    if labels.sum() == len(labels):
        raise DataError("the labels hold only anomalies (no 0); a threshold or an evaluation needs normal "
                        "rows too")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, np.integer)) or tolerance < 0:
        raise ParameterError(f"tolerance must be a non-negative integer number of rows, got {tolerance!r}")
    return scores, labels


def threshold_table(scores, labels, tolerance: int = 0) -> dict:
    """Alarm counts at every distinct cut point of ``scores``, vectorised.

    Candidate thresholds, ascending: just below the lowest score (every row flagged),
    then each distinct score (rows strictly above it flagged); rows are flagged when
    ``score > threshold``, PyOD's rule. Returns arrays ``threshold``, ``alarms``,
    ``false_alarms``, ``detected``, ``missed`` and the scalar ``n_anomalies``.
    """
    scores, labels = _check_labels(scores, labels, tolerance)
    distinct = np.unique(scores)
    candidates = np.concatenate([[np.nextafter(distinct[0], -np.inf)], distinct])

    def above(values):  # how many of ``values`` exceed each candidate
        values = np.sort(values)
        return len(values) - np.searchsorted(values, candidates, side="right")

    # an anomaly at i is detected when the highest score among rows i-N..i exceeds t
    window_max = _trailing_max(scores, tolerance)[labels == 1]
    # an alarm at j is false when no row j..j+N is an anomaly
    anomaly_ahead = _trailing_max(labels[::-1].astype(np.float64), tolerance)[::-1] > 0
    n_anomalies = int(labels.sum())
    detected = above(window_max)
    return {
        "threshold": candidates,
        "alarms": above(scores),
        "false_alarms": above(scores[~anomaly_ahead]),
        "detected": detected,
        "missed": n_anomalies - detected,
        "n_anomalies": n_anomalies,
    }


@dataclass
class ThresholdChoice:
    threshold: float
    objective: str
    value: float
    alarms: int
    false_alarms: int
    missed: int
    n_anomalies: int
    precision: float
    recall: float
    f1: float
    cost: float | None
    tolerance: int

    def as_dict(self) -> dict:
        return asdict(self)


def _rates(table):
    alarms, false_alarms, detected = table["alarms"], table["false_alarms"], table["detected"]
    true_alarms = alarms - false_alarms
    precision = np.divide(true_alarms, alarms, out=np.zeros(len(alarms)), where=alarms > 0)
    recall = detected / table["n_anomalies"]
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros(len(alarms)), where=denominator > 0)
    return precision, recall, f1


def best_threshold(scores, labels, objective="f1", cost_false_alarm=1.0, cost_missed=1.0,
                   tolerance=0) -> ThresholdChoice:
    """The threshold that maximises F1 or minimises ``A * false_alarms + B * missed``, exactly.

    Ties go to the highest threshold (the fewest alarms).
    """
    if objective not in ("f1", "cost"):
        raise ParameterError(f"objective must be 'f1' or 'cost', got {objective!r}")
    for name, value in (("cost of a false alarm", cost_false_alarm), ("cost of a missed anomaly", cost_missed)):
        if not np.isfinite(value) or value < 0:
            raise ParameterError(f"the {name} must be a non-negative number, got {value!r}")
    if objective == "cost" and cost_false_alarm == 0 and cost_missed == 0:
        raise ParameterError("the costs of false alarms and of missed anomalies cannot both be 0")
    table = threshold_table(scores, labels, tolerance)
    precision, recall, f1 = _rates(table)
    cost = cost_false_alarm * table["false_alarms"] + cost_missed * table["missed"]
    if objective == "f1":
        best = np.flatnonzero(f1 == f1.max())[-1]
    else:
        best = np.flatnonzero(cost == cost.min())[-1]
    return _choice(table, best, objective, f1, precision, recall, cost, tolerance,
                   cost if objective == "cost" else None)


def _choice(table, i, objective, f1, precision, recall, cost, tolerance, cost_shown):
    return ThresholdChoice(
        threshold=float(table["threshold"][i]), objective=objective,
        value=float(f1[i] if objective == "f1" else cost[i]),
        alarms=int(table["alarms"][i]), false_alarms=int(table["false_alarms"][i]), missed=int(table["missed"][i]),
        n_anomalies=int(table["n_anomalies"]), precision=float(precision[i]), recall=float(recall[i]),
        f1=float(f1[i]), cost=None if cost_shown is None else float(cost[i]), tolerance=int(tolerance))


def evaluate_threshold(scores, labels, threshold, objective="f1", cost_false_alarm=1.0, cost_missed=1.0,
                       tolerance=0) -> ThresholdChoice:
    """Alarm counts, precision, recall, F1 (and cost) of one given threshold."""
    table = threshold_table(scores, labels, tolerance)
    i = int(np.searchsorted(table["threshold"], threshold, side="right")) - 1
    # rows flagged at ``threshold`` are those above the largest candidate <= threshold
    i = max(i, 0)
    precision, recall, f1 = _rates(table)
    cost = cost_false_alarm * table["false_alarms"] + cost_missed * table["missed"]
    choice = _choice(table, i, objective, f1, precision, recall, cost, tolerance,
                     cost if objective == "cost" else None)
    choice.threshold = float(threshold)
    return choice


# --------------------------------------------------------------------------
# evaluation


def evaluate(scores, labels, threshold) -> dict:
    """ROC-AUC, average precision and precision/recall/F1 at ``threshold`` (``score > threshold``)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    scores, labels = _check_labels(scores, labels, 0)
    if labels.min() == 1:
        raise DataError("every labelled row is an anomaly; ROC-AUC needs normal rows (0) too")
    at = evaluate_threshold(scores, labels, threshold)
    return {
        "n_rows": int(len(scores)),
        "n_anomalies": int(labels.sum()),
        "roc_auc": float(roc_auc_score(labels, scores)),
        "average_precision": float(average_precision_score(labels, scores)),
        "threshold": float(threshold),
        "n_flagged": at.alarms,
        "precision": at.precision,
        "recall": at.recall,
        "f1": at.f1,
        "false_alarms": at.false_alarms,
        "missed": at.missed,
    }


# --------------------------------------------------------------------------
# plots


def require_matplotlib(what="--plot"):
    """Import matplotlib's object API with the Agg canvas, or raise a clear error naming ``what``."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise AdscoreError(f"{what} needs matplotlib, which is not installed: {PLOT_INSTALL_HINT}") from None
    return Figure, FigureCanvasAgg


def plot_explanation(path, detector, X, scores, threshold, image_shape=None, ids=None, **report) -> None:
    """``explain --plot``: input, reconstruction and error map of the top images when the rows
    are images of ``image_shape`` (:mod:`pyod_ae_ext.image_plots`), else :func:`plot_report`."""
    if image_shape is None:
        return plot_report(path, scores, threshold, **report)
    from .image_plots import plot_top_images

    return plot_top_images(path, detector, X, scores, threshold, image_shape, ids=ids, title=report.get("title"))


def plot_report(path, scores, threshold, labels=None, heat=None, title=None) -> None:
    """Write a PNG: score histogram with the threshold, ROC and PR curves with the
    threshold marked when ``labels`` are given, and a heat map of per-feature values
    over the top rows when ``heat`` is given (see :func:`pyod_ae_ext.plots.heat_panel`).

    The histogram's axes follow the rule in :mod:`pyod_ae_ext.plots` (logarithmic for
    heavy-tailed scores). Uses matplotlib's Agg canvas directly (no pyplot, no global
    backend change); the file is written atomically.
    """
    from . import plots
    from .outputs import write_output

    scores = np.asarray(scores, dtype=np.float64)
    panels = ["hist"] + (["roc", "pr"] if labels is not None else []) + (["heat"] if heat is not None else [])
    n_cols = 2 if len(panels) > 1 else 1
    n_rows = (len(panels) + 1) // 2
    figure = plots.new_figure(6.4 * n_cols, 4.6 * n_rows)
    if title:
        figure.suptitle(plots.plain_text(title))
    for k, panel in enumerate(panels):
        ax = figure.add_subplot(n_rows, n_cols, k + 1)
        if panel == "hist":
            plots.score_histogram(ax, scores, threshold, labels)
        elif panel == "roc":
            plots.roc_panel(ax, scores, labels, threshold)
        elif panel == "pr":
            plots.pr_panel(ax, scores, labels, threshold)
        else:
            plots.heat_panel(figure, ax, heat)
    write_output(path, plots.png_bytes(figure))
