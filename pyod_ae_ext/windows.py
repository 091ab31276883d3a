"""Sliding windows over a time series, and window scores folded back to the time points (torch-free).

Two ways to give a detector sequences:

**One long series** (or several aligned value columns) with a time column. The series
is cut into windows of ``window`` consecutive points every ``stride`` points; each
window is one row, time-major (``value@0, value@1, ...``; with several columns
``a@0, b@0, a@1, b@1, ...``), the layout of the sequence backbones'
``input_shape=(window, n_columns)``. The detector is fitted on these rows and scores
windows; each time point then gets one score:

- ``fold="mean"``: the mean of the scores of every window that contains the point;
- ``fold="max"``: their maximum;
- ``fold="point"``: the mean, over the windows that contain the point, of the point's
  own part of each window's score: the detector's per-feature contributions (squared
  reconstruction errors, or the VAE's per-feature negative log-likelihood) at that
  time step, summed over the columns. This scores each point by how badly it is
  reconstructed, as EncDec-AD does (Malhotra et al. 2016, "LSTM-based encoder-decoder
  for multi-sensor anomaly detection", section 2.2), instead of spreading a window's
  score over all its points; it needs a detector with per-feature contributions
  (``feature_contributions``: ae, toll, ksparse-ae, vae/vrae with a reconstruction
  score) and leaves out any latent-space term of the score;
- ``fold="auto"`` (default): ``"point"`` for a detector with per-feature contributions,
  else ``"mean"``; the model file records the rule chosen. On the 35 NAB series and
  on synthetic series, ``"point"`` gave the best NAB scores of the three rules for every
  detector that has it (benchmarks/RESULTS.md, "Time series").

When ``stride`` does not divide ``n_points - window``, one more window ending at the
last point is added, so every point is covered by at least one window.

Timestamps (numbers, or dates and times that pandas parses) must increase: an
unsorted timestamp is refused naming the row (sort the file first; scores are given in
the file's order, which is why it is not re-sorted silently). The sampling period is the median step of the training
series and is saved with the model. A step that differs from it (a missing point, an
irregular timestamp) is refused with ``gaps="refuse"`` (default), or, with
``gaps="interpolate"``, the series is resampled onto the regular grid
``t_0 + k * period`` by linear interpolation between its neighbours, and every original
point takes the score of the grid point nearest to it; with ``gaps="interpolate"``,
points that share a timestamp are averaged first (and each gets that time's score),
while ``gaps="refuse"`` refuses a repeated timestamp too. A series to be scored must
have the model's period.

**A table whose rows are fixed-length sequences** (e.g. heartbeats) needs nothing
from here: each row is scored as it is, with a sequence backbone and
``input_shape=(T, F)`` (or None for one channel, one column per time step).

:class:`WindowSettings` is what a model file stores (``series_windows`` in its
metadata, checked on load).
"""
from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np

from .errors import DataError, InconsistentModelError, ParameterError
from .validation import as_feature_matrix, check_choice, check_number

SERIES_CONTAMINATION = 0.01
"""The share of a series' points ``adscore fit --window`` flags when no contamination is given: anomalies
in a stream are rare events, and PyOD's 0.1 raises an alarm at every tenth point. With the
default ``ae`` on the 35 NAB series, the NAB standard score is -730 when 10% of the points
are alarms and 13 at 1% (37 at 0.5%); on the synthetic series 35 and 69 (53)
(``benchmarks/RESULTS.md``, "Time series"). Python users pass ``contamination=0.01`` to
the detector they give :func:`fit_series`."""

FOLD_RULES = ("mean", "max", "point")
WINDOW_FOLDS = ("mean", "max")
GAP_POLICIES = ("refuse", "interpolate")
TIME_KINDS = ("number", "datetime")
# Relative tolerance when comparing a numeric step with the period (float timestamps).
_STEP_TOLERANCE = 1e-9


@dataclasses.dataclass(frozen=True)
class WindowSettings:
    """How a series becomes windows and window scores become point scores.

    Parameters
    ----------
    window : int >= 2
        Points per window.
    stride : int >= 1, default 1
        Points between the starts of consecutive windows.
    fold : {"auto", "mean", "max", "point"}, default "auto"
        How the scores of the windows covering a point become its score (module docstring);
        "auto" is resolved to "point" or "mean" when the detector is fitted.
    gaps : {"refuse", "interpolate"}, default "refuse"
        Irregular or missing timestamps: an error, or linear resampling onto the grid.
    time_column : str or None
        Name of the time column (None: the points are equally spaced in file order).
    value_columns : tuple of str
        The series' value columns, in window order (set when fitting).
    time_kind : {"number", "datetime"} or None
        What the time column holds (set when fitting).
    period : float or None
        The sampling step, in the time column's units (nanoseconds for dates), set when fitting.
    point_scale : tuple (low, threshold, high) or None
        The training series' point scores, set when fitting: their minimum, the
        threshold (the same fraction of training points above it as the detector flags
        of its training windows) and their maximum. A point's label is
        ``score >= threshold``; point scores are on another scale than window scores
        with ``fold="point"``, so the detector's own ``threshold_`` is not used for them.
    """

    window: int
    stride: int = 1
    fold: str = "auto"
    gaps: str = "refuse"
    time_column: str | None = None
    value_columns: tuple = ()
    time_kind: str | None = None
    period: float | None = None
    point_scale: tuple | None = None

    def check(self) -> "WindowSettings":
        """Raise ParameterError naming a bad setting; return self."""
        check_number("window", self.window, 2, integer=True)
        check_number("stride", self.stride, 1, integer=True)
        check_choice("fold", self.fold, ["auto", *FOLD_RULES])
        check_choice("gaps", self.gaps, list(GAP_POLICIES))
        if self.stride > self.window:
            raise ParameterError(f"stride={self.stride} is larger than window={self.window}, so some points would "
                                 "be in no window; use a stride of at most the window length")
        if self.time_column is not None and not isinstance(self.time_column, str):
            raise ParameterError(f"time_column must be a column name or None, got {self.time_column!r}")
        return self

    def to_json(self) -> dict:
        """The settings as a JSON-able dict (for the model file)."""
        out = dataclasses.asdict(self)
        out["value_columns"] = list(self.value_columns)
        out["point_scale"] = None if self.point_scale is None else list(self.point_scale)
        return out

    @classmethod
    def from_json(cls, data) -> "WindowSettings":
        """Settings from :meth:`to_json`'s dict, every entry checked; InconsistentModelError otherwise."""
        if not isinstance(data, dict) or set(data) != {f.name for f in dataclasses.fields(cls)}:
            raise InconsistentModelError(f"'series_windows' must be an object with the entries "
                                         f"{sorted(f.name for f in dataclasses.fields(cls))}")
        columns = data["value_columns"]
        if not (isinstance(columns, list) and columns and all(isinstance(c, str) for c in columns)):
            raise InconsistentModelError("'series_windows.value_columns' must be a non-empty list of column names")
        if data["fold"] not in FOLD_RULES:
            raise InconsistentModelError(f"'series_windows.fold' must be one of {list(FOLD_RULES)}")
        if data["time_kind"] not in (None, *TIME_KINDS):
            raise InconsistentModelError(f"'series_windows.time_kind' must be one of {list(TIME_KINDS)} or null")
        period = data["period"]
        if period is not None and not (isinstance(period, numbers.Real) and not isinstance(period, bool)
                                       and math.isfinite(period) and period > 0):
            raise InconsistentModelError("'series_windows.period' must be a positive finite number or null")
        if (data["time_column"] is None) != (data["time_kind"] is None) or (period is None) != (
                data["time_kind"] is None):
            raise InconsistentModelError("'series_windows' must give time_column, time_kind and period together")
        scale = data["point_scale"]
        if not (isinstance(scale, list) and len(scale) == 3 and all(
                isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in scale)
                and scale[0] <= scale[1] <= scale[2]):
            raise InconsistentModelError("'series_windows.point_scale' must be 3 finite numbers low <= threshold "
                                         "<= high")
        settings = cls(**{**data, "value_columns": tuple(columns), "point_scale": tuple(float(v) for v in scale)})
        try:
            return settings.check()
        except ParameterError as exc:
            raise InconsistentModelError(f"'series_windows' holds a bad setting: {exc}") from None

    def feature_names(self) -> list[str]:
        """Names of a window's features, time-major: ``col@0`` for every column, then ``col@1``, ..."""
        return [f"{column}@{step}" for step in range(self.window) for column in self.value_columns]


@dataclasses.dataclass
class RegularSeries:
    """A series on a regular grid: ``values`` (grid points, columns) and, per original point, its grid index."""

    values: np.ndarray
    grid_index: np.ndarray
    period: float | None


# ---- time stamps --------------------------------------------------------------


def parse_times(column, name: str) -> tuple[np.ndarray, str]:
    """Timestamps as float64 numbers (``"number"``) or int64 nanoseconds (``"datetime"``).

    Raises DataError naming the first value that is neither a number nor a date.
    """
    import pandas as pd

    series = pd.Series(column)
    if pd.api.types.is_bool_dtype(series):
        raise DataError(f"time column {name!r} holds true/false values; it must hold numbers or dates")
    if pd.api.types.is_numeric_dtype(series):
        times = series.to_numpy(dtype=np.float64, na_value=np.nan)
        _refuse_missing(np.isnan(times) | np.isinf(times), name, series)
        return times, "number"
    if pd.api.types.is_datetime64_any_dtype(series):
        parsed = series
    else:
        parsed = pd.to_datetime(series, errors="coerce", format="mixed")
        unparsed = parsed.isna() & series.notna()
        if unparsed.any():
            row = int(np.flatnonzero(unparsed.to_numpy())[0])
            raise DataError(f"time column {name!r} holds {series.iloc[row]!r} at row {row}, which is neither a "
                            "number nor a date/time; fix the value or choose another --time-column")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    _refuse_missing(parsed.isna().to_numpy(), name, series)
    return parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64), "datetime"


def series_times(frame, time_column: str | None) -> tuple[np.ndarray, str]:
    """(times, kind) of the rows of ``frame``: its ``time_column`` parsed by :func:`parse_times`, or the row
    numbers (``"number"``) without a time column."""
    if time_column is None:
        return np.arange(len(frame)), "number"
    if time_column not in frame.columns:
        raise DataError(f"time column {time_column!r} is not in the data")
    return parse_times(frame[time_column], time_column)


def _refuse_missing(missing: np.ndarray, name: str, series) -> None:
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise DataError(f"time column {name!r} has no valid timestamp at row {row} ({series.iloc[row]!r}); "
                        "every point needs a time")


def check_increasing(times: np.ndarray, name: str, allow_repeats: bool = False) -> None:
    """Timestamps must increase (strictly, unless ``allow_repeats``); DataError naming the first row that does not."""
    steps = np.diff(times)
    bad = np.flatnonzero(steps < 0 if allow_repeats else steps <= 0)
    if bad.size:
        row = int(bad[0]) + 1
        if steps[bad[0]] == 0:
            raise DataError(f"time column {name!r}: row {row} repeats the timestamp of row {row - 1}; remove "
                            "duplicate times, or average them and resample with gaps='interpolate' "
                            "(--gaps interpolate)")
        raise DataError(f"time column {name!r}: row {row} is earlier than row {row - 1}; timestamps must "
                        f"increase: sort the series by {name!r} first")


def median_step(times: np.ndarray, name: str) -> float:
    """The typical sampling step: the median difference between consecutive distinct timestamps."""
    steps = np.diff(times)
    steps = steps[steps > 0]
    if not steps.size:
        raise DataError(f"time column {name!r} has fewer than 2 distinct timestamps; a series needs at least 2")
    return float(np.median(steps))


def regularise(times: np.ndarray, values: np.ndarray, period: float, gaps: str, name: str) -> RegularSeries:
    """The series on the grid ``t_0 + k * period``: as it is when already regular, else refused or interpolated."""
    steps = np.diff(times).astype(np.float64)
    irregular = np.flatnonzero(np.abs(steps - period) > _STEP_TOLERANCE * period)
    if not irregular.size:
        return RegularSeries(values, np.arange(times.size), period)
    if gaps == "refuse":
        row = int(irregular[0]) + 1
        raise DataError(f"time column {name!r} is not regular: the step before row {row} is "
                        f"{steps[irregular[0]] / period:.4g} periods (period {_describe_period(period, times)}), "
                        f"and {irregular.size} step(s) in all differ from it; fill the missing points, or "
                        "resample by linear interpolation with gaps='interpolate' (--gaps interpolate)")
    offsets = (times - times[0]).astype(np.float64)
    distinct, first = np.unique(offsets, return_index=True)
    # points sharing a timestamp are averaged (offsets are sorted, so each group is contiguous)
    averaged = np.add.reduceat(values, first, axis=0) / np.diff(np.append(first, offsets.size))[:, None]
    n_grid = int(math.floor(distinct[-1] / period + _STEP_TOLERANCE)) + 1
    grid = np.arange(n_grid) * period
    resampled = np.column_stack([np.interp(grid, distinct, averaged[:, j]) for j in range(values.shape[1])])
    nearest = np.clip(np.rint(offsets / period).astype(np.int64), 0, n_grid - 1)
    return RegularSeries(resampled, nearest, period)


def _describe_period(period: float, times: np.ndarray) -> str:
    return f"{period:g}" if times.dtype.kind == "f" else f"{period / 1e9:g} s"


# ---- windows ------------------------------------------------------------------


def window_starts(n_points: int, window: int, stride: int) -> np.ndarray:
    """First index of every window: 0, stride, 2*stride, ..., plus a last window ending at the last point."""
    if n_points < window:
        raise DataError(f"the series has {n_points} points, fewer than one window of {window}; "
                        "use a shorter window or a longer series")
    starts = np.arange(0, n_points - window + 1, stride)
    if starts[-1] != n_points - window:
        starts = np.append(starts, n_points - window)
    return starts


def window_matrix(values: np.ndarray, window: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, rows)``: each row one window of ``values`` (points, columns), flattened time-major."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    starts = window_starts(values.shape[0], window, stride)
    # (windows, columns, window) view without a copy; the fancy index copies only the chosen windows
    view = np.lib.stride_tricks.sliding_window_view(values, window, axis=0)
    return starts, view[starts].transpose(0, 2, 1).reshape(starts.size, window * values.shape[1])


def fold_scores(window_scores, starts, n_points: int, window: int, rule: str = "mean") -> np.ndarray:
    """One score per point from the scores of the windows covering it (``"mean"`` or ``"max"``).

    Point ``t`` is covered by the windows whose start ``s`` has ``s <= t < s + window``.
    """
    check_choice("fold", rule, list(WINDOW_FOLDS))
    window_scores = np.asarray(window_scores, dtype=np.float64)
    starts = np.asarray(starts, dtype=np.int64)
    if rule == "mean":
        total = np.zeros(n_points + 1)
        count = np.zeros(n_points + 1)
        np.add.at(total, starts, window_scores)
        np.add.at(total, starts + window, -window_scores)
        np.add.at(count, starts, 1.0)
        np.add.at(count, starts + window, -1.0)
        return np.cumsum(total)[:-1] / np.cumsum(count)[:-1]
    # max: the score sits at its window's start; each point takes the max over the starts t-window+1..t
    at_start = np.full(n_points + window - 1, -np.inf)
    np.maximum.at(at_start, starts + window - 1, window_scores)
    return np.lib.stride_tricks.sliding_window_view(at_start, window).max(axis=1)


def fold_point_terms(step_terms, starts, n_points: int) -> np.ndarray:
    """``fold="point"``: each point's mean, over the windows covering it, of its own term in them.

    ``step_terms`` (windows, window) holds each window's score terms per time step.
    """
    step_terms = np.asarray(step_terms, dtype=np.float64)
    positions = (np.asarray(starts, dtype=np.int64)[:, None] + np.arange(step_terms.shape[1])).ravel()
    total = np.bincount(positions, weights=step_terms.ravel(), minlength=n_points)
    return total / np.bincount(positions, minlength=n_points)


# ---- a series in a table ------------------------------------------------------


def series_settings(frame, window: int, stride: int = 1, fold: str = "auto", gaps: str = "refuse",
                    time_column: str | None = None, columns=None) -> WindowSettings:
    """Settings for fitting on ``frame`` (a DataFrame): its value columns, time kind and period."""
    settings = WindowSettings(window, stride, fold, gaps, time_column).check()
    if time_column is not None and time_column not in frame.columns:
        raise DataError(f"time column {time_column!r} is not in the data; its columns are "
                        f"{[str(c) for c in frame.columns][:20]}")
    value_columns = tuple(str(c) for c in (columns if columns is not None else frame.columns) if c != time_column)
    if not value_columns:
        raise DataError("the series has no value column besides the time column")
    time_kind = period = None
    if time_column is not None:
        times, time_kind = parse_times(frame[time_column], time_column)
        check_increasing(times, time_column, allow_repeats=gaps == "interpolate")
        period = median_step(times, time_column)
    return dataclasses.replace(settings, value_columns=value_columns, time_kind=time_kind, period=period)


def regular_values(frame, settings: WindowSettings) -> RegularSeries:
    """The value columns of ``frame`` on the regular grid of ``settings`` (checked as documented above)."""
    missing = [c for c in settings.value_columns if c not in frame.columns]
    if missing:
        raise DataError(f"the series lacks the column(s) {missing} the model was fitted on")
    values = as_feature_matrix(frame[list(settings.value_columns)], what="the series")
    if settings.time_column is None:
        return RegularSeries(values, np.arange(values.shape[0]), None)
    if settings.time_column not in frame.columns:
        raise DataError(f"time column {settings.time_column!r} is not in the data")
    times, kind = parse_times(frame[settings.time_column], settings.time_column)
    if kind != settings.time_kind:
        raise DataError(f"time column {settings.time_column!r} holds {kind}s but the model was fitted on "
                        f"{settings.time_kind}s")
    check_increasing(times, settings.time_column, allow_repeats=settings.gaps == "interpolate")
    return regularise(times, values, settings.period, settings.gaps, settings.time_column)


def series_windows(frame, settings: WindowSettings):
    """``(series, starts, windows)`` of ``frame`` as a DataFrame of window rows named by :meth:`feature_names`."""
    import pandas as pd

    series = regular_values(frame, settings)
    starts, rows = window_matrix(series.values, settings.window, settings.stride)
    return series, starts, pd.DataFrame(rows, columns=settings.feature_names(), copy=False)


def fit_series(detector, frame, settings: WindowSettings):
    """Fit ``detector`` on the windows of ``frame``; the settings are kept as ``detector.series_windows_``.

    A structured backbone (anything but ``"mlp"``) whose ``input_shape`` is None gets
    ``(window, n_columns)``, the layout of the window rows.
    """
    windows = training_windows(detector, frame, settings)
    detector.fit(windows)
    return mark_series_model(detector, settings, frame)


def training_windows(detector, frame, settings: WindowSettings):
    """The window rows to fit ``detector`` on (the first half of :func:`fit_series`)."""
    if settings.fold == "point" and not hasattr(detector, "feature_contributions"):
        raise ParameterError(_POINT_FOLD_NEEDS.format(name=type(detector).__name__))
    params = detector.get_params(deep=False)
    if params.get("backbone", "mlp") != "mlp" and "input_shape" in params and params["input_shape"] is None:
        detector.set_params(input_shape=(settings.window, len(settings.value_columns)))
    return series_windows(frame, settings)[2]


def mark_series_model(detector, settings: WindowSettings, frame):
    """Record on a detector fitted on the window rows of ``frame`` that it scores series with ``settings``.

    The second half of :func:`fit_series`: resolves ``fold="auto"`` and sets the point-score scale.
    """
    if getattr(detector, "feature_names_in_", None) is None:  # PyOD's detectors do not keep them
        detector.feature_names_in_ = np.asarray(settings.feature_names(), dtype=object)
    if settings.fold in ("point", "auto"):  # refuse now rather than when the model is used
        has_terms = _has_point_terms(detector, len(detector.feature_names_in_))
        if settings.fold == "point" and not has_terms:
            raise ParameterError(_POINT_FOLD_NEEDS.format(name=type(detector).__name__))
        if settings.fold == "auto":
            settings = dataclasses.replace(settings, fold="point" if has_terms else "mean")
    detector.series_windows_ = settings  # score_series reads it
    detector.series_windows_ = dataclasses.replace(settings, point_scale=_point_scale(detector, frame))
    return detector


def _point_scale(detector, frame) -> tuple:
    """(min, threshold, max) of the training series' point scores; the threshold flags the same share of points
    as the detector's threshold flags of its training windows (PyOD's percentile rule)."""
    scores = score_series(detector, frame)
    flagged = float(np.mean(np.asarray(detector.labels_)))
    return float(scores.min()), float(np.percentile(scores, 100 * (1 - flagged))), float(scores.max())


def set_point_threshold(detector, threshold: float) -> None:
    """Make ``threshold`` the series model's point threshold (points at or above it are alarms).

    The training series' lowest and highest point scores, between which the point
    probability is scaled, widen to take in a threshold outside them.
    """
    settings = detector.series_windows_
    low, _, high = settings.point_scale
    threshold = float(threshold)
    detector.series_windows_ = dataclasses.replace(
        settings, point_scale=(min(low, threshold), threshold, max(high, threshold)))


def point_cut(settings: WindowSettings) -> float:
    """The point threshold as a ``score > cut`` cut (PyOD's rule): it flags the points that reach the threshold."""
    return float(np.nextafter(settings.point_scale[1], -np.inf))


def point_labels(detector, scores) -> np.ndarray:
    """1 where a point score from :func:`score_series` reaches the model's point threshold, else 0.

    ``>=`` rather than PyOD's ``>``: with ``fold="max"`` every point near an anomaly shares
    the top window's score, and a strict comparison would flag none of them.
    """
    return (np.asarray(scores) >= detector.series_windows_.point_scale[1]).astype(int)


def _has_point_terms(detector, n_features: int) -> bool:
    """Whether the fitted ``detector`` gives per-feature contributions (what ``fold="point"`` needs)."""
    if not hasattr(detector, "feature_contributions"):
        return False
    try:
        detector.feature_contributions(np.zeros((1, n_features)))
    except NotImplementedError:
        return False
    return True


_POINT_FOLD_NEEDS = ("fold='point' scores each point by its own reconstruction terms, which {name} does not "
                     "provide (no per-feature contributions); use fold='mean' or 'max'")


def score_series(detector, frame, fold: str | None = None) -> np.ndarray:
    """One score per row of ``frame`` (a series) from a detector fitted by :func:`fit_series`.

    ``fold`` overrides the saved folding rule (e.g. to compare rules on one fit).
    """
    settings = detector.series_windows_
    fold = settings.fold if fold is None else fold
    check_choice("fold", fold, list(FOLD_RULES))
    series, starts, windows = series_windows(frame, settings)
    return _point_scores(detector, settings, series, starts, windows, fold)


def _point_scores(detector, settings: WindowSettings, series: RegularSeries, starts, windows, fold: str,
                  terms=None) -> np.ndarray:
    """Each original point's score by ``fold``; ``terms``: the windows' terms (:func:`_window_terms`) if known."""
    n_points = series.values.shape[0]
    if fold == "point":
        if terms is None:
            terms = _window_terms(detector, windows, settings)
        point_scores = fold_point_terms(terms.sum(axis=2), starts, n_points)
    else:
        point_scores = fold_scores(detector.decision_function(windows), starts, n_points, settings.window, fold)
    return point_scores[series.grid_index]


def _window_terms(detector, windows, settings: WindowSettings) -> np.ndarray:
    """Each window's per-feature score terms: shape (windows, window, value columns)."""
    try:
        terms = detector.feature_contributions(windows)
    except (AttributeError, NotImplementedError):
        raise ParameterError(_POINT_FOLD_NEEDS.format(name=type(detector).__name__)) from None
    return np.asarray(terms, dtype=np.float64).reshape(terms.shape[0], settings.window, len(settings.value_columns))


def point_contributions(detector, frame) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, terms)`` of each row of ``frame``: its point score and its own terms per value column.

    ``terms[i, c]`` is the mean, over the windows covering point ``i``, of column ``c``'s
    score term at that point (what ``fold="point"`` sums over the columns), so with the
    point fold each row of ``terms`` sums to the point's score. Needs a detector with
    per-feature contributions, like ``fold="point"``. The windows are scored once.
    """
    settings = detector.series_windows_
    series, starts, windows = series_windows(frame, settings)
    n_points = series.values.shape[0]
    terms = _window_terms(detector, windows, settings)
    columns = np.column_stack([fold_point_terms(terms[:, :, c], starts, n_points) for c in range(terms.shape[2])])
    scores = _point_scores(detector, settings, series, starts, windows, settings.fold, terms)
    return scores, columns[series.grid_index]
