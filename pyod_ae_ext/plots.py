"""Matplotlib panels shared by ``--plot`` PNGs and ``adscore report``.

Every function draws on an ``Axes`` of a :class:`matplotlib.figure.Figure` made by
:func:`new_figure` on the Agg canvas: no pyplot, no global backend or style change.
Matplotlib and scikit-learn's displays are imported inside the functions, so
importing this module costs nothing.

Score histogram axes
    Scores of outlier detectors are often heavy-tailed: a few rows score orders of
    magnitude above the rest and squeeze the bulk into one bar. :func:`histogram_axes`
    chooses the axes by one rule. With ``lo`` and ``hi`` the 1st and 99th percentiles
    and ``spread = hi - lo``, the scores are *heavy-tailed* when a score lies more than
    ``3 * spread`` beyond ``[lo, hi]``. Heavy-tailed scores get a logarithmic x-axis
    (``log`` when every score and the threshold are positive, with log-spaced bins;
    otherwise ``symlog``, linear within ``±spread`` of 0, with bins equally spaced in
    ``asinh(score / spread)``), so every row stays on the plot. The y-axis (row counts)
    is logarithmic when the fullest bin holds more than 20 times the rows of the
    emptiest non-empty bin, so that single rows in the tail, where anomalies lie,
    remain visible beside the bulk.
"""
from __future__ import annotations

import io

import numpy as np

HEAVY_TAIL_SPREADS = 3.0
LOG_COUNTS_RATIO = 20.0
MAX_HEAT_COLUMNS = 40
MAX_LABEL_CHARS = 24
NORMAL_COLOUR, ANOMALY_COLOUR, THRESHOLD_COLOUR = "tab:blue", "tab:red", "black"


def new_figure(width, height):
    """A Figure on its own Agg canvas (raises AdscoreError when matplotlib is missing)."""
    from .analysis import require_matplotlib

    Figure, FigureCanvasAgg = require_matplotlib()
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def png_bytes(figure, dpi=100) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def plain_text(text, limit=None) -> str:
    """``text`` as matplotlib should show it: literally (a ``$`` never starts mathtext),
    shortened to ``limit`` characters."""
    text = str(text)
    if limit is not None and len(text) > limit:
        text = text[:limit - 1] + "\u2026"
    return text.replace("$", r"\$")


# --------------------------------------------------------------------------
# score histogram


def histogram_axes(scores, threshold, n_bins):
    """``(xscale, bins, linthresh)`` for the score histogram, by the rule in the module docstring.

    ``xscale`` is ``"linear"``, ``"log"`` or ``"symlog"``; ``linthresh`` is the symlog
    axis's linear range (None otherwise).
    """
    scores = np.asarray(scores, dtype=np.float64)
    low, high = float(scores.min()), float(scores.max())
    lo, hi = np.percentile(scores, [1, 99])
    spread = float(hi - lo)
    margin = HEAVY_TAIL_SPREADS * spread
    heavy = high > hi + margin or low < lo - margin
    if not heavy or high == low:
        return "linear", np.linspace(low, high, n_bins + 1) if high > low else n_bins, None
    if low > 0 and threshold > 0:
        return "log", np.geomspace(low, high, n_bins + 1), None
    scale = spread if spread > 0 else (high - low) / 100
    ends = np.arcsinh(np.array([min(low, threshold), max(high, threshold)]) / scale)
    return "symlog", scale * np.sinh(np.linspace(ends[0], ends[1], n_bins + 1)), scale


def counts_scale(counts) -> str:
    """``"log"`` or ``"linear"`` for the row-count axis, by the rule in the module docstring."""
    counts = np.asarray(counts, dtype=np.float64)
    filled = counts[counts > 0]
    if filled.size and filled.max() > LOG_COUNTS_RATIO * filled.min():
        return "log"
    return "linear"


def score_histogram(ax, scores, threshold, labels=None, what="rows"):
    """Histogram of ``scores`` (normal and anomalous rows apart when ``labels`` are given)
    with the threshold and the number of rows it flags (``what`` names the rows, e.g. "points").

    Returns ``(xscale, yscale)``, the axes chosen by the rule in the module docstring.
    """
    from matplotlib.colors import to_rgb

    scores = np.asarray(scores, dtype=np.float64)
    n_bins = min(60, max(10, int(np.sqrt(len(scores)))))
    xscale, bins, linthresh = histogram_axes(scores, threshold, n_bins)
    # anomalies are drawn over the normal rows as a bold outline, so both counts stay readable
    if labels is not None:
        labels = np.asarray(labels)
        parts = [(scores[labels == 0], NORMAL_COLOUR, "labelled normal", 0.55, 0.8),
                 (scores[labels == 1], ANOMALY_COLOUR, "labelled anomaly", 0.25, 2.0)]
    else:
        parts = [(scores, NORMAL_COLOUR, what, 0.7, 0.8)]
    all_counts = []
    for values, colour, name, alpha, width in parts:
        if len(values):
            counts, _, _ = ax.hist(values, bins=bins, facecolor=(*to_rgb(colour), alpha), edgecolor=colour,
                                   linewidth=width, histtype="stepfilled", label=f"{name} ({len(values)})")
            all_counts.append(counts)
    flagged = int((scores > threshold).sum())
    ax.axvline(threshold, color=THRESHOLD_COLOUR, linestyle="--", linewidth=1.2,
               label=f"threshold {threshold:.4g}: {flagged} of {len(scores)} {what} flagged")
    if xscale == "log":
        ax.set_xscale("log")
    elif xscale == "symlog":
        ax.set_xscale("symlog", linthresh=linthresh)
    yscale = counts_scale(np.concatenate(all_counts)) if all_counts else "linear"
    if yscale == "log":
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.6)
    axis_note = {"log": " (log scale)", "symlog": " (symmetric log scale)"}.get(xscale, "")
    ax.set(title="score distribution", xlabel=f"anomaly score, higher = more anomalous{axis_note}",
           ylabel=what + (" (log scale)" if yscale == "log" else ""))
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    return xscale, yscale


# --------------------------------------------------------------------------
# ROC and precision-recall


def _operating_point(scores, labels, threshold):
    flagged = scores > threshold
    positives = labels == 1
    true_alarms = int((flagged & positives).sum())
    return {
        "flagged": int(flagged.sum()),
        "fpr": float((flagged & ~positives).sum() / max(1, (~positives).sum())),
        "recall": true_alarms / max(1, int(positives.sum())),
        "precision": true_alarms / flagged.sum() if flagged.any() else None,
    }


def roc_panel(ax, scores, labels, threshold):
    """scikit-learn's ROC curve with the chance diagonal and the model's threshold marked."""
    from sklearn.metrics import RocCurveDisplay

    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(int)
    display = RocCurveDisplay.from_predictions(labels, scores, ax=ax, name="detector", plot_chance_level=True,
                                               chance_level_kw={"label": "chance (AUC 0.5)"})
    display.line_.set(color=NORMAL_COLOUR)
    point = _operating_point(scores, labels, threshold)
    ax.plot([point["fpr"]], [point["recall"]], "o", color=THRESHOLD_COLOUR, markersize=7,
            label=f"threshold {threshold:.4g} ({point['flagged']} flagged)")
    ax.set(title=f"ROC curve (AUC {display.roc_auc:.3f})", xlabel="false positive rate",
           ylabel="true positive rate (recall)", aspect="auto")
    ax.legend(loc="lower right", fontsize=8)


def pr_panel(ax, scores, labels, threshold):
    """scikit-learn's precision-recall curve with the prevalence baseline and the threshold.

    The curve omits ``precision_recall_curve``'s closing point (recall 0, precision 1),
    which belongs to no threshold and draws a spike at recall 0 when the top-scoring
    row is normal.
    """
    from sklearn.metrics import PrecisionRecallDisplay, average_precision_score, precision_recall_curve

    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(int)
    precision, recall, _ = precision_recall_curve(labels, scores)
    prevalence = float(labels.mean())
    average_precision = float(average_precision_score(labels, scores))
    display = PrecisionRecallDisplay(precision[:-1], recall[:-1], average_precision=average_precision,
                                     prevalence_pos_label=prevalence)
    baseline = f"prevalence {prevalence:.1%} ({int(labels.sum())} of {len(labels)}): random ranking"
    display.plot(ax=ax, name="detector", plot_chance_level=True, chance_level_kw={"label": baseline})
    display.line_.set(color=NORMAL_COLOUR)
    point = _operating_point(scores, labels, threshold)
    if point["precision"] is not None:
        ax.plot([point["recall"]], [point["precision"]], "o", color=THRESHOLD_COLOUR, markersize=7,
                label=f"threshold {threshold:.4g} ({point['flagged']} flagged)")
    ax.set(title=f"precision-recall (AP {average_precision:.3f})", xlabel="recall", ylabel="precision",
           aspect="auto")
    ax.legend(loc="best", fontsize=8, framealpha=0.9)


# --------------------------------------------------------------------------
# per-feature heat map

_UNIT_LABELS = {
    "contribution": "contribution to the row's score\n(the columns add up to the score)",
    "share": "mean share of the members' attributions",
}


def heat_panel(figure, ax, heat):
    """Per-feature values of the top rows: one row per scored row, labelled by its id.

    ``heat`` is ``{"values", "columns", "rows"}`` plus optional ``"title"``,
    ``"row_label"`` (what the row labels are, default the row number) and ``"unit"``
    (``"contribution"`` or ``"share"``). More than 40 columns are cut to the 40 with
    the largest mean absolute value over the rows shown, in their original order. When
    the largest value is more than twice the 98th percentile, the colour scale ends at
    that percentile (an arrow on the colourbar), so one extreme cell does not turn the
    rest of the map dark.
    """
    values = np.asarray(heat["values"], dtype=np.float64)
    columns = list(heat["columns"])
    title = heat.get("title", "per-feature contributions, top rows")
    if len(columns) > MAX_HEAT_COLUMNS:
        keep = np.sort(np.argsort(-np.abs(values).mean(axis=0), kind="stable")[:MAX_HEAT_COLUMNS])
        values, columns = values[:, keep], [columns[j] for j in keep]
        title += f" ({MAX_HEAT_COLUMNS} of {len(heat['columns'])} columns, largest on average)"
    # an ensemble's title says "shares"; plain detectors give contributions
    unit = heat.get("unit") or ("share" if "share" in title else "contribution")
    top = float(np.percentile(values, 98))
    clipped = top > 0 and values.max() > 2 * top
    image = ax.imshow(values, aspect="auto", cmap="viridis", interpolation="nearest",
                      vmax=top if clipped else None)
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels([plain_text(c, MAX_LABEL_CHARS) for c in columns], rotation=90,
                       fontsize=7 if len(columns) > 20 else 9)
    ax.set_yticks(range(len(heat["rows"])))
    ax.set_yticklabels([plain_text(r, MAX_LABEL_CHARS) for r in heat["rows"]],
                       fontsize=7 if len(heat["rows"]) > 20 else 9)
    ax.set(title=plain_text(title), ylabel=plain_text(heat.get("row_label", "row (file order, from 0)")),
           xlabel="column")
    colourbar = figure.colorbar(image, ax=ax, extend="max" if clipped else "neither")
    colourbar.set_label(_UNIT_LABELS.get(unit, unit), fontsize=8)


def loss_panel(ax, history):
    """Training (and validation) loss by epoch."""
    loss = np.asarray(history.get("loss", []), dtype=np.float64)
    epochs = np.arange(1, len(loss) + 1)
    ax.plot(epochs, loss, color=NORMAL_COLOUR, label="training loss")
    val_loss = np.asarray(history.get("val_loss") or [], dtype=np.float64)
    if len(val_loss) == len(loss):
        ax.plot(epochs, val_loss, color="tab:orange", label="validation loss")
    if loss.size and np.all(loss > 0) and loss.max() > 10 * loss.min():
        ax.set_yscale("log")
    ax.set(title="training loss", xlabel="epoch", ylabel="loss")
    ax.legend(loc="upper right", fontsize=8)
