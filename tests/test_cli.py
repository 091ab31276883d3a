"""adscore on the command line (click's CliRunner), including every bad-input case."""
import io
import json

import numpy as np
import pandas as pd
import pytest

from helpers import assert_clean_error

from pyod_ae_ext.cli import cli


@pytest.fixture
def data_csv(tmp_path):
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(rng.normal(size=(120, 4)), columns=["a", "b", "c", "d"])
    frame.insert(0, "id", [f"r{i}" for i in range(120)])
    frame["label"] = 0
    frame.loc[:5, ["a", "b"]] += 8
    frame.loc[:5, "label"] = 1
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return path


def run(runner, *args, **kwargs):
    return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False, **kwargs)


def fit_model(runner, data_csv, tmp_path, *extra):
    model = tmp_path / "model.adscore"
    result = run(runner, "fit", "-d", "toll", "-p", "epochs=3", "--seed", 0, "--id-column", "id",
                 "--exclude", "label", *extra, data_csv, "-o", model)
    assert result.exit_code == 0, result.output
    return model


def test_fit_score_round_trip(runner, data_csv, tmp_path):
    model = fit_model(runner, data_csv, tmp_path)
    result = run(runner, "score", "-m", model, "--id-column", "id", data_csv)
    assert result.exit_code == 0
    scores = pd.read_csv(pd.io.common.StringIO(result.stdout))
    assert list(scores.columns) == ["id", "anomaly_score", "is_anomaly", "anomaly_probability"]
    assert len(scores) == 120 and scores["id"].iloc[0] == "r0"
    # the threshold flags 10% of the training scores, which leave a row's own code out of its
    # latent neighbours; scoring the same rows again does not, so a few rows fewer may be flagged
    assert scores["is_anomaly"].sum() == pytest.approx(12, abs=3)
    assert scores.nlargest(6, "anomaly_score")["id"].str[1:].astype(int).max() < 12


def test_score_to_files_in_each_format(runner, data_csv, tmp_path):
    model = fit_model(runner, data_csv, tmp_path)
    for name in ("out.csv", "out.json", "out.parquet"):
        result = run(runner, "score", "-m", model, data_csv, "-o", tmp_path / name)
        assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "out.csv")) == 120
    assert len(pd.read_json(tmp_path / "out.json", lines=True)) == 120
    assert len(pd.read_parquet(tmp_path / "out.parquet")) == 120


def test_stdin_and_top(runner, data_csv, tmp_path):
    model = fit_model(runner, data_csv, tmp_path)
    result = run(runner, "score", "-m", model, "--id-column", "id", "--top", 3, "-", input=data_csv.read_text())
    assert result.exit_code == 0
    top = pd.read_csv(pd.io.common.StringIO(result.stdout))
    assert len(top) == 3 and top["anomaly_score"].is_monotonic_decreasing


def test_parquet_input_and_config_file(runner, data_csv, tmp_path):
    parquet = tmp_path / "data.parquet"
    pd.read_csv(data_csv).to_parquet(parquet)
    config = tmp_path / "toll.toml"
    config.write_text('detector = "toll"\n[params]\nlam = 0.25\nepochs = 2\nhidden_dims = [16]\n')
    model = tmp_path / "m.adscore"
    result = run(runner, "fit", "--config", config, "--exclude", "id,label", parquet, "-o", model)
    assert result.exit_code == 0, result.output
    meta = json.loads(run(runner, "info", "--json", model).stdout)
    assert meta["params"]["lam"] == 0.25 and meta["params"]["hidden_dims"] == [16]
    assert meta["feature_names"] == ["a", "b", "c", "d"]


def test_info_and_plugins(runner, data_csv, tmp_path):
    model = fit_model(runner, data_csv, tmp_path)
    info = run(runner, "info", model)
    assert "detector:   toll" in info.stdout and "lam = 1.0" in info.stdout
    plugins = run(runner, "plugins")
    assert "toll" in plugins.stdout and "iforest" in plugins.stdout
    listed = json.loads(run(runner, "plugins", "--json").stdout)["detectors"]
    assert {"ae", "toll", "ecod"} <= {row["detector"] for row in listed}


def test_pyod_baseline_from_the_cli(runner, data_csv, tmp_path):
    model = tmp_path / "forest.adscore"
    result = run(runner, "fit", "-d", "iforest", "-p", "n_estimators=20", "--seed", 1, "--exclude", "id,label",
                 data_csv, "-o", model)
    assert result.exit_code == 0, result.output
    assert run(runner, "score", "-m", model, data_csv).exit_code == 0


def test_demo_and_example(runner, tmp_path):
    result = run(runner, "demo", "--top", 5)
    assert result.exit_code == 0
    assert "ROC-AUC" in result.stdout
    assert run(runner, "example", "-o", tmp_path / "ex.csv").exit_code == 0
    assert pd.read_csv(tmp_path / "ex.csv").shape == (369, 32)


def test_demo_compares_with_other_detectors_on_the_same_rows(runner):
    from pyod.models.knn import KNN
    from sklearn.metrics import roc_auc_score

    from pyod_ae_ext.cli.demo import example_bytes

    result = run(runner, "demo", "--top", 3, "--compare", "knn, iforest")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[-2].startswith("knn: ROC-AUC ") and lines[-1].startswith("iforest: ROC-AUC ")
    frame = pd.read_csv(io.BytesIO(example_bytes()))
    knn = KNN().fit(frame.drop(columns=["id", "label"]).to_numpy(float))
    assert lines[-2] == f"knn: ROC-AUC {roc_auc_score(frame['label'], knn.decision_scores_):.3f}"
    bad = runner.invoke(cli, ["demo", "--compare", "knn,nosuch"])
    assert bad.exit_code == 2 and bad.output.count("Error:") == 1 and "fitting" not in bad.output


# ---- bad input: one line, exit 2, no traceback, no output file ---------------


def bad_fit(runner, tmp_path, data, *args):
    output = tmp_path / "never.adscore"
    result = runner.invoke(cli, ["fit", *map(str, args), str(data), "-o", str(output)])
    assert not output.exists()
    return result


def test_unknown_detector_and_parameter(runner, data_csv, tmp_path):
    assert_clean_error(bad_fit(runner, tmp_path, data_csv, "-d", "tol", "--exclude", "id"),
                       "unknown detector 'tol'", "toll")
    assert_clean_error(bad_fit(runner, tmp_path, data_csv, "-d", "toll", "-p", "lamda=2", "--exclude", "id"),
                       "unknown parameter(s) 'lamda'")
    assert_clean_error(bad_fit(runner, tmp_path, data_csv, "-d", "toll", "-p", "lam", "--exclude", "id"),
                       "KEY=VALUE")
    assert_clean_error(bad_fit(runner, tmp_path, data_csv, "-d", "toll", "-p", "lr=-3", "--exclude", "id"),
                       "lr must be > 0")
    assert_clean_error(bad_fit(runner, tmp_path, data_csv, "-d", "iforest", "-p", "n_estimators=-3",
                               "--exclude", "id"), "iforest")
    assert_clean_error(bad_fit(runner, tmp_path, data_csv, "--exclude", "id"), "--detector")


def test_model_output_must_be_a_file(runner, data_csv):
    result = runner.invoke(cli, ["fit", "-d", "toll", "--exclude", "id", str(data_csv), "-o", "-"])
    assert_clean_error(result, "-o MODEL.adscore")


def test_non_numeric_column(runner, data_csv, tmp_path):
    assert_clean_error(bad_fit(runner, tmp_path, data_csv, "-d", "toll"), "non-numeric column(s) id", "--exclude")


def test_missing_and_unknown_columns(runner, data_csv, tmp_path):
    assert_clean_error(bad_fit(runner, tmp_path, data_csv, "-d", "toll", "--exclude", "id,zzz"), "zzz")
    assert_clean_error(bad_fit(runner, tmp_path, data_csv, "-d", "toll", "--columns", "a,q"), "q")


def test_nan_and_inf(runner, data_csv, tmp_path):
    frame = pd.read_csv(data_csv)
    frame.loc[7, "c"] = np.nan
    nan_csv = tmp_path / "nan.csv"
    frame.to_csv(nan_csv, index=False)
    assert_clean_error(bad_fit(runner, tmp_path, nan_csv, "-d", "toll", "--exclude", "id"), "'c'", "row 7")
    frame.loc[7, "c"] = np.inf
    frame.to_csv(nan_csv, index=False)
    assert_clean_error(bad_fit(runner, tmp_path, nan_csv, "-d", "toll", "--exclude", "id"), "inf", "'c'")


def test_empty_and_garbage_files(runner, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert_clean_error(bad_fit(runner, tmp_path, empty, "-d", "toll"), "empty")
    header_only = tmp_path / "header.csv"
    header_only.write_text("a,b,c\n")
    assert_clean_error(bad_fit(runner, tmp_path, header_only, "-d", "toll"), "no data rows")
    assert_clean_error(bad_fit(runner, tmp_path, tmp_path / "nope.csv", "-d", "toll"), "does not exist")
    fake_parquet = tmp_path / "x.parquet"
    fake_parquet.write_text("not parquet")
    assert_clean_error(bad_fit(runner, tmp_path, fake_parquet, "-d", "toll"), "Parquet")


def test_scoring_data_missing_model_columns(runner, data_csv, tmp_path):
    model = fit_model(runner, data_csv, tmp_path)
    partial = tmp_path / "partial.csv"
    pd.read_csv(data_csv).drop(columns=["b", "d"]).to_csv(partial, index=False)
    out = tmp_path / "scores.csv"
    result = runner.invoke(cli, ["score", "-m", str(model), str(partial), "-o", str(out)])
    assert_clean_error(result, "lacks column(s) the model was fitted on: b, d")
    assert not out.exists()


def test_extra_columns_are_noted(runner, data_csv, tmp_path):
    model = fit_model(runner, data_csv, tmp_path)
    pd.read_csv(data_csv).assign(x=1, y=2).to_csv(tmp_path / "wider.csv", index=False)
    result = run(runner, "score", "-m", model, tmp_path / "wider.csv")
    assert result.exit_code == 0
    # id and label were given to `fit` as not-features, so only the new columns are noted
    assert "ignoring 2 column(s) the model does not use: x, y" in result.stderr


def test_corrupt_and_foreign_models(runner, data_csv, tmp_path):
    model = fit_model(runner, data_csv, tmp_path)
    model.write_bytes(model.read_bytes()[:300])
    assert_clean_error(runner.invoke(cli, ["score", "-m", str(model), str(data_csv)]), "truncated")
    foreign = tmp_path / "foreign.adscore"
    foreign.write_text("hello")
    assert_clean_error(runner.invoke(cli, ["info", str(foreign)]), "not an adscore model")
    assert_clean_error(runner.invoke(cli, ["score", "-m", str(tmp_path / "missing"), str(data_csv)]),
                       "does not exist")


def test_debug_shows_the_traceback(runner, data_csv, tmp_path):
    result = runner.invoke(cli, ["--debug", "fit", "-d", "tol", str(data_csv), "-o", str(tmp_path / "m")])
    assert result.exit_code != 0 and result.exception is not None


def test_help_teaches(runner):
    result = run(runner, "--help")
    assert "adscore fit --detector toll" in result.stdout
    for command in ("fit", "score", "plugins", "info", "demo", "example"):
        assert command in result.stdout
    assert "Examples:" in run(runner, "fit", "--help").stdout


def test_a_reader_that_stops_early_ends_the_output_quietly(runner, data_csv, tmp_path):
    """`adscore score ... | head`: no Error line and no traceback once the reader has gone (exit status 1)."""
    import os
    import subprocess
    import sys

    model = tmp_path / "forest.adscore"
    run(runner, "fit", "-d", "iforest", "--exclude", "id,label", data_csv, "-o", model)
    for args in (["example", "-o", "-"], ["score", "-m", model, data_csv]):
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader is gone before the first write
        try:
            done = subprocess.run([sys.executable, "-c", "from pyod_ae_ext.cli import main; main()",
                                   *map(str, args)], stdout=write_end, stderr=subprocess.PIPE, timeout=120)
        finally:
            os.close(write_end)
        assert done.returncode == 1, done.stderr
        assert b"Error" not in done.stderr and b"Traceback" not in done.stderr, done.stderr
