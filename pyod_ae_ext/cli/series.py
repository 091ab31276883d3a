"""Time series on the command line: ``fit --window``, and ``score``, ``explain``, ``evaluate`` and
``threshold`` of a series model.

The commands themselves live in :mod:`pyod_ae_ext.cli.fit`, ``score`` and ``analysis``;
they call these helpers when a series is involved (see :mod:`pyod_ae_ext.windows`).
"""
from __future__ import annotations

import time

import click
import numpy as np

from ..errors import DataError, ParameterError

series_fit_options = [
    click.option("--time-column", metavar="NAME",
                 help="Series mode: the time column (numbers or dates); with --window the data is one series "
                      "and each point gets a score."),
    click.option("--window", type=click.IntRange(min=2), metavar="N",
                 help="Series mode: points per sliding window (a window is one row for the detector)."),
    click.option("--stride", type=click.IntRange(min=1), default=1, show_default=True, metavar="N",
                 help="Series mode: points between window starts."),
    click.option("--fold", type=click.Choice(["auto", "mean", "max", "point"]), default="auto", show_default=True,
                 help="Series mode: a point's score is the mean or max of the scores of the windows that contain "
                      "it, or (point) the mean of its own reconstruction terms in them; auto: point where the "
                      "detector has per-feature contributions, else mean."),
    click.option("--gaps", type=click.Choice(["refuse", "interpolate"]), default="refuse", show_default=True,
                 help="Series mode: missing or irregular timestamps are an error, or resampled onto the "
                      "regular grid by linear interpolation."),
]


def series_fit_option_decorators(func):
    for option in reversed(series_fit_options):
        func = option(func)
    return func


def check_series_fit(window, time_column, sample, engine) -> bool:
    """Whether ``fit`` runs in series mode; ParameterError for options that do not go together."""
    if window is None:
        if time_column is not None:
            raise ParameterError("--time-column fits on sliding windows of a series: give --window N as well")
        return False
    if sample is not None:
        raise ParameterError("--sample draws rows of a table; a series is fitted on all its windows: drop --sample")
    if engine != "local":
        raise ParameterError("series mode (--window) fits locally: drop --engine dask")
    return True


def fit_series_from_file(data, name, detector, columns, exclude, id_columns, label_column, time_column, window,
                         stride, fold, gaps, fit_detector, note):
    """Fit ``detector`` on the windows of the series in ``data``; return (seconds the fit took, points).

    The label column, like the time, id and excluded columns, is never a value column.
    """
    from ..columns import split_names as _split_names
    from ..data import _check_present, read_frame
    from ..windows import mark_series_model, series_settings, training_windows

    frame = read_frame(data)
    if label_column is not None:
        _check_present(frame, [label_column], "--label-column")
    not_values = {time_column, label_column, *_split_names(exclude), *_split_names(id_columns)}
    value_columns = _split_names(columns) or [c for c in frame.columns if c not in not_values]
    if label_column is not None and label_column in value_columns:
        raise ParameterError(f"--columns names the label column {label_column!r}: a label is never a value column")
    _refuse_text_columns(frame, value_columns)
    settings = series_settings(frame, window, stride, fold, gaps, time_column, value_columns)
    note(f"fitting {name} on {len(frame)} points x {len(settings.value_columns)} column(s) in windows of {window} "
         f"(stride {stride}) ...")
    windows = training_windows(detector, frame, settings)
    started = time.perf_counter()
    fit_detector(name, detector, windows)
    seconds = time.perf_counter() - started
    mark_series_model(detector, settings, frame)
    return seconds, len(frame)


def _refuse_text_columns(frame, value_columns) -> None:
    import pandas as pd

    text = [c for c in value_columns if c in frame.columns and not (
        pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))]
    if text:
        raise DataError(f"the series' value column(s) {', '.join(map(repr, text))} are not numeric; leave them out "
                        f"with --exclude {','.join(map(str, text))}, or name the value columns with --columns")


def score_series_file(detector, data, id_columns, output, fmt, top, note, names=None):
    """Write one score per point of the series in ``data`` (its time column and ids first).

    Without ``id_columns``, the id columns the model was fitted with are copied where
    ``data`` has them; ``names`` (:class:`pyod_ae_ext.streaming.OutputColumns`) names the
    output columns.
    """
    import pyarrow as pa

    from .. import streaming
    from ..data import read_frame
    from ..windows import score_series

    settings = detector.series_windows_
    frame = read_frame(data)
    kept = _point_ids(detector, frame, id_columns, data)
    names = names or streaming.OutputColumns()
    names.check(kept)
    if names.probability_method != "linear":
        raise ParameterError("a series model's probability is linear between the training series' lowest and "
                             "highest point score: drop --probability unify")
    scores = score_series(detector, frame)
    ids = pa.Table.from_pandas(frame[kept], preserve_index=False) if kept else None
    rule = ("mean of its own terms in" if settings.fold == "point" else settings.fold + " of")
    note(f"scored {len(scores)} points from windows of {settings.window} (stride {settings.stride}, "
         f"each point the {rule} the windows covering it)")
    streaming.write_results([streaming.Scored(ids, scores, 0)], output, fmt, PointScale(settings), top,
                            names=names)


def _fitted_with(detector, key, default=None):
    """What ``adscore fit`` recorded of its options (``fit_info_``), e.g. the label column."""
    return (getattr(detector, "fit_info_", None) or {}).get(key, default)


def _point_ids(detector, frame, id_columns, data) -> list:
    """The columns that identify a series' points in outputs: its time column, then the ``--id-column``
    columns, else the id columns given to ``fit`` that ``frame`` has."""
    from ..columns import split_names as _split_names

    ids = _split_names(id_columns)
    missing = [c for c in ids if c not in frame.columns]
    if missing:
        raise ParameterError(f"--id-column {missing[0]!r} is not a column of {data}")
    if not ids:
        ids = [c for c in _fitted_with(detector, "id_columns", []) if c in frame.columns]
    time_column = detector.series_windows_.time_column
    return list(dict.fromkeys(c for c in [time_column, *ids] if c is not None))


class PointScale:
    """What the result writer reads from a detector (``threshold_``, ``decision_scores_`` for the
    probability's min-max scaling), on the point-score scale a series model saved."""

    def __init__(self, settings):
        from ..windows import point_cut

        low, _, high = settings.point_scale
        # the writer labels score > threshold_; point labels are score >= threshold (windows.point_labels)
        self.threshold_ = point_cut(settings)
        self.decision_scores_ = np.array([low, high])
        # PyOD's predict_proba reads these: its "linear" probability is then the min-max
        # scaling between the training series' lowest and highest point score
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(int)
        self._mu, self._sigma = float(np.mean(self.decision_scores_)), float(np.std(self.decision_scores_)) or 1.0


def evaluate_series_file(detector, data, windows_file, time_column, probation, plot=None, title=None):
    """NAB-style metrics of the model's alarms (score above its threshold) on the series in ``data``.

    ``plot``: also write the series, its scores and alarms there, the windows shaded.
    """
    from ..data import read_frame
    from ..nab_eval import evaluate_alarms, load_windows, window_index
    from ..series_plots import plot_model_series
    from ..windows import point_labels, score_series, series_times

    settings = getattr(detector, "series_windows_", None)
    if settings is None:
        raise ParameterError("--windows evaluates a series model: fit it with --time-column and --window")
    time_column = time_column or settings.time_column
    if time_column is None:
        raise ParameterError("--windows needs the time column: give --time-column NAME")
    frame = read_frame(data)
    times, kind = series_times(frame, time_column)
    windows = load_windows(windows_file, data, kind)
    scores = score_series(detector, frame)
    alarms = point_labels(detector, scores).astype(bool)
    result = evaluate_alarms(times, alarms, windows, probationary_percent=probation)
    if plot:
        plot_model_series(plot, detector, frame, scores, labels=window_index(times, windows) >= 0, title=title)
    return {"n_points": int(len(frame)), "threshold": settings.point_scale[1], "n_alarms": int(alarms.sum()),
            **result.as_dict()}


def explain_series_file(detector, data, id_columns, top, n_features, plot=None, title=None) -> dict:
    """``explain`` of a series model: the top-scoring points of the series in ``data`` and the value columns
    that carry their scores (each point's own reconstruction terms, as ``fold="point"`` uses them).

    ``plot``: also write the series, its scores and alarms there (labelled points shaded
    when ``data`` has the label column given to ``fit``).
    """
    from ..analysis import Contributions, explain_scores
    from ..data import read_frame
    from ..registry import get_registry
    from ..series_plots import plot_model_series
    from ..windows import point_contributions

    settings = detector.series_windows_
    frame = read_frame(data)
    kept = _point_ids(detector, frame, id_columns, data)
    scores, terms = point_contributions(detector, frame)
    name = get_registry().name_of(detector) or type(detector).__name__
    source = f"{name}: each point's own reconstruction terms per value column"
    if settings.fold != "point":
        source += f" (its score is the {settings.fold} of the scores of the windows covering it)"
    result = explain_scores(name, scores, Contributions.of(terms, settings.value_columns, source),
                            settings.point_scale[1], top, n_features,
                            ids=frame[kept].reset_index(drop=True) if kept else None, flag_at_threshold=True)
    if plot:
        labels, _ = _labels_in(detector, frame, None, data, required=False)
        plot_model_series(plot, detector, frame, scores, terms, labels, title)
    return result


def series_report(detector, data, label_column, columns, exclude, id_columns, metadata, **names) -> str:
    """``adscore report`` of a series model on the series in ``data`` (labels: the flag's column, else the one
    given to ``fit`` when ``data`` has it)."""
    from ..data import read_frame
    from ..report import build_series_report

    if columns or exclude:
        raise ParameterError("a series model reads the value columns it was fitted on: drop --columns and --exclude")
    frame = read_frame(data)
    labels, _ = _labels_in(detector, frame, label_column, data, required=False)
    kept = _point_ids(detector, frame, id_columns, data)
    return build_series_report(detector, frame, ids=frame[kept].reset_index(drop=True) if kept else None,
                               labels=labels, metadata=metadata, **names)


def labelled_points(detector, data, label_column, alternative=None):
    """(frame, 0/1 labels, label column) of the series in ``data`` for a series model.

    The label column is the flag's, else the one given to ``fit``; ``alternative`` names
    another way to give labels, for the error when there is none.
    """
    from ..data import read_frame

    frame = read_frame(data)
    labels, label_column = _labels_in(detector, frame, label_column, data, required=True, alternative=alternative)
    return frame, labels, label_column


def _labels_in(detector, frame, label_column, data, required, alternative=None):
    """(0/1 labels per point, label column) of ``frame``: the flag's column, else the one given to ``fit``.

    A column named by the flag must exist. Without a usable column: (None, None), or with
    ``required`` an error that names ``alternative``, another way to give labels.
    """
    from ..data import binary_labels

    instead = f", or {alternative}" if alternative else ""
    if label_column is not None and label_column not in frame.columns:
        raise DataError(f"label column {label_column!r} is not a column of {data}; give --label-column "
                        f"NAME{instead}")
    label_column = label_column or _fitted_with(detector, "label_column")
    if label_column is None:
        if required:
            raise ParameterError(f"a series model needs labels: give --label-column NAME (0/1 per point){instead}")
        return None, None
    if label_column not in frame.columns:
        if required:
            raise DataError(f"label column {label_column!r} is not a column of {data}; give --label-column "
                            f"NAME{instead}")
        return None, None
    return binary_labels(frame[label_column], label_column), label_column


def evaluate_series_labels(detector, data, label_column, time_column, probation, plot=None, title=None):
    """A series model against a 0/1 label column of ``data``: point and NAB-style window metrics.

    Point metrics (``point_*``): ROC-AUC and average precision of the point scores, and
    precision, recall and F1 of the alarms (points at or above the model's point
    threshold). Window metrics, with the keys of :func:`evaluate_series_file`: every run
    of consecutive labelled points is one window, scored the NAB way.
    """
    from ..analysis import evaluate as evaluate_scores
    from ..nab_eval import evaluate_alarms, windows_from_labels
    from ..series_plots import plot_model_series
    from ..windows import point_cut, point_labels, score_series, series_times

    settings = detector.series_windows_
    frame, labels, label_column = labelled_points(detector, data, label_column, "--windows LABELS.json")
    times = series_times(frame, time_column or settings.time_column)[0]
    scores = score_series(detector, frame)
    threshold = settings.point_scale[1]
    # evaluate() flags score > threshold; a series model's alarms are score >= threshold
    points = evaluate_scores(scores, labels, point_cut(settings))
    alarms = point_labels(detector, scores).astype(bool)
    windows = evaluate_alarms(times, alarms, windows_from_labels(times, labels), probationary_percent=probation)
    if plot:
        plot_model_series(plot, detector, frame, scores, labels=labels, title=title)
    return {"n_points": int(len(frame)), "threshold": threshold, "n_alarms": int(alarms.sum()),
            "label_column": label_column, "n_anomalous_points": points["n_anomalies"],
            "point_roc_auc": points["roc_auc"], "point_average_precision": points["average_precision"],
            "point_precision": points["precision"], "point_recall": points["recall"], "point_f1": points["f1"],
            **windows.as_dict()}


def print_series_evaluation(metrics: dict) -> None:
    click.echo(f"{metrics['n_points']} points, {metrics['windows']} labelled window(s) scored, "
               f"{metrics['n_alarms']} alarm point(s) at threshold {metrics['threshold']:.6g}")
    if "point_roc_auc" in metrics:
        click.echo(f"point ROC-AUC      {metrics['point_roc_auc']:.4f} ({metrics['n_anomalous_points']} labelled "
                   f"point(s) in {metrics['label_column']!r})")
        click.echo(f"point avg precision {metrics['point_average_precision']:.4f}")
        click.echo(f"point alarms       precision {metrics['point_precision']:.4f}, recall "
                   f"{metrics['point_recall']:.4f}, F1 {metrics['point_f1']:.4f}")
    click.echo(f"window recall      {metrics['recall']:.4f} ({metrics['detected_windows']} of {metrics['windows']})")
    click.echo(f"window precision   {metrics['precision']:.4f} ({metrics['false_alarms']} false alarm(s))")
    click.echo(f"NAB score          {metrics['nab_score']:.2f} (standard profile; raw {metrics['raw_score']:.4f}, "
               f"null {metrics['null_score']:.4g}, perfect {metrics['perfect_score']:.4g})")
