"""Sliding windows over a series and window scores folded back to time points (pyod_ae_ext.windows)."""
import dataclasses
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import pyod_ae_ext
from pyod_ae_ext.errors import DataError, ModelFileError, ParameterError
from pyod_ae_ext.windows import (WindowSettings, fit_series, fold_point_terms, fold_scores, score_series,
                                 series_settings, series_windows, window_matrix, window_starts)

from model_payloads import rewrite_model, write_model


def _series(n=240, gap_at=None, seed=0):
    rng = np.random.default_rng(seed)
    times = pd.date_range("2024-01-01", periods=n, freq="5min")
    frame = pd.DataFrame({"ts": times.strftime("%Y-%m-%d %H:%M:%S"),
                          "value": np.sin(np.arange(n) / 4) + 0.05 * rng.normal(size=n)})
    return frame.drop(index=gap_at).reset_index(drop=True) if gap_at is not None else frame


def test_fold_is_exact_on_a_hand_example():
    # 6 points, windows of 3 starting at 0..3 with scores 1, 5, 2, 0:
    # point 0 in window {0}; 1 in {0,1}; 2 in {0,1,2}; 3 in {1,2,3}; 4 in {2,3}; 5 in {3}
    starts, scores = np.arange(4), np.array([1.0, 5.0, 2.0, 0.0])
    np.testing.assert_allclose(fold_scores(scores, starts, 6, 3, "mean"), [1, 3, 8 / 3, 7 / 3, 1, 0])
    np.testing.assert_array_equal(fold_scores(scores, starts, 6, 3, "max"), [1, 5, 5, 5, 2, 0])


def test_point_fold_is_exact_on_a_hand_example():
    # windows of 3 at starts 0, 1, 2 over 5 points; row w holds its terms for steps 0, 1, 2
    terms = np.array([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0], [100.0, 200.0, 300.0]])
    # point 0: (w0, step 0); 1: (w0, 1), (w1, 0); 2: (w0, 2), (w1, 1), (w2, 0); 3: (w1, 2), (w2, 1); 4: (w2, 2)
    np.testing.assert_allclose(fold_point_terms(terms, [0, 1, 2], 5),
                               [1, (2 + 10) / 2, (3 + 20 + 100) / 3, (30 + 200) / 2, 300])


def test_point_fold_scores_each_point_by_its_own_reconstruction_terms():
    frame = _series()
    frame.loc[120, "value"] += 5.0
    settings = series_settings(frame, 8, stride=2, fold="point", time_column="ts")
    detector = fit_series(pyod_ae_ext.make_detector("ae", epochs=20, random_state=0), frame, settings)
    _, starts, windows = series_windows(frame, settings)
    terms = detector.feature_contributions(windows)  # one value column: one term per step
    scores = score_series(detector, frame)
    np.testing.assert_allclose(scores, fold_point_terms(terms, starts, len(frame)))
    # the spike stands out at its own time step, not over the windows around it
    assert int(np.argmax(scores)) == 120
    assert np.delete(scores[112:129], 8).max() < scores[120] / 2


@pytest.mark.parametrize("name, params, chosen", [("ae", {"epochs": 1}, "point"), ("iforest", {}, "mean"),
                                                  ("deep-svdd", {"epochs": 1}, "mean"),
                                                  ("vae", {"epochs": 1, "score_method": "wasserstein"}, "mean")])
def test_auto_fold_is_point_where_the_detector_has_per_feature_terms(name, params, chosen):
    frame = _series()
    settings = series_settings(frame, 8, time_column="ts")
    assert settings.fold == "auto"
    detector = fit_series(pyod_ae_ext.make_detector(name, **params), frame, settings)
    assert detector.series_windows_.fold == chosen


@pytest.mark.parametrize("name", ["iforest", "deep-svdd"])
def test_point_fold_needs_per_feature_contributions(name):
    frame = _series()
    settings = series_settings(frame, 8, fold="point", time_column="ts")
    params = {"epochs": 1} if name == "deep-svdd" else {}
    with pytest.raises(ParameterError, match="fold='point' scores each point by its own reconstruction terms"):
        fit_series(pyod_ae_ext.make_detector(name, **params), frame, settings)


def test_fold_with_a_stride_and_the_extra_last_window():
    # 7 points, window 3, stride 2: starts 0, 2, 4 (4 = 7 - 3 already aligned); then 8 points: 0, 2, 4, 5
    np.testing.assert_array_equal(window_starts(7, 3, 2), [0, 2, 4])
    np.testing.assert_array_equal(window_starts(8, 3, 2), [0, 2, 4, 5])
    scores = np.array([4.0, 2.0, 6.0, 1.0])
    np.testing.assert_allclose(fold_scores(scores, [0, 2, 4, 5], 8, 3, "mean"),
                               [4, 4, 3, 2, 4, 3.5, 3.5, 1])
    np.testing.assert_array_equal(fold_scores(scores, [0, 2, 4, 5], 8, 3, "max"), [4, 4, 4, 2, 6, 6, 6, 1])


def test_windows_are_time_major_rows():
    values = np.arange(12.0).reshape(6, 2)  # point t holds (2t, 2t + 1)
    starts, rows = window_matrix(values, 3, 2)
    np.testing.assert_array_equal(starts, [0, 2, 3])
    np.testing.assert_array_equal(rows[1], [4, 5, 6, 7, 8, 9])  # points 2, 3, 4: a@0, b@0, a@1, ...
    settings = WindowSettings(3, value_columns=("a", "b"))
    assert settings.feature_names() == ["a@0", "b@0", "a@1", "b@1", "a@2", "b@2"]


@pytest.mark.parametrize("kwargs, fragment", [
    ({"window": 1}, "window"), ({"window": 8, "stride": 9}, "stride=9 is larger than window=8"),
    ({"window": 8, "fold": "median"}, "fold"), ({"window": 8, "gaps": "drop"}, "gaps"),
])
def test_bad_settings_are_refused(kwargs, fragment):
    with pytest.raises(ParameterError, match=fragment):
        series_settings(_series(), time_column="ts", **kwargs)


def test_unsorted_and_repeated_timestamps_are_refused_naming_the_row():
    frame = _series()
    swapped = frame.iloc[[0, 1, 3, 2, *range(4, len(frame))]].reset_index(drop=True)
    with pytest.raises(DataError, match="row 3 is earlier than row 2.*sort the series by 'ts'"):
        series_settings(swapped, 16, time_column="ts")
    repeated = frame.copy()
    repeated.loc[5, "ts"] = repeated.loc[4, "ts"]
    with pytest.raises(DataError, match="row 5 repeats the timestamp of row 4.*--gaps interpolate"):
        series_settings(repeated, 16, time_column="ts")
    with pytest.raises(DataError, match="row 3 is earlier than row 2"):
        series_settings(swapped, 16, time_column="ts", gaps="interpolate")


def test_bad_time_values_are_refused():
    frame = _series()
    frame.loc[7, "ts"] = "yesterday-ish"
    with pytest.raises(DataError, match="'yesterday-ish' at row 7"):
        series_settings(frame, 16, time_column="ts")
    with pytest.raises(DataError, match="time column 'when' is not in the data"):
        series_settings(_series(), 16, time_column="when")


def test_a_gap_is_refused_by_default_and_interpolated_on_request():
    detector = pyod_ae_ext.make_detector("ae", epochs=2, random_state=0)
    fit_series(detector, _series(), series_settings(_series(), 16, time_column="ts"))
    gappy = _series(gap_at=[100, 101])
    with pytest.raises(DataError, match=r"before row 100 is 3 periods \(period 300 s\).*--gaps interpolate"):
        score_series(detector, gappy)
    detector.series_windows_ = dataclasses.replace(detector.series_windows_, gaps="interpolate")
    scores = score_series(detector, gappy)
    assert scores.shape == (len(gappy),) and np.isfinite(scores).all()


def test_interpolation_is_linear_on_the_grid():
    from pyod_ae_ext.windows import regularise

    times = np.array([0.0, 1.0, 2.0, 5.0, 6.0])
    values = np.array([[0.0], [1.0], [2.0], [8.0], [9.0]])
    series = regularise(times, values, 1.0, "interpolate", "t")
    np.testing.assert_allclose(series.values[:, 0], [0, 1, 2, 4, 6, 8, 9])
    np.testing.assert_array_equal(series.grid_index, [0, 1, 2, 5, 6])
    # a repeated time: its values are averaged, and both rows map to that grid point
    repeated = regularise(np.array([0.0, 1.0, 1.0, 2.0]), np.array([[0.0], [1.0], [3.0], [4.0]]), 1.0,
                          "interpolate", "t")
    np.testing.assert_allclose(repeated.values[:, 0], [0, 2, 4])
    np.testing.assert_array_equal(repeated.grid_index, [0, 1, 1, 2])


def test_one_score_per_point_and_a_model_file_round_trip(tmp_path):
    frame = _series()
    settings = series_settings(frame, 16, stride=4, fold="max", time_column="ts")
    detector = fit_series(pyod_ae_ext.make_detector("vrae", epochs=2, random_state=0), frame, settings)
    assert detector.input_shape == (16, 1)
    scores = score_series(detector, frame)
    assert scores.shape == (len(frame),)
    loaded = pyod_ae_ext.load(write_model(tmp_path / "m.adscore", detector))
    assert loaded.series_windows_ == detector.series_windows_
    assert dataclasses.replace(loaded.series_windows_, point_scale=None) == settings
    np.testing.assert_array_equal(score_series(loaded, frame), scores)


def test_several_columns_and_a_pyod_baseline_round_trip(tmp_path):
    frame = _series()
    frame["other"] = np.cos(np.arange(len(frame)) / 3)
    settings = series_settings(frame, 8, stride=2, time_column="ts")
    detector = fit_series(pyod_ae_ext.make_detector("iforest", random_state=0), frame, settings)
    assert list(detector.feature_names_in_[:4]) == ["value@0", "other@0", "value@1", "other@1"]
    loaded = pyod_ae_ext.load(write_model(tmp_path / "m.adscore", detector))
    np.testing.assert_array_equal(score_series(loaded, frame), score_series(detector, frame))


@pytest.mark.parametrize("edit, fragment", [
    (lambda w: w.update(window=1), "bad setting"),
    (lambda w: w.update(window=12), "do not match the features"),
    (lambda w: w.update(value_columns=[]), "value_columns"),
    (lambda w: w.update(period=-5.0), "period"),
    (lambda w: w.update(fold="auto"), "fold"),
    (lambda w: w.update(point_scale=[3.0, 1.0, 2.0]), "point_scale"),
    (lambda w: w.update(point_scale=None), "point_scale"),
    (lambda w: w.pop("fold"), "entries"),
])
def test_tampered_window_settings_are_refused(tmp_path, edit, fragment):
    frame = _series()
    detector = fit_series(pyod_ae_ext.make_detector("ae", epochs=1, random_state=0), frame,
                          series_settings(frame, 16, time_column="ts"))
    path = rewrite_model(write_model(tmp_path / "m.adscore", detector),
                         lambda meta, tensors: edit(meta["series_windows"]))
    with pytest.raises(ModelFileError, match=fragment):
        pyod_ae_ext.load(path)


def test_a_series_with_another_period_or_time_kind_is_refused():
    frame = _series()
    detector = fit_series(pyod_ae_ext.make_detector("ae", epochs=1, random_state=0), frame,
                          series_settings(frame, 16, time_column="ts"))
    slower = frame.iloc[::2].reset_index(drop=True)
    with pytest.raises(DataError, match="2 periods"):
        score_series(detector, slower)
    numeric = frame.assign(ts=np.arange(len(frame)))
    with pytest.raises(DataError, match="holds numbers but the model was fitted on datetimes"):
        score_series(detector, numeric)


@pytest.mark.parametrize("fold", ["point", "mean"])
def test_point_labels_flag_the_share_of_training_points_the_detector_flags_of_windows(fold):
    from pyod_ae_ext.windows import point_labels

    frame = _series()
    detector = fit_series(pyod_ae_ext.make_detector("ae", epochs=2, random_state=0, contamination=0.05), frame,
                          series_settings(frame, 16, fold=fold, time_column="ts"))
    low, threshold, high = detector.series_windows_.point_scale
    scores = score_series(detector, frame)
    assert (low, high) == (scores.min(), scores.max())
    assert point_labels(detector, scores).mean() == pytest.approx(np.mean(detector.labels_), abs=0.01)


def test_too_short_a_series_is_refused():
    frame = _series(n=10)
    with pytest.raises(DataError, match="10 points, fewer than one window of 16"):
        fit_series(pyod_ae_ext.make_detector("ae", epochs=1), frame, series_settings(frame, 16, time_column="ts"))


def test_the_windows_module_does_not_import_torch():
    code = "import sys, pyod_ae_ext.windows, pyod_ae_ext.nab_eval; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
