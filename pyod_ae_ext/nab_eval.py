"""NAB-style evaluation of alarms on a time series against labelled anomaly windows (torch-free).

The rules are those of the Numenta Anomaly Benchmark (A. Lavin, S. Ahmad, "Evaluating
real-time anomaly detection algorithms: the Numenta Anomaly Benchmark", IEEE ICMLA
2015, section IV; reference code ``nab/sweeper.py`` and ``nab/runner.py`` of
github.com/numenta/NAB, whose behaviour is reproduced here):

- The first ``probationary_percent`` of the points (at most ``probationary_percent x
  5000``) are a probation period: alarms there are ignored, and a window is scored
  only if some of its points lie after it.
- A labelled window ``[start, end]`` holds the points whose time is in that closed
  interval. Only the earliest alarm in a window counts, with the weight
  ``A_TP * S(p) / S(-1)``, where ``S(p) = 2 / (1 + exp(5 p)) - 1`` is the scaled
  sigmoid and ``p = -(right - i + 1) / width`` the alarm's relative position (``-1`` at
  the window's first point, approaching 0 at its last; ``right`` is the index of the
  window's last point, ``width`` its number of points). A window without an alarm
  counts ``-A_FN``.
- Every alarm outside the windows is a false alarm, weighted ``A_FP * S(p)`` with
  ``p = (i - right_prev) / (width_prev - 1)``, its distance past the end of the
  preceding window relative to that window's width (``S(p) = -1`` for ``p > 3``), or
  ``-A_FP`` when no window precedes it.
- The raw score is the sum. It is normalised against the null detector (no alarm:
  ``-A_FN`` per scored window) and the perfect detector (``A_TP`` per window):
  ``100 * (raw - null) / (perfect - null)``. NAB normalises a whole corpus at once,
  which is :func:`corpus_score` over the files' results.

Standard profile: ``A_TP = 1``, ``A_FP = 0.11``, ``A_FN = 1`` (NAB's
``config/profiles.json``; the false-alarm weight enters with a minus sign).

Counts reported beside the score: window recall (windows with at least one alarm /
windows), false alarms (alarm points outside every window) and window precision
(detected windows / (detected windows + false alarms)): an alarm inside a window
counts once, every alarm outside counts as a false alarm.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from .errors import DataError

_SIGMOID_STEEPNESS = 5.0
_FAR_PAST_WINDOW = 3.0
_MAX_PROBATION_POINTS = 5000


@dataclasses.dataclass(frozen=True)
class CostProfile:
    """NAB application profile: the weights of a detected window, a false alarm and a missed window."""

    true_positive: float = 1.0
    false_positive: float = 0.11
    false_negative: float = 1.0


STANDARD_PROFILE = CostProfile()
REWARD_LOW_FP_PROFILE = CostProfile(false_positive=0.22)
REWARD_LOW_FN_PROFILE = CostProfile(false_negative=2.0)


@dataclasses.dataclass(frozen=True)
class WindowEvaluation:
    """Result of :func:`evaluate_alarms` on one series."""

    windows: int
    detected_windows: int
    false_alarms: int
    raw_score: float
    null_score: float
    perfect_score: float

    @property
    def recall(self) -> float:
        """Detected windows / scored windows (NaN without windows)."""
        return self.detected_windows / self.windows if self.windows else math.nan

    @property
    def precision(self) -> float:
        """Detected windows / (detected windows + false alarms) (NaN without any alarm)."""
        alarms = self.detected_windows + self.false_alarms
        return self.detected_windows / alarms if alarms else math.nan

    @property
    def nab_score(self) -> float:
        """``100 * (raw - null) / (perfect - null)``: 100 for the perfect detector, 0 for the null one."""
        span = self.perfect_score - self.null_score
        return 100.0 * (self.raw_score - self.null_score) / span if span else math.nan

    def as_dict(self) -> dict:
        """Every count and score, JSON-able."""
        return {**dataclasses.asdict(self), "recall": self.recall, "precision": self.precision,
                "nab_score": self.nab_score}


def scaled_sigmoid(position):
    """NAB's ``S(p) = 2 * sigmoid(-5 p) - 1``, and -1 for ``p > 3`` (sweeper.py, ``scaledSigmoid``)."""
    position = np.asarray(position, dtype=np.float64)
    value = np.tanh(-_SIGMOID_STEEPNESS / 2 * position)  # = 2 / (1 + exp(5 p)) - 1, without overflow
    return np.where(position > _FAR_PAST_WINDOW, -1.0, value)


def probation_length(n_points: int, probationary_percent: float) -> int:
    """Points at the start that are not scored: ``min(floor(pct * n), pct * 5000)`` (sweeper.py)."""
    return int(math.ceil(min(math.floor(probationary_percent * n_points),
                             probationary_percent * _MAX_PROBATION_POINTS)))


def window_index(times, windows) -> np.ndarray:
    """For each point, the index of the labelled window holding it (closed interval), or -1."""
    times = np.asarray(times)
    owner = np.full(times.shape[0], -1, dtype=np.int64)
    for k, (start, end) in enumerate(windows):  # a handful of windows; each lookup is vectorised
        if end < start:
            raise DataError(f"labelled window {k} ends ({end}) before it starts ({start})")
        first, last = np.searchsorted(times, start, "left"), np.searchsorted(times, end, "right")
        if (owner[first:last] >= 0).any():
            raise DataError(f"labelled window {k} overlaps an earlier one; NAB windows must not overlap")
        owner[first:last] = k
    return owner


def evaluate_alarms(times, alarms, windows, profile: CostProfile = STANDARD_PROFILE,
                    probationary_percent: float = 0.15) -> WindowEvaluation:
    """Score the boolean ``alarms`` at increasing ``times`` against the labelled ``windows`` (NAB rules, above).

    Parameters
    ----------
    times : array of increasing numbers or datetime64
    alarms : array of bool, the same length
    windows : sequence of (start, end) in the units of ``times``, in time order
    profile : CostProfile, default the standard profile
    probationary_percent : float in [0, 1), default 0.15
    """
    times, alarms = np.asarray(times), np.asarray(alarms, dtype=bool)
    if times.shape != alarms.shape or times.ndim != 1:
        raise DataError(f"times and alarms must be 1-D and equally long, got {times.shape} and {alarms.shape}")
    owner = window_index(times, windows)
    index = np.arange(times.size)
    scored = index >= probation_length(times.size, probationary_percent)
    n_windows = len(windows)
    right = np.array([np.flatnonzero(owner == k).max(initial=-1) for k in range(n_windows)], dtype=np.int64)
    width = np.bincount(owner[owner >= 0], minlength=n_windows).astype(np.float64)
    scored_windows = np.flatnonzero(np.bincount(owner[scored & (owner >= 0)], minlength=n_windows) > 0)

    inside = alarms & scored & (owner >= 0)
    true_weight = scaled_sigmoid(-(right[owner[inside]] - index[inside] + 1) / width[owner[inside]])
    best = np.full(n_windows, -np.inf)
    np.maximum.at(best, owner[inside], true_weight * profile.true_positive / scaled_sigmoid(-1.0))
    detected = np.isfinite(best[scored_windows])

    outside = np.flatnonzero(alarms & scored & (owner < 0))
    false_weight = _false_alarm_weights(outside, right, width) * profile.false_positive
    raw = float(best[scored_windows][detected].sum() - profile.false_negative * (~detected).sum()
                + false_weight.sum())
    return WindowEvaluation(windows=int(scored_windows.size), detected_windows=int(detected.sum()),
                            false_alarms=int(outside.size), raw_score=raw,
                            null_score=-profile.false_negative * scored_windows.size,
                            perfect_score=profile.true_positive * scored_windows.size)


def _false_alarm_weights(points: np.ndarray, right: np.ndarray, width: np.ndarray) -> np.ndarray:
    """``S(p)`` past the preceding window (``p`` relative to its width), -1 where no window precedes."""
    ends = right[right >= 0]
    order = np.argsort(ends)
    ends, widths = ends[order], width[right >= 0][order]
    previous = np.searchsorted(ends, points, side="left") - 1
    weights = np.full(points.size, -1.0)
    has_previous = previous >= 0
    prev = previous[has_previous]
    position = (points[has_previous] - ends[prev]) / np.maximum(widths[prev] - 1.0, 1.0)
    weights[has_previous] = scaled_sigmoid(position)
    return weights


def windows_from_labels(times, labels) -> list:
    """Labelled windows from 0/1 point labels: each run of consecutive 1s is ``(time of its first, of its last)``."""
    times, labels = np.asarray(times), np.asarray(labels, dtype=bool)
    if times.shape != labels.shape or times.ndim != 1:
        raise DataError(f"times and labels must be 1-D and equally long, got {times.shape} and {labels.shape}")
    edges = np.diff(np.concatenate([[False], labels, [False]]).astype(np.int8))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return [(times[first], times[last]) for first, last in zip(starts, ends)]


def corpus_score(results) -> WindowEvaluation:
    """The results of several series summed, normalised as one corpus (as NAB's ``runner.normalize``)."""
    results = list(results)
    return WindowEvaluation(
        windows=sum(r.windows for r in results), detected_windows=sum(r.detected_windows for r in results),
        false_alarms=sum(r.false_alarms for r in results), raw_score=sum(r.raw_score for r in results),
        null_score=sum(r.null_score for r in results), perfect_score=sum(r.perfect_score for r in results))


def load_windows(path, series_name: str | None = None, time_kind: str = "datetime") -> list:
    """Labelled windows from a JSON file: a list of ``[start, end]`` pairs, or NAB's ``{file: [[start, end], ...]}``.

    With NAB's form, ``series_name`` picks the entry whose key equals it or ends with
    ``/`` + its file name. Times are parsed as dates (``time_kind="datetime"``, to int64
    nanoseconds, as :func:`pyod_ae_ext.windows.parse_times`) or numbers.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read labelled windows from {path}: {exc}") from None
    if isinstance(data, dict):
        data = _entry_for(data, series_name, path)
    if not isinstance(data, list) or not all(isinstance(w, list) and len(w) == 2 for w in data):
        raise DataError(f"{path}: labelled windows must be a list of [start, end] pairs")
    return [tuple(_parse_time(t, time_kind, path) for t in pair) for pair in data]


def _entry_for(data: dict, series_name: str | None, path) -> list:
    if series_name is None:
        raise DataError(f"{path} holds windows for several series; name the series file")
    name = Path(series_name).name
    matches = [key for key in data if key == series_name or key == name or key.endswith("/" + name)]
    if len(matches) != 1:
        raise DataError(f"{path} has {'no' if not matches else 'more than one'} entry for {name!r}; "
                        f"its entries are {sorted(data)[:10]}")
    return data[matches[0]]


def _parse_time(value, time_kind: str, path):
    import pandas as pd

    try:
        if time_kind == "number":
            if isinstance(value, bool):
                raise ValueError("a boolean")
            return float(value)
        stamp = pd.Timestamp(value)
        if stamp.tzinfo is not None:
            stamp = stamp.tz_convert("UTC").tz_localize(None)
        return int(stamp.value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: window bound {value!r} is not a {'number' if time_kind == 'number' else 'date'} "
                        f"({exc})") from None
