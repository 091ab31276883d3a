"""NAB-style window evaluation (pyod_ae_ext.nab_eval), against hand-computed cases."""
import json
import math

import numpy as np
import pytest

from pyod_ae_ext.errors import DataError
from pyod_ae_ext.nab_eval import (REWARD_LOW_FN_PROFILE, STANDARD_PROFILE, corpus_score, evaluate_alarms,
                                  load_windows, probation_length, scaled_sigmoid, windows_from_labels)


def _alarms(n, at):
    alarms = np.zeros(n, dtype=bool)
    alarms[list(at)] = True
    return alarms


def test_scaled_sigmoid_matches_nab_values():
    # the values quoted in NAB's sweeper.py docstring
    np.testing.assert_allclose(scaled_sigmoid([-1.0, -0.5, 0.0, 1.0]), [0.98661, 0.84828, 0.0, -0.98661], atol=1e-5)
    assert scaled_sigmoid(3.5) == -1.0


def test_probation_length_is_nabs():
    assert probation_length(1000, 0.15) == 150
    assert probation_length(100000, 0.15) == 750  # capped at 15% of 5000
    assert probation_length(10, 0.0) == 0


def test_hand_computed_case():
    # 20 points at t = 0..19, one window [10, 14] (5 points, last index 14), no probation.
    # alarm at 12: p = -(14 - 12 + 1) / 5 = -0.6, weight S(-0.6) / S(-1) = tanh(1.5) / tanh(2.5)
    # alarm at 13: later in the same window, does not count again
    # alarm at 16: p = (16 - 14) / (5 - 1) = 0.5, weight 0.11 * S(0.5) = 0.11 * tanh(-1.25)
    # alarm at 2: before any window, weight -0.11
    result = evaluate_alarms(np.arange(20), _alarms(20, [2, 12, 13, 16]), [(10, 14)], probationary_percent=0.0)
    expected_raw = math.tanh(1.5) / math.tanh(2.5) + 0.11 * math.tanh(-1.25) - 0.11
    assert result.raw_score == pytest.approx(expected_raw, abs=1e-12)
    assert (result.windows, result.detected_windows, result.false_alarms) == (1, 1, 2)
    assert result.recall == 1.0 and result.precision == pytest.approx(1 / 3)
    assert result.null_score == -1.0 and result.perfect_score == 1.0
    assert result.nab_score == pytest.approx(100 * (expected_raw + 1) / 2)


def test_the_earliest_alarm_in_a_window_scores_the_full_reward():
    result = evaluate_alarms(np.arange(20), _alarms(20, [10]), [(10, 14)], probationary_percent=0.0)
    assert result.raw_score == pytest.approx(1.0) and result.nab_score == pytest.approx(100.0)


def test_null_detector_scores_zero_and_missed_windows_cost_fn():
    times = np.arange(100)
    windows = [(20, 29), (60, 69)]
    nothing = evaluate_alarms(times, np.zeros(100, bool), windows, probationary_percent=0.0)
    assert nothing.raw_score == -2.0 and nothing.nab_score == 0.0 and nothing.recall == 0.0
    assert math.isnan(nothing.precision)
    doubled = evaluate_alarms(times, np.zeros(100, bool), windows, REWARD_LOW_FN_PROFILE, probationary_percent=0.0)
    assert doubled.raw_score == -4.0


def test_probation_ignores_early_alarms_and_windows():
    # 100 points, probation 15: the alarm at 5 and the window [2, 8] are not scored
    times = np.arange(100)
    result = evaluate_alarms(times, _alarms(100, [5, 50]), [(2, 8), (50, 59)])
    assert (result.windows, result.detected_windows, result.false_alarms) == (1, 1, 0)
    assert result.raw_score == pytest.approx(1.0)


def test_false_alarm_far_past_a_window_costs_the_full_weight():
    # window [10, 14] (width 5): an alarm 13 points later is p = 13 / 4 > 3, S = -1
    result = evaluate_alarms(np.arange(40), _alarms(40, [27]), [(10, 14)], probationary_percent=0.0)
    assert result.raw_score == pytest.approx(-1.0 - STANDARD_PROFILE.false_positive)


def test_datetime_times_and_corpus_normalisation(tmp_path):
    times = np.datetime64("2024-01-01T00:00", "ns") + np.arange(100) * np.timedelta64(1, "m")
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"group/a.csv": [["2024-01-01 00:50:00", "2024-01-01 00:59:00"]],
                                "group/b.csv": []}))
    windows = load_windows(path, "data/a.csv")
    assert windows == [(int(times[50].astype(np.int64)), int(times[59].astype(np.int64)))]
    hit = evaluate_alarms(times.astype(np.int64), _alarms(100, [50]), windows)
    missed = evaluate_alarms(times.astype(np.int64), np.zeros(100, bool), windows)
    total = corpus_score([hit, missed])
    assert (total.raw_score, total.null_score, total.perfect_score) == (pytest.approx(0.0), -2.0, 2.0)
    assert total.nab_score == pytest.approx(50.0)


@pytest.mark.parametrize("content, name, fragment", [
    ("{not json", None, "cannot read labelled windows"),
    ('{"a.csv": [], "b.csv": []}', None, "several series"),
    ('{"a.csv": []}', "c.csv", "no entry for 'c.csv'"),
    ('[["2024-01-01", "nonsense"]]', None, "is not a date"),
    ('[[1, 2, 3]]', None, "list of \\[start, end\\] pairs"),
])
def test_bad_label_files_are_refused(tmp_path, content, name, fragment):
    path = tmp_path / "labels.json"
    path.write_text(content)
    with pytest.raises(DataError, match=fragment):
        load_windows(path, name)


def test_overlapping_or_reversed_windows_are_refused():
    with pytest.raises(DataError, match="overlaps"):
        evaluate_alarms(np.arange(30), np.zeros(30, bool), [(5, 10), (8, 12)])
    with pytest.raises(DataError, match="ends .* before it starts"):
        evaluate_alarms(np.arange(30), np.zeros(30, bool), [(10, 5)])


def test_the_nab_benchmark_stops_with_one_line_without_its_data(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-m", "benchmarks.nab", "--quick"], cwd=repo, capture_output=True,
                            text=True, env={**os.environ, "ADSCORE_DATASETS": str(tmp_path)})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("Error: NAB data not found")



def test_windows_from_labels_are_the_runs_of_labelled_points():
    times = np.arange(10) * 60.0
    labels = np.array([1, 1, 0, 0, 1, 0, 0, 1, 1, 1])
    assert windows_from_labels(times, labels) == [(0.0, 60.0), (240.0, 240.0), (420.0, 540.0)]
    assert windows_from_labels(times, np.zeros(10)) == []
    with pytest.raises(DataError, match="equally long"):
        windows_from_labels(times, labels[:5])
