"""Series mode on the command line: fit --window, score per time point, evaluate --windows."""
import io
import json

import numpy as np
import pandas as pd
import pytest

from helpers import assert_clean_error

from pyod_ae_ext.cli import cli

SPIKE = 400


@pytest.fixture
def series_csv(tmp_path):
    n = 600
    values = np.sin(np.arange(n) / 5) + 0.05 * np.random.default_rng(0).normal(size=n)
    values[SPIKE] += 4.0
    times = pd.date_range("2024-01-01", periods=n, freq="min").strftime("%Y-%m-%d %H:%M:%S")
    path = tmp_path / "series.csv"
    pd.DataFrame({"ts": times, "host": "a", "value": values}).to_csv(path, index=False)
    return path


@pytest.fixture
def labels_json(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"machines/series.csv": [["2024-01-01 06:35:00", "2024-01-01 06:45:00"]]}))
    return path


def run(runner, *args):
    return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)


def fit_series_model(runner, series_csv, tmp_path, *extra):
    model = tmp_path / "series.adscore"
    result = run(runner, "fit", "-d", "vrae", "-p", "epochs=5", "--seed", 0, "--time-column", "ts",
                 "--exclude", "host", "--window", 32, *extra, series_csv, "-o", model)
    assert result.exit_code == 0, result.output
    assert "training windows" in result.stderr
    return model


def test_fit_then_score_gives_one_score_per_time_point(runner, series_csv, tmp_path):
    model = fit_series_model(runner, series_csv, tmp_path, "--stride", 2, "--fold", "max")
    result = run(runner, "score", "-m", model, "--id-column", "host", series_csv)
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(io.StringIO(result.stdout))
    assert list(scores.columns) == ["ts", "host", "anomaly_score", "is_anomaly", "anomaly_probability"]
    assert scores["is_anomaly"].iloc[SPIKE] == 1 and 0 < scores["is_anomaly"].mean() < 0.3
    assert len(scores) == 600 and scores["ts"].iloc[0] == "2024-01-01 00:00:00"
    assert abs(int(scores["anomaly_score"].idxmax()) - SPIKE) < 32
    info = json.loads(run(runner, "info", "--json", model).stdout)
    assert info["series_windows"]["window"] == 32 and info["series_windows"]["stride"] == 2
    assert info["series_windows"]["fold"] == "max"
    text = run(runner, "info", model).stdout
    assert "series:     windows of 32 x value, stride 2, fold max, gaps refuse, time column 'ts'" in text


def test_evaluate_with_labelled_windows(runner, series_csv, labels_json, tmp_path):
    model = fit_series_model(runner, series_csv, tmp_path, "--contamination", 0.02, "--fold", "max")
    result = run(runner, "evaluate", "-m", model, "--time-column", "ts", "--windows", labels_json, "--json",
                 series_csv)
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["windows"] == 1 and metrics["detected_windows"] == 1 and metrics["recall"] == 1.0
    assert metrics["nab_score"] == pytest.approx(100 * (metrics["raw_score"] + 1) / 2)
    text = run(runner, "evaluate", "-m", model, "--windows", labels_json, series_csv)
    assert "window recall      1.0000 (1 of 1)" in text.stdout and "NAB score" in text.stdout


def test_series_bad_input_is_one_clean_error(runner, series_csv, labels_json, tmp_path):
    assert_clean_error(run(runner, "fit", "-d", "ae", "--time-column", "ts", series_csv, "-o", tmp_path / "m"),
                       "give --window N")
    assert_clean_error(run(runner, "fit", "-d", "ae", "--window", 8, "--sample", 10, series_csv, "-o",
                           tmp_path / "m"), "drop --sample")
    assert_clean_error(run(runner, "fit", "-d", "ae", "--window", 8, "--time-column", "ts", series_csv, "-o",
                           tmp_path / "m"), "'host'")
    assert not (tmp_path / "m").exists()
    model = fit_series_model(runner, series_csv, tmp_path)
    frame = pd.read_csv(series_csv).drop(index=[100, 101])
    gappy = tmp_path / "gappy.csv"
    frame.to_csv(gappy, index=False)
    assert_clean_error(run(runner, "score", "-m", model, gappy, "-o", tmp_path / "s.csv"),
                       "is not regular", "--gaps interpolate")
    assert not (tmp_path / "s.csv").exists()
    assert_clean_error(run(runner, "evaluate", "-m", model, series_csv), "fitted on the windows of a series",
                       "--windows")
    assert_clean_error(run(runner, "explain", "-m", model, series_csv), "fitted on the windows of a series")
    assert_clean_error(run(runner, "evaluate", "-m", model, "--label-column", "value", series_csv),
                       "fitted on the windows of a series")
    table_model = tmp_path / "table.adscore"
    run(runner, "fit", "-d", "ae", "-p", "epochs=1", "--exclude", "ts,host", series_csv, "-o", table_model)
    assert_clean_error(run(runner, "evaluate", "-m", table_model, "--windows", labels_json, series_csv),
                       "evaluates a series model")
