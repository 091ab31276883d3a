"""``--plot`` for a series model: the series, its point scores and its alarms over time.

One panel per value column (at most :data:`MAX_COLUMNS`, those carrying the most of the
alarms' scores first when there are more), sharing the time axis, then the point
scores with the model's point threshold. Alarm points (scores at or above the
threshold) are marked in red on every panel; with labels, the labelled anomalous
points are shaded. Uses matplotlib's Agg canvas directly (no pyplot, no global state);
written atomically.
"""
from __future__ import annotations

import numpy as np

MAX_COLUMNS = 6
_PANEL_INCHES = (11.0, 1.9)


def time_axis(times, time_kind):
    """``times`` as matplotlib plots them: datetimes for ``"datetime"`` (int64 nanoseconds), else as they are."""
    times = np.asarray(times)
    return times.astype("datetime64[ns]") if time_kind == "datetime" else times


def shown_columns(columns, terms, alarms) -> list:
    """Indices of the value columns to draw: all of them, or the :data:`MAX_COLUMNS` whose terms weigh most
    at the alarms (over every point when there is none)."""
    if len(columns) <= MAX_COLUMNS:
        return list(range(len(columns)))
    basis = terms[alarms] if alarms.any() else terms
    weight = np.abs(basis).sum(axis=0)
    return sorted(np.argsort(-weight, kind="stable")[:MAX_COLUMNS].tolist())


def series_figure(times, values, columns, scores, threshold, terms=None, labels=None, time_label="time",
                  title=None):
    """A Figure of the series ``values`` (points, columns) and its point ``scores`` over ``times``.

    ``terms`` (points, columns), the points' own score terms per column, choose which
    columns to draw when there are more than :data:`MAX_COLUMNS`; ``labels`` (0/1 per
    point) shade the labelled anomalies.
    """
    from . import plots

    values = np.asarray(values, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    alarms = scores >= threshold
    shown = shown_columns(columns, np.asarray(terms if terms is not None else values), alarms)
    figure = plots.new_figure(_PANEL_INCHES[0], _PANEL_INCHES[1] * (len(shown) + 1.4))
    if title:
        figure.suptitle(plots.plain_text(title))
    heights = [1.0] * len(shown) + [1.4]
    axes = figure.subplots(len(shown) + 1, 1, sharex=True, gridspec_kw={"height_ratios": heights})
    for ax, j in zip(axes, shown):
        ax.plot(times, values[:, j], color=plots.NORMAL_COLOUR, linewidth=0.8)
        ax.scatter(times[alarms], values[alarms, j], s=9, color=plots.ANOMALY_COLOUR, zorder=3)
        ax.set_ylabel(plots.plain_text(columns[j], plots.MAX_LABEL_CHARS))
    score_ax = axes[-1]
    score_ax.plot(times, scores, color="tab:gray", linewidth=0.8)
    score_ax.scatter(times[alarms], scores[alarms], s=9, color=plots.ANOMALY_COLOUR, zorder=3,
                     label=f"alarm ({int(alarms.sum())} points)")
    score_ax.axhline(threshold, color=plots.THRESHOLD_COLOUR, linestyle="--", linewidth=1,
                     label=f"threshold {threshold:.4g}")
    score_ax.set_ylabel("point score")
    score_ax.set_xlabel(plots.plain_text(time_label))
    if labels is not None:
        _shade_labelled(axes, times, np.asarray(labels, dtype=bool))
    score_ax.legend(loc="upper left", fontsize="small")
    if len(shown) < len(columns):
        axes[0].set_title(f"{len(shown)} of {len(columns)} value columns: those weighing most at the alarms",
                          fontsize="small")
    return figure


def model_series_figure(detector, frame, scores, terms=None, labels=None, title=None):
    """:func:`series_figure` of a series model (``fit --window``) on the series ``frame``, at its point threshold."""
    from .validation import as_feature_matrix
    from .windows import series_times

    settings = detector.series_windows_
    times, kind = series_times(frame, settings.time_column)
    values = as_feature_matrix(frame[list(settings.value_columns)], what="the series")
    return series_figure(time_axis(times, kind), values, list(settings.value_columns), scores,
                         settings.point_scale[1], terms=terms, labels=labels,
                         time_label=settings.time_column or "row", title=title)


def plot_model_series(path, detector, frame, scores, terms=None, labels=None, title=None) -> None:
    """Write :func:`model_series_figure` as a PNG to ``path`` (atomically)."""
    from .outputs import write_output
    from .plots import png_bytes

    write_output(path, png_bytes(model_series_figure(detector, frame, scores, terms, labels, title)))


def _shade_labelled(axes, times, labelled) -> None:
    """Shade every run of labelled points on every panel (one legend entry)."""
    from .nab_eval import windows_from_labels

    for ax in axes:
        for k, (start, end) in enumerate(windows_from_labels(times, labelled)):
            ax.axvspan(start, end, color="tab:orange", alpha=0.25, linewidth=0,
                       label="labelled anomaly" if ax is axes[-1] and k == 0 else None)
