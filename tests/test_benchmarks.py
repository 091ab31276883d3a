"""The benchmark harness, ``adscore benchmark`` and the ``python -m benchmarks`` smoke runs."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from pyod_ae_ext import benchmarking as bench
from pyod_ae_ext.cli import cli
from pyod_ae_ext.errors import AdscoreError, DataError, ParameterError

REPO = Path(__file__).resolve().parents[1]


def datasets_root() -> Path:
    env = os.environ.get("ADSCORE_DATASETS")
    return Path(env) if env else REPO.parent / "shared" / "datasets"


needs_data = pytest.mark.skipif(not datasets_root().is_dir(),
                                reason=f"shared benchmark data not found at {datasets_root()} "
                                       "(set ADSCORE_DATASETS)")


@pytest.fixture
def labelled():
    """300 Gaussian rows, 20 of them shifted far away and labelled 1."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 4))
    y = np.zeros(300, dtype=int)
    y[:20] = 1
    X[:20] += 6.0
    return X, y


# --------------------------------------------------------------------------
# harness


def test_split_is_stratified_seeded_and_disjoint(labelled):
    _, y = labelled
    train, test = bench.split_indices(y, seed=3)
    assert len(test) == 90 and len(train) == 210
    assert not set(train) & set(test)
    assert y[test].sum() == 6 and y[train].sum() == 14  # 30% of the 20 anomalies in the test part
    again, _ = bench.split_indices(y, seed=3)
    other, _ = bench.split_indices(y, seed=4)
    assert np.array_equal(train, again) and not np.array_equal(train, other)


def test_protocols_choose_the_fitting_rows(labelled):
    _, y = labelled
    train, _ = bench.split_indices(y, seed=0)
    assert np.array_equal(bench.protocol_rows(y, train, "unsupervised"), train)
    normal_only = bench.protocol_rows(y, train, "one-class")
    assert y[normal_only].sum() == 0 and len(normal_only) == (y[train] == 0).sum()
    with pytest.raises(ParameterError):
        bench.protocol_rows(y, train, "semi")


def test_one_class_cell_fits_only_normal_rows(labelled):
    X, y = labelled
    seen = {}

    from pyod.models.base import BaseDetector

    class Spy(BaseDetector):
        """Stands in for a detector: remembers the rows it was fitted on."""

        def __init__(self, contamination=0.1):
            super().__init__(contamination=contamination)

        def fit(self, X, y=None):
            seen["fit"] = X.copy()
            self.decision_scores_ = np.abs(X).sum(1)
            self._process_decision_scores()
            return self

        def decision_function(self, X):
            return np.abs(X).sum(1)

    choice = bench.DetectorChoice("spy", Spy, kind="pyod-class")
    record = bench.run_cell(choice, X, y, seed=1, protocol="one-class")
    assert seen["fit"].max() < 5.5  # none of the shifted anomalies
    assert record["n_fit"] == 196 and record["n_test"] == 90 and record["n_test_anomalies"] == 6
    assert record["roc_auc"] == 1.0 and record["ap"] == 1.0
    record = bench.run_cell(choice, X, y, seed=1, protocol="unsupervised")
    assert record["n_fit"] == 210 and seen["fit"].max() > 5.5


def test_registered_and_pyod_class_path_detectors(labelled):
    X, y = labelled
    ours = bench.resolve_detector("autoencoder", {"epochs": 2})  # an alias
    assert ours.label == "ae" and ours.kind == "registered"
    forest = bench.resolve_detector("pyod.models.iforest:IForest", {"n_estimators": 20})
    svdd = bench.resolve_detector("pyod.models.deep_svdd:DeepSVDD", {"epochs": 1})
    assert forest.kind == "pyod-class"
    built = svdd.build(seed=7, n_features=4)  # n_features filled in, verbose off, seed passed
    assert built.n_features == 4 and built.verbose == 0 and built.random_state == 7
    assert forest.build(seed=5, n_features=4).random_state == 5
    records = bench.run_benchmark([ours, forest], X, y, seeds=[0, 1], protocol="one-class")
    assert [(r["detector"], r["seed"]) for r in records] == [("ae", 0), ("pyod.models.iforest:IForest", 0),
                                                             ("ae", 1), ("pyod.models.iforest:IForest", 1)]
    assert all(r["roc_auc"] > 0.95 for r in records)
    again = bench.run_benchmark([ours], X, y, seeds=[1])
    assert again[0]["roc_auc"] == records[2]["roc_auc"] and again[0]["ap"] == records[2]["ap"]


@pytest.mark.parametrize("name, message", [
    ("os:system", "not a PyOD class path"),
    ("sklearn.ensemble:IsolationForest", "not a PyOD class path"),
    ("pyod.models.iforest:Nope", "has no class"),
    ("pyod.models.nothere:X", "cannot import"),
    ("pyod.utils.data:generate_data", "not a PyOD detector class"),
    ("toll2", "unknown detector"),
])
def test_bad_detector_names(name, message):
    with pytest.raises(AdscoreError, match=message):
        bench.resolve_detector(name)


def test_unknown_parameters_are_named():
    with pytest.raises(ParameterError, match="'n_trees'.*valid parameters"):
        bench.resolve_detector("pyod.models.iforest:IForest", {"n_trees": 3})
    with pytest.raises(ParameterError, match="'lamda'"):
        bench.resolve_detector("toll", {"lamda": 3})


def test_summary_ranks_by_roc_auc_and_f1_at_top():
    records = [{"detector": d, "seed": s, "roc_auc": auc, "ap": 0.5, "fit_s": 1.0, "score_s": 0.1}
               for d, aucs in (("a", (0.7, 0.8)), ("b", (0.9, 0.9))) for s, auc in enumerate(aucs)]
    rows = bench.summarise(records, order=["a", "b"])
    assert [(r["detector"], r["rank"]) for r in rows] == [("b", 1), ("a", 2)]
    assert rows[1]["roc_auc_mean"] == pytest.approx(0.75)
    assert rows[1]["roc_auc_std"] == pytest.approx(np.std([0.7, 0.8], ddof=1))
    assert "b" in bench.format_summary(rows).splitlines()[1]
    ranks = bench.average_ranks({"d1": {"a": 0.9, "b": 0.8}, "d2": {"a": 0.5, "b": 0.5}})
    assert ranks == {"a": 1.25, "b": 1.75}
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    scores = np.array([9, 1, 8, 0, 0, 0, 0, 0, 0, 0])  # top 20% = rows 0 and 2: one hit
    assert bench.f1_at_top(y, scores, 0.2) == pytest.approx(0.5)


def test_labelled_data_checks():
    X = np.zeros((10, 2))
    with pytest.raises(DataError, match="at least 2 labelled anomalies"):
        bench.check_labelled(X, np.r_[1, np.zeros(9)])
    with pytest.raises(DataError, match="0 \\(normal\\) or 1"):
        bench.check_labelled(X, np.arange(10))


# --------------------------------------------------------------------------
# adscore benchmark


@pytest.fixture
def labelled_csv(tmp_path, labelled):
    X, y = labelled
    frame = pd.DataFrame(X, columns=list("abcd"))
    frame.insert(0, "id", [f"r{i}" for i in range(len(y))])
    frame["is_anomaly"] = y
    path = tmp_path / "labelled.csv"
    frame.to_csv(path, index=False)
    return path


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_cli_benchmark_table_and_json(labelled_csv):
    forest = "pyod.models.iforest:IForest"
    result = invoke("benchmark", labelled_csv, "-y", "is_anomaly", "--id-column", "id", "-d", "ae", "-d", forest,
                    "-p", "epochs=3", "-p", f"{forest}.n_estimators=25", "--seeds", 2)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0].split()[:4] == ["rank", "detector", "ROC-AUC", "AP"]
    assert len(lines) == 3 and "±" in lines[1]
    result = invoke("benchmark", labelled_csv, "-y", "is_anomaly", "--exclude", "id", "-d", "toll",
                    "-p", "toll.epochs=2", "-p", "toll.lam=0.5", "--protocol", "unsupervised", "--seeds", 1,
                    "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["protocol"] == "unsupervised" and payload["n_features"] == 4 and payload["n_anomalies"] == 20
    assert payload["summary"][0]["params"] == {"epochs": 2, "lam": 0.5}
    assert payload["runs"][0]["n_fit"] == 210


@pytest.mark.parametrize("args, message", [
    (["-d", "ae"], "Missing option '--label-column'"),
    (["-y", "is_anomaly"], "choose detectors with --detector"),
    (["-y", "nope", "-d", "ae"], "--label-column names column(s) not in the data"),
    (["-y", "is_anomaly", "-d", "ae"], "non-numeric column(s) id"),
    (["-y", "is_anomaly", "--exclude", "id", "-d", "nope"], "unknown detector 'nope'"),
    (["-y", "is_anomaly", "--exclude", "id", "-d", "os:getcwd"], "not a PyOD class path"),
    (["-y", "is_anomaly", "--exclude", "id", "-d", "ae", "-p", "iforest.n_estimators=3"],
     "'iforest' is not one of the --detector values"),
    (["-y", "is_anomaly", "--exclude", "id", "-d", "ae", "-p", "n_estimators=3"],
     "unknown parameter(s) 'n_estimators' for detector 'ae'"),
    (["-y", "is_anomaly", "--exclude", "id", "-d", "ae", "-d", "ecod", "-p", "n_estimators=3"],
     "none of the detectors has a parameter 'n_estimators'"),
    (["-y", "is_anomaly", "--exclude", "id", "-d", "ae", "-p", "ae.epochs"], "DETECTOR.KEY=VALUE"),
    (["-y", "is_anomaly", "--exclude", "id", "-d", "ae", "-d", "autoencoder"], "given twice"),
    (["-y", "is_anomaly", "--exclude", "id", "-d", "ae", "-p", "ae.epochs=-1"], "epochs must be >= 0"),
    (["-y", "is_anomaly", "--exclude", "id", "-d", "iforest", "-p", "n_estimators=-1"],
     "detector 'iforest' failed (seed 0)"),
    (["-y", "is_anomaly", "--exclude", "id", "-d", "ae", "--seeds", "0"], "--seeds"),
])
def test_cli_benchmark_bad_input_is_one_line(labelled_csv, args, message):
    result = invoke("benchmark", labelled_csv, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1


def test_cli_benchmark_rejects_unusable_labels(tmp_path):
    frame = pd.DataFrame({"a": np.arange(20.0), "y": [2] + [0] * 19})
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    result = invoke("benchmark", path, "-y", "y", "-d", "ecod")
    assert result.exit_code == 2 and "must hold 0 (normal) and 1 (anomaly)" in result.output
    frame["y"] = [1] + [0] * 19
    frame.to_csv(path, index=False)
    result = invoke("benchmark", path, "-y", "y", "-d", "ecod")
    assert result.exit_code == 2 and "at least 2 labelled anomalies" in result.output


# --------------------------------------------------------------------------
# python -m benchmarks


def run_suites(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "benchmarks", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def test_missing_data_folder_is_a_clear_message(tmp_path):
    done = run_suites("accuracy", "--quick", "--out", tmp_path, env={"ADSCORE_DATASETS": str(tmp_path / "none")})
    assert done.returncode == 2
    assert "benchmark data not found" in done.stderr and "ADSCORE_DATASETS" in done.stderr
    assert "Traceback" not in done.stderr


@needs_data
def test_quick_accuracy_and_papers_write_incrementally_and_report(tmp_path):
    done = run_suites("accuracy", "--quick", "--threads", "1", "--out", tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in (tmp_path / "accuracy-quick.jsonl").read_text().splitlines()]
    cells = [r for r in lines if r["kind"] == "cell"]
    assert {r["dataset"] for r in cells} == {"4_breastw", "18_Ionosphere"}
    assert {r["protocol"] for r in cells} == {"one-class", "unsupervised"}
    assert {"toll", "ae", "pyod:AutoEncoder", "iforest", "ecod"} <= {r["detector"] for r in cells}
    assert not [r for r in cells if r.get("error")]
    assert "#### Summary (one-class)" in done.stdout
    # a rerun skips every finished cell
    again = run_suites("accuracy", "--quick", "--threads", "1", "--out", tmp_path)
    assert again.returncode == 0
    relines = (tmp_path / "accuracy-quick.jsonl").read_text().splitlines()
    assert len(relines) == len(lines) + 1  # only the new run header
    done = run_suites("papers", "--quick", "--threads", "1", "--out", tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Toll on Arrhythmia" in done.stdout and "paper (conv net)" in done.stdout
    report = run_suites("report", "--quick", "--results", tmp_path)
    assert report.returncode == 0
    assert "## Accuracy" in report.stdout and "## Paper reproductions" in report.stdout
    assert "No results file" in report.stdout  # speed was not run here


def test_quick_speed_suite(tmp_path):
    done = run_suites("speed", "--quick", "--threads", "1", "--out", tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    cells = [json.loads(line) for line in (tmp_path / "speed-quick.jsonl").read_text().splitlines()]
    cells = [c for c in cells if c["kind"] == "cell"]
    assert not [c for c in cells if c.get("error")], [c["error"] for c in cells if c.get("error")]
    assert {c["test"] for c in cells} == {"fit", "matmul", "flops"}
    assert "fit speed-up" in done.stdout and "Arithmetic limit" in done.stdout


def test_the_holdout_is_every_set_outside_the_suite_up_to_a_size(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))  # benchmarks/ is a folder of the checkout, not of the package
    from benchmarks.holdout import holdout_sets, per_set_table

    folder = tmp_path / "adbench"
    folder.mkdir()
    for name, rows in (("6_cardio", 10), ("7_small", 10), ("8_large", 30), ("12_edge", 20)):
        np.savez(folder / f"{name}.npz", X=np.zeros((rows, 2)), y=np.zeros(rows))
    monkeypatch.setenv("ADSCORE_DATASETS", str(tmp_path))
    assert holdout_sets(max_rows=20) == ["7_small", "12_edge"]  # 6_cardio is a suite set
    records = [{"protocol": "one-class", "dataset": "7_small", "detector": "knn", "roc_auc": r} for r in (0.5, 0.7)]
    assert "| 7_small | 60.0 |" in per_set_table(records, "one-class")


def test_benchmark_params_are_literals_and_label_the_families(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    from benchmarks.common import parsed_params
    from benchmarks.members import choices

    params = parsed_params(["hidden_dims=(32, 64)", " lam = 0.5", "score_method='wasserstein'"])
    assert params == {"hidden_dims": (32, 64), "lam": 0.5, "score_method": "wasserstein"}
    for bad in ("lam", "=1", "score_method=wasserstein"):
        with pytest.raises(SystemExit, match="Error: -p"):
            parsed_params([bad])
    labelled = {c.label: c for c in choices(["ae"], ["K=1"], {"latent_knn_weight": 0.0})}
    ae = labelled["ae K=1 latent_knn_weight=0.0"]
    assert ae.params == {"n_members": 1, "latent_knn_weight": 0.0} and "knn" in labelled


def test_the_nab_benchmark_at_defaults_passes_only_the_backbone(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    from benchmarks.nab import LSTMAD_SHORT, detectors

    at_defaults = detectors(None, seed=3)
    for label, (name, params) in at_defaults.items():
        if name == "lstmad":
            assert params == {}  # PyOD's own defaults; the window is the look-back
        elif name in ("iforest", "knn"):
            continue
        else:
            assert set(params) <= {"backbone", "random_state"}, label
            assert params["random_state"] == 3
    assert at_defaults["ae conv1d"][1]["backbone"] == "conv1d"
    short = detectors(5, seed=0)
    assert short["ae lstm"][1]["epochs"] == 5 and short["pyod LSTMAD"][1] == {**LSTMAD_SHORT, "epochs": 5}


def test_the_nab_benchmark_prints_saved_runs_as_one_table(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    row = {"quantile": 0.99, "recall": 0.5, "precision": 0.25, "nab_score": 40.0, "windows": 2, "detected": 1,
           "false_alarms": 3, "point_roc_auc": 0.6, "seconds": 1.0}
    paths = []
    for label, score in (("ae mlp [point]", 40.0), ("pyod KNN [mean]", 30.0)):
        path = tmp_path / f"{label.split()[1]}.json"
        path.write_text(json.dumps({"settings": {"series": None}, "synthetic_series": 6,
                                    "nab": {label: {**row, "nab_score": score}}, "synthetic": {label: row}}))
        paths.append(str(path))
    done = subprocess.run([sys.executable, "-m", "benchmarks.nab", "--report", *paths], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    nab_table = done.stdout.split("#### Synthetic")[0]
    assert nab_table.index("| ae mlp [point] | 40.0 |") < nab_table.index("| pyod KNN [mean] | 30.0 |")
    assert "6 series x 5 injected anomalies" in done.stdout
    assert "share of points flagged" not in done.stdout  # runs saved before the per-share scores


def test_the_nab_benchmark_scores_every_share_of_alarm_points(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    from benchmarks.nab import QUANTILES, alarm_share_markdown, evaluate

    times = np.arange(200.0)
    scores = np.zeros(200)
    scores[100:105] = np.arange(1.0, 6.0)  # the window's points score highest
    result = evaluate([(times, scores, [(100.0, 104.0)])])
    assert list(result["by_quantile"]) == [str(q) for q in QUANTILES]
    assert result["by_quantile"][str(result["quantile"])] == result["nab_score"] == max(result["by_quantile"].values())
    by_share = result["by_quantile"]
    # the top 2% are exactly the window's 5 points: found at its first point, no false alarm
    assert by_share["0.98"] == pytest.approx(100.0)
    # flagging 10% or 5% adds 15 or 5 false alarms; 0.1% flags only the window's last point (found late)
    assert by_share["0.9"] < by_share["0.95"] < 100.0 and 0 < by_share["0.999"] < 100.0
    table = alarm_share_markdown("NAB", {"ae mlp [point]": result})
    assert "| detector [fold] | 10% | 5% |" in table and table.count("\n| ae mlp [point] |") == 1
    unknown = subprocess.run([sys.executable, "-m", "benchmarks.nab", "--detectors", "ae gru"], cwd=REPO,
                             capture_output=True, text=True)
    assert unknown.returncode == 2 and "unknown detector label(s) ['ae gru']" in unknown.stderr
