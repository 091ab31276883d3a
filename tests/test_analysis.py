"""Explanations, exact threshold search, evaluation, plots, and the explain/threshold/evaluate commands."""
import json
import sys

import numpy as np
import pandas as pd
import pytest
from helpers import assert_clean_error
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

import pyod_ae_ext
from pyod_ae_ext.analysis import (best_threshold, contributions, evaluate, evaluate_threshold, explain,
                                  plot_report, threshold_table)
from pyod_ae_ext.cli import cli
from pyod_ae_ext.ensemble import Ensemble
from pyod_ae_ext.errors import AdscoreError, DataError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---- explanations ---------------------------------------------------------------


def test_reconstruction_contributions_sum_to_the_score(blobs):
    train, test = blobs
    ae = pyod_ae_ext.make_detector("ae", epochs=3, random_state=0).fit(train)
    attribution = contributions(ae, test, list("abcde"))
    assert attribution.columns == list("abcde")  # the score is exactly the sum: no extra column
    np.testing.assert_allclose(attribution.values.sum(axis=1), ae.family_score(test), rtol=1e-5)
    np.testing.assert_allclose(attribution.shares.sum(axis=1), 1.0)


def test_toll_latent_term_is_its_own_column(blobs):
    train, test = blobs
    toll = pyod_ae_ext.make_detector("toll", epochs=3, random_state=0).fit(train)
    attribution = contributions(toll, test, list("abcde"))
    assert attribution.columns == [*"abcde", "<latent>"]
    np.testing.assert_allclose(attribution.values.sum(axis=1), toll.family_score(test), rtol=1e-5)
    np.testing.assert_allclose(attribution.values[:, -1], toll.latent_penalty(test), rtol=1e-4, atol=1e-6)


def test_the_shifted_feature_is_the_top_contributor():
    rng = np.random.RandomState(0)
    train = rng.normal(size=(300, 4))
    test = rng.normal(size=(20, 4))
    test[:5, 2] += 8.0
    ae = pyod_ae_ext.make_detector("ae", epochs=20, hidden_dims=[8], latent_dim=2, random_state=0).fit(train)
    result = explain(ae, test, ["a", "b", "c", "d"], top=5, n_features=2)
    assert sorted(r["row"] for r in result["rows"]) == [0, 1, 2, 3, 4]
    assert all(r["features"][0]["feature"] == "c" for r in result["rows"])
    assert all(len(r["features"]) == 2 for r in result["rows"])
    assert [r["score"] for r in result["rows"]] == sorted((r["score"] for r in result["rows"]), reverse=True)
    assert result["summary"][0]["feature"] == "c" and result["summary"][0]["top_in_rows"] >= 5


def test_ensemble_is_explained_by_its_reconstruction_members(blobs):
    train, test = blobs
    ens = Ensemble(("ae", "toll", "iforest"), {"ae": {"epochs": 3}, "toll": {"epochs": 3},
                                               "iforest": {"n_estimators": 10}}, random_state=0).fit(train)
    attribution = contributions(ens, test, list("abcde"))
    ae_shares = contributions(ens.members_[0], test, list("abcde")).shares
    toll_shares = contributions(ens.members_[1], test, list("abcde")).shares
    expected = np.column_stack([ae_shares, np.zeros(len(test))]) / 2 + toll_shares / 2
    assert attribution.unit == "share" and attribution.columns[-1] == "<latent>"
    np.testing.assert_allclose(attribution.values, expected)
    assert "ae, toll" in attribution.source and "iforest" in attribution.source


def test_detectors_without_contributions_are_a_clear_error(blobs):
    train, test = blobs
    forest = pyod_ae_ext.make_detector("iforest", n_estimators=10, random_state=0).fit(train)
    with pytest.raises(AdscoreError, match="does not attribute its score to features"):
        contributions(forest, test)
    ens = Ensemble(("iforest", "ecod"), {"iforest": {"n_estimators": 10}}, random_state=0).fit(train)
    with pytest.raises(AdscoreError, match="no member of this ensemble"):
        contributions(ens, test)


# ---- thresholds -----------------------------------------------------------------


def brute_force(scores, labels, threshold, tolerance):
    """The tolerance definition, one row at a time."""
    alarms = scores > threshold
    n = len(scores)
    false_alarms = sum(1 for j in range(n) if alarms[j] and not labels[j:j + tolerance + 1].any())
    missed = sum(1 for i in range(n) if labels[i] and not alarms[max(0, i - tolerance):i + 1].any())
    return false_alarms, missed


def test_cost_threshold_found_exactly_on_a_constructed_case():
    #          rows:   0    1    2    3    4    5    6    7
    scores = np.array([0.1, 0.9, 0.2, 0.8, 0.3, 0.7, 0.4, 0.6])
    labels = np.array([0,   1,   0,   0,   0,   1,   0,   1])
    # flagging the top 1 (0.9): 0 false, 2 missed -> cost 10*2 = 20
    # top 2 (0.9, 0.8):         1 false, 2 missed -> 21
    # top 3 (+0.7):             1 false, 1 missed -> 11
    # top 4 (+0.6):             1 false, 0 missed -> 1   <- optimum, threshold 0.4
    # top 5 (+0.4):             2 false, 0 missed -> 2
    choice = best_threshold(scores, labels, "cost", cost_false_alarm=1, cost_missed=10)
    assert choice.threshold == 0.4 and choice.cost == 1
    assert (choice.alarms, choice.false_alarms, choice.missed) == (4, 1, 0)
    # a false alarm dearer than 2 missed anomalies: flag only the 0.9
    choice = best_threshold(scores, labels, "cost", cost_false_alarm=25, cost_missed=10)
    assert choice.threshold == 0.8 and choice.cost == 20
    # every row flagged when misses are all that counts (ties go to the higher threshold)
    choice = best_threshold(scores, labels, "cost", cost_false_alarm=0, cost_missed=1)
    assert choice.threshold == 0.4 and choice.missed == 0


def test_flag_every_row_is_a_candidate():
    scores = np.array([1.0, 2.0, 3.0])
    choice = best_threshold(scores, np.array([1, 0, 1]), "cost", cost_false_alarm=0.1, cost_missed=5)
    assert choice.alarms == 3 and choice.threshold < 1.0 and (scores > choice.threshold).all()


@pytest.mark.parametrize("tolerance", [0, 1, 3])
def test_cost_and_f1_optimum_match_brute_force(tolerance):
    rng = np.random.RandomState(tolerance)
    scores = np.round(rng.normal(size=120), 1)  # many ties
    labels = (rng.uniform(size=120) < 0.15).astype(int)
    labels[[10, 11, 12]] = 1
    candidates = np.concatenate([[scores.min() - 1], np.unique(scores)])
    costs, f1s = [], []
    for t in candidates:
        false_alarms, missed = brute_force(scores, labels, t, tolerance)
        costs.append(2 * false_alarms + 7 * missed)
        alarms = int((scores > t).sum())
        precision = (alarms - false_alarms) / alarms if alarms else 0.0
        recall = 1 - missed / labels.sum()
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    choice = best_threshold(scores, labels, "cost", 2, 7, tolerance=tolerance)
    assert choice.cost == min(costs)
    assert choice.threshold == candidates[np.flatnonzero(np.array(costs) == min(costs))[-1]] or \
        choice.threshold < scores.min()
    choice = best_threshold(scores, labels, "f1", tolerance=tolerance)
    assert choice.f1 == pytest.approx(max(f1s))
    if tolerance == 0:
        assert choice.f1 == pytest.approx(f1_score(labels, scores > choice.threshold))
    table = threshold_table(scores, labels, tolerance)
    assert len(table["threshold"]) == len(candidates)


def test_tolerance_counts_an_early_alarm_as_a_hit():
    scores = np.array([0.0, 5.0, 0.0, 0.0, 0.0, 0.0])
    labels = np.array([0, 0, 0, 1, 0, 0])
    # without tolerance the alarm at row 1 is false and flagging row 3 costs 4 false alarms
    assert best_threshold(scores, labels, "cost", 1, 3, tolerance=0).missed == 1
    with_tolerance = best_threshold(scores, labels, "cost", 1, 3, tolerance=2)
    assert (with_tolerance.missed, with_tolerance.false_alarms, with_tolerance.alarms) == (0, 0, 1)


def test_threshold_input_errors():
    with pytest.raises(DataError, match="no anomaly"):
        best_threshold(np.arange(4.0), np.zeros(4))
    with pytest.raises(DataError, match="0 \\(normal\\) or 1"):
        best_threshold(np.arange(4.0), np.array([0, 2, 0, 1]))
    with pytest.raises(AdscoreError, match="both be 0"):
        best_threshold(np.arange(4.0), np.array([0, 1, 0, 1]), "cost", 0, 0)


def test_evaluate_matches_sklearn():
    rng = np.random.RandomState(1)
    labels = (rng.uniform(size=200) < 0.1).astype(int)
    scores = rng.normal(size=200) + 2 * labels
    metrics = evaluate(scores, labels, threshold=1.0)
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert metrics["average_precision"] == pytest.approx(average_precision_score(labels, scores))
    assert metrics["f1"] == pytest.approx(f1_score(labels, scores > 1.0))
    assert metrics["n_flagged"] == int((scores > 1.0).sum())
    at = evaluate_threshold(scores, labels, 1.0)
    assert at.alarms == metrics["n_flagged"]


# ---- plots -----------------------------------------------------------------------


def assert_png(path):
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_MAGIC
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_plot_report_writes_a_png(tmp_path):
    rng = np.random.RandomState(0)
    scores, labels = rng.normal(size=100), (np.arange(100) < 10).astype(int)
    heat = {"values": rng.uniform(size=(5, 3)), "columns": ["a", "b", "c"], "rows": list("01234")}
    plot_report(tmp_path / "r.png", scores, 0.5, labels=labels, heat=heat, title="t")
    plot_report(tmp_path / "h.png", scores, 0.5)
    assert_png(tmp_path / "r.png")
    assert_png(tmp_path / "h.png")


@pytest.mark.parametrize("kind, expected", [
    ("normal", "linear"), ("lognormal", "log"), ("cauchy", "symlog"), ("constant", "linear"), ("one-huge", "log"),
])
def test_histogram_axis_rule(kind, expected):
    from pyod_ae_ext.plots import histogram_axes

    rng = np.random.RandomState(0)
    scores = {"normal": rng.normal(size=1000), "lognormal": np.exp(rng.normal(0, 2.5, size=1000)),
              "cauchy": rng.standard_cauchy(size=1000), "constant": np.full(50, 2.0),
              "one-huge": np.concatenate([rng.uniform(1, 2, size=999), [1e9]])}[kind]
    xscale, bins, linthresh = histogram_axes(scores, float(np.median(scores)), 30)
    assert xscale == expected
    if kind != "constant":
        assert bins[0] <= scores.min() and bins[-1] >= scores.max() and np.all(np.diff(bins) > 0)
    assert (linthresh is not None) == (xscale == "symlog")


def test_counts_axis_turns_logarithmic_when_the_tail_would_vanish():
    from pyod_ae_ext.plots import counts_scale

    assert counts_scale([300, 40, 0, 1]) == "log"
    assert counts_scale([30, 20, 0, 5]) == "linear"


def figure_axes(draw):
    from pyod_ae_ext.plots import new_figure

    figure = new_figure(5, 4)
    ax = figure.add_subplot(1, 1, 1)
    draw(figure, ax)
    figure.canvas.draw()  # lays out every text, so a mathtext error would surface here
    return ax


def test_roc_and_pr_mark_the_threshold_without_the_closing_artefact():
    from pyod_ae_ext.plots import pr_panel, roc_panel

    rng = np.random.RandomState(1)
    labels = (np.arange(200) < 20).astype(int)
    scores = rng.normal(size=200) + 2.0 * labels
    scores[25] = scores.max() + 1  # the top-scoring row is normal: precision 0 at the first cut
    at = evaluate_threshold(scores, labels, 1.0)
    ax = figure_axes(lambda figure, ax: pr_panel(ax, scores, labels, 1.0))
    curve, baseline, marker = ax.get_lines()
    recall, precision = curve.get_data()
    assert not np.any((recall == 0) & (precision == 1))
    assert baseline.get_ydata()[0] == pytest.approx(0.1) and "prevalence 10.0% (20 of 200)" in baseline.get_label()
    np.testing.assert_allclose(marker.get_xydata()[0], [at.recall, at.precision])
    ax = figure_axes(lambda figure, ax: roc_panel(ax, scores, labels, 1.0))
    marker = ax.get_lines()[-1]
    false_positive_rate = at.false_alarms / 180
    np.testing.assert_allclose(marker.get_xydata()[0], [false_positive_rate, at.recall])
    assert f"({at.alarms} flagged)" in marker.get_label()


def test_heat_map_rows_are_ids_and_the_colourbar_says_what_it_shows():
    from pyod_ae_ext.plots import heat_panel

    rng = np.random.RandomState(0)
    heat = {"values": rng.uniform(size=(3, 50)), "columns": [f"$c{j}" for j in range(49)] + ["a $\\frac{$ b"],
            "rows": ["id-7", "id-3", "id-9"], "row_label": "id", "unit": "contribution"}
    heat["values"][:, -1] += 5  # the column whose name is broken mathtext is among those shown
    figures = []
    ax = figure_axes(lambda figure, ax: (figures.append(figure), heat_panel(figure, ax, heat)))
    assert ax.get_xticklabels()[-1].get_text() == "a \\$\\frac{\\$ b"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["id-7", "id-3", "id-9"]
    assert ax.get_ylabel() == "id" and len(ax.get_xticklabels()) == 40 and "40 of 50 columns" in ax.get_title()
    colourbar_axes = [a for a in figures[0].axes if a is not ax]
    assert "contribution to the row's score" in colourbar_axes[0].get_ylabel()
    assert ax.images[0].get_clim()[1] == pytest.approx(heat["values"].max())
    heat["values"][0, -1] = 1000.0  # one extreme cell: the colour scale ends at the 98th percentile
    ax = figure_axes(lambda figure, ax: heat_panel(figure, ax, heat))
    shown = np.sort(np.argsort(-heat["values"].mean(axis=0))[:40])
    assert ax.images[0].get_clim()[1] == pytest.approx(np.percentile(heat["values"][:, shown], 98))


def test_explain_names_heat_map_rows_by_their_ids(blobs):
    train, test = blobs
    ae = pyod_ae_ext.make_detector("ae", epochs=3, random_state=0).fit(train)
    ids = pd.DataFrame({"site": [f"s{i}" for i in range(60)], "n": range(100, 160)})
    heat = explain(ae, test, list("abcde"), top=3, ids=ids)["_heat"]
    order = np.argsort(-ae.decision_function(test), kind="stable")[:3]
    assert heat["rows"] == [f"s{i}, {100 + i}" for i in order] and heat["row_label"] == "site, n"
    assert explain(ae, test, list("abcde"), top=3)["_heat"]["rows"] == [str(i) for i in order]


def test_missing_matplotlib_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(AdscoreError, match=r'pip install "pyod-ae-ext\[plot\]"'):
        plot_report(tmp_path / "x.png", np.arange(5.0), 1.0)
    assert not (tmp_path / "x.png").exists()


# ---- the commands -----------------------------------------------------------------


@pytest.fixture
def data_csv(tmp_path):
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(rng.normal(size=(150, 4)), columns=["a", "b", "c", "d"])
    frame.insert(0, "id", [f"r{i}" for i in range(150)])
    frame["label"] = 0
    frame.loc[:7, "c"] += 7
    frame.loc[:7, "label"] = 1
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return path


def run(runner, *args, **kwargs):
    return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False, **kwargs)


ENSEMBLE_ARGS = ("-d", "toll", "-d", "iforest", "-d", "ecod", "-p", "toll.epochs=5", "-p", "toll.hidden_dims=[8]",
                 "-p", "isolation-forest.n_estimators=20", "--seed", 0, "--exclude", "id,label")


@pytest.fixture
def toll_model(runner, data_csv, tmp_path):
    model = tmp_path / "toll.adscore"
    result = run(runner, "fit", "-d", "toll", "-p", "epochs=20", "-p", "hidden_dims=[8]", "-p", "latent_dim=2",
                 "--seed", 0, "--exclude", "id,label", data_csv, "-o", model)
    assert result.exit_code == 0, result.output
    return model


def test_fit_an_ensemble_from_the_cli_and_score_it(runner, data_csv, tmp_path):
    model = tmp_path / "ens.adscore"
    result = run(runner, "fit", *ENSEMBLE_ARGS, "--combine", "aom", "--normalize", "rank", data_csv, "-o", model)
    assert result.exit_code == 0, result.output
    meta = json.loads(run(runner, "info", "--json", model).stdout)
    assert meta["detector"] == "ensemble"
    assert meta["params"]["detectors"] == {"__tuple__": ["toll", "iforest", "ecod"]}
    assert meta["params"]["detector_params"] == {"toll": {"epochs": 5, "hidden_dims": [8]},
                                                 "iforest": {"n_estimators": 20}}
    assert meta["params"]["combine"] == "aom" and meta["params"]["normalize"] == "rank"
    scored = run(runner, "score", "-m", model, "--id-column", "id", data_csv)
    scores = pd.read_csv(pd.io.common.StringIO(scored.stdout))
    loaded = pyod_ae_ext.load(model)
    frame = pd.read_csv(data_csv)
    np.testing.assert_allclose(scores["score"], loaded.decision_function(frame[["a", "b", "c", "d"]].to_numpy()),
                               rtol=1e-9)
    assert roc_auc_score(frame["label"], scores["score"]) > 0.9


def test_weighted_ensemble_and_ensemble_params(runner, data_csv, tmp_path):
    model = tmp_path / "w.adscore"
    result = run(runner, "fit", *ENSEMBLE_ARGS, "--combine", "weighted", "--weights", "2,1,1",
                 "-p", "ensemble.n_jobs=1", data_csv, "-o", model)
    assert result.exit_code == 0, result.output
    ens = pyod_ae_ext.load(model)
    assert ens.weights == [2.0, 1.0, 1.0] and ens.combine == "weighted"


@pytest.mark.parametrize("args,fragment", [
    (("-d", "toll", "-d", "iforest", "--combine", "mean", "-p", "epochs=3"), "prefix each --param"),
    (("-d", "toll", "-d", "iforest", "--combine", "mean", "-p", "knn.n_neighbors=3"), "not one of the detectors"),
    (("-d", "toll", "-d", "iforest", "--combine", "mean", "-p", "toll.lamda=3"), "'lamda' for detector 'toll'"),
    (("-d", "toll", "-d", "iforest"), "--combine"),
    (("-d", "toll", "--combine", "mean"), "two or more --detector"),
    (("-d", "toll", "-d", "iforest", "--combine", "weighted"), "needs weights"),
    (("-d", "toll", "-d", "iforest", "--combine", "weighted", "--weights", "1,x"), "comma-separated"),
    (("-d", "toll", "-d", "iforest", "--combine", "mean", "--weights", "1,2"), "only with combine='weighted'"),
    (("-d", "toll", "-d", "toll", "--combine", "mean"), "more than once"),
    (("-d", "iforest", "-d", "ecod", "--combine", "mean", "--device", "cpu"), "--device"),
])
def test_bad_ensemble_options(runner, data_csv, tmp_path, args, fragment):
    output = tmp_path / "never.adscore"
    result = runner.invoke(cli, ["fit", *args, "--exclude", "id,label", str(data_csv), "-o", str(output)])
    assert_clean_error(result, fragment)
    assert not output.exists()


def test_explain_text_json_and_plot(runner, data_csv, toll_model, tmp_path):
    result = run(runner, "explain", "-m", toll_model, "--id-column", "id", "--top", 4, "--features", 2, data_csv)
    assert result.exit_code == 0, result.output
    assert "id=r" in result.stdout and "per-feature summary over the flagged rows" in result.stdout
    payload = json.loads(run(runner, "explain", "-m", toll_model, "--top", 4, "--json", data_csv).stdout)
    assert len(payload["rows"]) == 4 and payload["detector"] == "toll"
    assert payload["summary"][0]["feature"] == "c"  # the shifted signal carries the errors
    assert all(row["row"] < 8 for row in payload["rows"])
    plot = tmp_path / "why.png"
    result = run(runner, "explain", "-m", toll_model, "--label-column", "label", "--plot", plot, data_csv)
    assert result.exit_code == 0, result.output
    assert_png(plot)


def test_explain_an_ensemble_and_refuse_a_forest(runner, data_csv, tmp_path):
    model = tmp_path / "ens.adscore"
    assert run(runner, "fit", *ENSEMBLE_ARGS, "--combine", "mean", data_csv, "-o", model).exit_code == 0
    result = run(runner, "explain", "-m", model, "--top", 3, data_csv)
    assert result.exit_code == 0 and "ensemble member(s) toll" in result.stdout
    forest = tmp_path / "forest.adscore"
    assert run(runner, "fit", "-d", "iforest", "-p", "n_estimators=10", "--exclude", "id,label", data_csv,
               "-o", forest).exit_code == 0
    assert_clean_error(runner.invoke(cli, ["explain", "-m", str(forest), str(data_csv)]),
                       "does not attribute its score to features")


def test_threshold_then_evaluate(runner, data_csv, toll_model, tmp_path):
    before = pyod_ae_ext.load(toll_model).threshold_
    result = run(runner, "threshold", "-m", toll_model, "--label-column", "label", "--cost-false-alarm", 1,
                 "--cost-missed", 5, "--in-place", data_csv)
    assert result.exit_code == 0, result.output
    assert "optimised cost (1 per false alarm + 5 per missed anomaly)" in result.stdout
    model = pyod_ae_ext.load(toll_model)
    frame = pd.read_csv(data_csv)
    scores = model.decision_function(frame[["a", "b", "c", "d"]].to_numpy())
    choice = best_threshold(scores, frame["label"].to_numpy(), "cost", 1, 5)
    assert model.threshold_ == choice.threshold != before
    assert f"{choice.threshold:.6g}" in result.stdout
    np.testing.assert_array_equal(model.labels_, (model.decision_scores_ > model.threshold_).astype(int))
    metrics = json.loads(run(runner, "evaluate", "-m", toll_model, "--label-column", "label", "--json",
                             data_csv).stdout)
    assert metrics["threshold"] == choice.threshold
    assert metrics["f1"] == pytest.approx(choice.f1)
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(frame["label"], scores))
    text = run(runner, "evaluate", "-m", toll_model, "--label-column", "label", data_csv).stdout
    assert "ROC-AUC" in text and "average precision" in text


def test_threshold_f1_to_another_file(runner, data_csv, toll_model, tmp_path):
    original = toll_model.read_bytes()
    out = tmp_path / "tuned.adscore"
    result = run(runner, "threshold", "-m", toll_model, "--label-column", "label", "--json", "-o", out, data_csv)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["chosen"]["objective"] == "f1" and payload["chosen"]["f1"] >= payload["previous"]["f1"]
    assert toll_model.read_bytes() == original
    assert pyod_ae_ext.load(out).threshold_ == payload["chosen"]["threshold"]


def test_evaluate_plot(runner, data_csv, toll_model, tmp_path):
    plot = tmp_path / "report.png"
    result = run(runner, "evaluate", "-m", toll_model, "--label-column", "label", "--plot", plot, data_csv)
    assert result.exit_code == 0, result.output
    assert_png(plot)


def test_analysis_commands_bad_input(runner, data_csv, toll_model, tmp_path, monkeypatch):
    original = toll_model.read_bytes()
    frame = pd.read_csv(data_csv)
    unlabelled = tmp_path / "zeros.csv"
    frame.assign(label=0).to_csv(unlabelled, index=False)
    bad_labels = tmp_path / "bad.csv"
    frame.assign(label=frame["label"] * 2).to_csv(bad_labels, index=False)
    out = tmp_path / "never.adscore"

    def threshold(*args):
        return runner.invoke(cli, ["threshold", "-m", str(toll_model), *map(str, args), "-o", str(out)])

    assert_clean_error(threshold("--label-column", "label", unlabelled), "no anomaly")
    assert_clean_error(threshold("--label-column", "label", bad_labels), "must hold 0 (normal) and 1")
    assert_clean_error(threshold("--label-column", "y", data_csv), "--label-column", "y")
    assert_clean_error(threshold("--label-column", "label", "--objective", "f1", "--cost-missed", 3, data_csv),
                       "--objective cost")
    assert_clean_error(threshold("--label-column", "label", "--cost-missed", -3, data_csv), "non-negative")
    assert_clean_error(threshold("--label-column", "label", "--cost-missed", 0, "--cost-false-alarm", 0, data_csv),
                       "both be 0")
    assert not out.exists() and toll_model.read_bytes() == original
    assert_clean_error(runner.invoke(cli, ["evaluate", "-m", str(toll_model), "--label-column", "label",
                                           str(unlabelled)]), "no anomaly")
    plot = tmp_path / "missing-dir" / "p.png"
    assert_clean_error(runner.invoke(cli, ["evaluate", "-m", str(toll_model), "--label-column", "label",
                                           "--plot", str(plot), str(data_csv)]), "does not exist")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    plot = tmp_path / "p.png"
    for command in (["evaluate", "--label-column", "label"], ["explain"]):
        result = runner.invoke(cli, [command[0], "-m", str(toll_model), *command[1:], "--plot", str(plot),
                                     str(data_csv)])
        assert_clean_error(result, 'pip install "pyod-ae-ext[plot]"')
        assert not plot.exists()
