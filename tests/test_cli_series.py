"""Series mode on the command line: fit --window, score per time point, evaluate and threshold."""
import io
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

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
    assert_clean_error(run(runner, "evaluate", "-m", model, series_csv), "needs labels", "--label-column",
                       "--windows")
    assert_clean_error(run(runner, "report", "-m", model, "--label-column", "nope", series_csv, "-o",
                           tmp_path / "r.html"), "'nope' is not a column")
    assert not (tmp_path / "r.html").exists()
    assert_clean_error(run(runner, "explain", "-m", model, "--columns", "value", series_csv), "drop --image-shape")
    assert_clean_error(run(runner, "evaluate", "-m", model, "--windows", labels_json, "--label-column", "value",
                           series_csv), "drop --label-column")
    assert_clean_error(run(runner, "evaluate", "-m", model, "--label-column", "value", series_csv),
                       "label column 'value' must hold 0")
    assert_clean_error(run(runner, "evaluate", "-m", model, "--label-column", "nope", series_csv),
                       "'nope' is not a column")
    assert_clean_error(run(runner, "threshold", "-m", model, series_csv), "needs labels", "--label-column")
    table_model = tmp_path / "table.adscore"
    run(runner, "fit", "-d", "ae", "-p", "epochs=1", "--exclude", "ts,host", series_csv, "-o", table_model)
    assert_clean_error(run(runner, "evaluate", "-m", table_model, "--windows", labels_json, series_csv),
                       "evaluates a series model")


@pytest.fixture
def labelled_series_csv(series_csv, tmp_path):
    """The series with a 0/1 column marking the points of ``labels_json``'s window (06:35 to 06:45)."""
    frame = pd.read_csv(series_csv)
    frame["label"] = 0
    frame.loc[395:405, "label"] = 1
    path = tmp_path / "labelled.csv"
    frame.to_csv(path, index=False)
    return path


def test_a_label_column_is_no_value_column_and_evaluate_reuses_it(runner, labelled_series_csv, labels_json,
                                                                  tmp_path):
    model = fit_series_model(runner, labelled_series_csv, tmp_path, "--label-column", "label", "--contamination",
                             0.02)
    info = json.loads(run(runner, "info", "--json", model).stdout)
    assert info["series_windows"]["value_columns"] == ["value"]
    assert info["fit_info"]["label_column"] == "label" and info["fit_info"]["n_rows"] == 600
    result = run(runner, "evaluate", "-m", model, "--json", labelled_series_csv)
    assert result.exit_code == 0, result.output
    by_labels = json.loads(result.stdout)
    assert by_labels["n_anomalous_points"] == 11
    scored = pd.read_csv(io.StringIO(run(runner, "score", "-m", model, labelled_series_csv).stdout))
    labels = pd.read_csv(labelled_series_csv)["label"]
    assert by_labels["point_roc_auc"] == pytest.approx(roc_auc_score(labels, scored["anomaly_score"]))
    assert by_labels["n_alarms"] == scored["is_anomaly"].sum()
    windows_file = tmp_path / "windows.json"
    windows_file.write_text(json.dumps(next(iter(json.loads(labels_json.read_text()).values()))))
    by_windows = json.loads(run(runner, "evaluate", "-m", model, "--windows", windows_file, "--json",
                                labelled_series_csv).stdout)
    # each run of labelled points is one window: the same window metrics as the equivalent labels file
    for key in ("windows", "detected_windows", "false_alarms", "raw_score", "nab_score", "n_alarms"):
        assert by_labels[key] == by_windows[key], key
    text = run(runner, "evaluate", "-m", model, labelled_series_csv).stdout
    assert "point ROC-AUC" in text and "(11 labelled point(s) in 'label')" in text and "NAB score" in text


def test_threshold_chooses_a_series_models_point_threshold(runner, labelled_series_csv, tmp_path):
    model = fit_series_model(runner, labelled_series_csv, tmp_path, "--label-column", "label")
    tuned = tmp_path / "tuned.adscore"
    result = run(runner, "threshold", "-m", model, "--tolerance", 3, "--json", labelled_series_csv, "-o", tuned)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    chosen, previous = report["chosen"], report["previous"]
    assert chosen["f1"] >= previous["f1"] and chosen["n_flagged"] < previous["n_flagged"]
    before = json.loads(run(runner, "info", "--json", model).stdout)
    after = json.loads(run(runner, "info", "--json", tuned).stdout)
    assert previous["threshold"] == before["series_windows"]["point_scale"][1]
    assert after["series_windows"]["point_scale"][1] == chosen["threshold"]
    assert after["threshold"] == before["threshold"]  # the window threshold is not the alarm threshold
    assert after["fit_info"]["threshold_source"]["method"] == "f1"
    scored = pd.read_csv(io.StringIO(run(runner, "score", "-m", tuned, labelled_series_csv).stdout))
    assert int(scored["is_anomaly"].sum()) == chosen["n_flagged"]
    assert f"points {chosen['threshold']:.6g} (max F1 on labelled labelled.csv, 600 points)" in run(
        runner, "info", tuned).stdout


def test_score_of_a_series_model_names_its_columns_and_keeps_remembered_ids(runner, series_csv, tmp_path):
    model = tmp_path / "ids.adscore"
    result = run(runner, "fit", "-d", "ae", "-p", "epochs=2", "--time-column", "ts", "--id-column", "host",
                 "--window", 16, "--quiet", series_csv, "-o", model)
    assert result.exit_code == 0 and result.stderr == ""
    result = run(runner, "score", "-m", model, "--score-name", "s", "--flag-name", "alarm", "-q", series_csv)
    assert result.exit_code == 0 and result.stderr == ""
    assert list(pd.read_csv(io.StringIO(result.stdout)).columns) == ["ts", "host", "s", "alarm",
                                                                     "anomaly_probability"]
    assert_clean_error(run(runner, "score", "-m", model, "--score-name", "host", series_csv), "'host'")
    assert_clean_error(run(runner, "score", "-m", model, "--probability", "unify", series_csv), "drop --probability")


def test_explain_names_the_value_column_that_carries_a_points_score(runner, tmp_path):
    n = 800
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"ts": np.arange(n) * 10, "a": np.sin(np.arange(n) / 6), "b": np.cos(np.arange(n) / 9)})
    frame[["a", "b"]] += 0.05 * rng.normal(size=(n, 2))
    frame.loc[600:603, "b"] += 3.0
    data = tmp_path / "two.csv"
    frame.to_csv(data, index=False)
    model = tmp_path / "two.adscore"
    fitted = run(runner, "fit", "-d", "ae", "-p", "epochs=20", "--seed", 0, "--time-column", "ts", "--window", 16,
                 data, "-o", model)
    assert fitted.exit_code == 0, fitted.output
    result = run(runner, "explain", "-m", model, "--top", 3, "--json", data)
    assert result.exit_code == 0, result.output
    explained = json.loads(result.stdout)
    scored = pd.read_csv(io.StringIO(run(runner, "score", "-m", model, data).stdout))
    for row in explained["rows"]:
        assert 600 <= row["row"] <= 603 and row["id"] == {"ts": int(frame["ts"][row["row"]])}
        assert row["features"][0]["feature"] == "b" and row["features"][0]["share"] > 0.5
        # the point fold: a point's score is the sum of its own terms over the value columns
        assert sum(f["contribution"] for f in row["features"]) == pytest.approx(row["anomaly_score"])
        assert row["anomaly_score"] == pytest.approx(scored["anomaly_score"][row["row"]])
    assert explained["n_rows"] == n and explained["n_flagged"] == int(scored["is_anomaly"].sum())


def test_plots_of_a_series_model(runner, labelled_series_csv, labels_json, tmp_path):
    from test_analysis import assert_png

    model = fit_series_model(runner, labelled_series_csv, tmp_path, "--label-column", "label")
    windows_file = tmp_path / "windows.json"
    windows_file.write_text(json.dumps(next(iter(json.loads(labels_json.read_text()).values()))))
    for command, extra in (("explain", []), ("evaluate", []), ("evaluate", ["--windows", windows_file])):
        plot = tmp_path / f"{command}{len(extra)}.png"
        result = run(runner, command, "-m", model, *extra, "--plot", plot, labelled_series_csv)
        assert result.exit_code == 0, result.output
        assert_png(plot)
        assert f"wrote {plot}" in result.stderr


def test_a_series_plot_shows_the_columns_that_weigh_most_at_the_alarms():
    from pyod_ae_ext.series_plots import MAX_COLUMNS, shown_columns

    n_columns = MAX_COLUMNS + 3
    terms = np.ones((50, n_columns))
    alarms = np.zeros(50, dtype=bool)
    alarms[[10, 11]] = True
    terms[np.ix_([10, 11], [2, 8])] = 100.0  # columns 2 and 8 carry the alarms' scores
    shown = shown_columns([f"c{j}" for j in range(n_columns)], terms, alarms)
    assert len(shown) == MAX_COLUMNS and {2, 8} <= set(shown) and shown == sorted(shown)
    assert shown_columns(["a", "b"], terms[:, :2], alarms) == [0, 1]


def test_report_of_a_series_model_goes_point_by_point(runner, labelled_series_csv, tmp_path):
    model = fit_series_model(runner, labelled_series_csv, tmp_path, "--label-column", "label", "--contamination",
                             0.02)
    page = tmp_path / "report.html"
    result = run(runner, "report", "-m", model, labelled_series_csv, "-o", page)
    assert result.exit_code == 0, result.output
    text = page.read_text()
    evaluated = json.loads(run(runner, "evaluate", "-m", model, "--json", labelled_series_csv).stdout)
    assert "The series over time" in text and "600 points scored" in text and "<script" not in text
    assert f"{evaluated['point_roc_auc']:.3f}" in text and f"{evaluated['nab_score']:.2f}" in text
    assert f"{evaluated['n_alarms']:,} ({evaluated['n_alarms'] / 600:.1%})" in text  # points flagged
    assert "2024-01-01 06:40:00" in text  # the spike's time stamp identifies the top point
    assert_clean_error(run(runner, "report", "-m", model, "--columns", "value", labelled_series_csv, "-o", page),
                       "drop --columns")


def test_series_mode_flags_one_percent_of_the_points_unless_told_otherwise(runner, series_csv, tmp_path):
    from pyod_ae_ext.windows import SERIES_CONTAMINATION

    shares = {}
    for name, extra in (("default", []), ("flag", ["--contamination", 0.05]), ("param", ["-p", "contamination=0.05"])):
        model = tmp_path / f"{name}.adscore"
        result = run(runner, "fit", "-d", "ae", "-p", "epochs=2", "--time-column", "ts", "--exclude", "host",
                     "--window", 16, *extra, series_csv, "-o", model)
        assert result.exit_code == 0, result.output
        info = json.loads(run(runner, "info", "--json", model).stdout)
        shares[name] = info["params"]["contamination"]
        scored = pd.read_csv(io.StringIO(run(runner, "score", "-m", model, series_csv).stdout))
        assert scored["is_anomaly"].mean() == pytest.approx(shares[name], abs=2 / len(scored))
    assert shares == {"default": SERIES_CONTAMINATION, "flag": 0.05, "param": 0.05}
    table_model = tmp_path / "table.adscore"
    run(runner, "fit", "-d", "ae", "-p", "epochs=1", "--exclude", "ts,host", series_csv, "-o", table_model)
    assert json.loads(run(runner, "info", "--json", table_model).stdout)["params"]["contamination"] == 0.1
