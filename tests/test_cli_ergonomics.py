"""The command line of issue 13: models that remember their columns, output names that
never collide, one grammar and factory, discoverable parameters, config files, progress
and a stable JSON schema (click's CliRunner)."""
import io
import json

import numpy as np
import pandas as pd
import pytest

from helpers import assert_clean_error

import pyod_ae_ext
from pyod_ae_ext import persistence
from pyod_ae_ext.cli import cli
from pyod_ae_ext.errors import ModelFileError


@pytest.fixture
def data_csv(tmp_path):
    """80 rows: an id, a free-text note, four features and a 0/1 label (5 shifted anomalies)."""
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(rng.normal(size=(80, 4)), columns=["a", "b", "c", "d"])
    frame.insert(0, "id", [f"r{i}" for i in range(80)])
    frame.insert(1, "note", ["x"] * 80)
    frame["label"] = 0
    frame.loc[:4, ["a", "b"]] += 8
    frame.loc[:4, "label"] = 1
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return path


def run(runner, *args, **kwargs):
    return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False, **kwargs)


def fit_remembering(runner, data_csv, tmp_path, *extra, detector="toll"):
    model = tmp_path / "model.adscore"
    params = ["-p", "epochs=3"] if detector == "toll" else []
    result = run(runner, "fit", "-d", detector, *params, "--seed", 0, "--id-column", "id", "--exclude", "note",
                 "--label-column", "label", *extra, data_csv, "-o", model)
    assert result.exit_code == 0, result.output
    return model


def frame_of(result):
    return pd.read_csv(io.StringIO(result.stdout))


# --------------------------------------------------------------------------
# models remember how they were fitted


def test_fit_remembers_columns_and_score_reuses_them(runner, data_csv, tmp_path):
    model = fit_remembering(runner, data_csv, tmp_path)
    fit_info = pyod_ae_ext.load(model).fit_info_
    assert fit_info["id_columns"] == ["id"] and fit_info["exclude"] == ["note"]
    assert fit_info["label_column"] == "label" and fit_info["n_rows"] == 80
    assert fit_info["threshold_source"] == {"method": "contamination", "contamination": 0.1}
    result = run(runner, "score", "-m", model, data_csv)
    assert result.exit_code == 0, result.output
    assert frame_of(result)["id"].tolist()[:2] == ["r0", "r1"]
    assert "ignoring" not in result.stderr


def test_flags_override_what_the_model_remembers(runner, data_csv, tmp_path):
    model = fit_remembering(runner, data_csv, tmp_path)
    result = run(runner, "score", "-m", model, "--id-column", "note", data_csv)
    assert "note" in frame_of(result).columns and "id" not in frame_of(result).columns
    assert "ignoring 1 column(s) the model does not use: id" not in result.stderr  # id is remembered


def test_unknown_extra_columns_are_still_noted(runner, data_csv, tmp_path):
    model = fit_remembering(runner, data_csv, tmp_path)
    extended = pd.read_csv(data_csv).assign(extra=1.0)
    extended.to_csv(tmp_path / "more.csv", index=False)
    result = run(runner, "score", "-m", model, tmp_path / "more.csv")
    assert "ignoring 1 column(s) the model does not use: extra" in result.stderr


def test_score_without_the_id_column_just_leaves_it_out(runner, data_csv, tmp_path):
    model = fit_remembering(runner, data_csv, tmp_path)
    pd.read_csv(data_csv).drop(columns=["id"]).to_csv(tmp_path / "noid.csv", index=False)
    result = run(runner, "score", "-m", model, tmp_path / "noid.csv")
    assert result.exit_code == 0 and "id" not in frame_of(result).columns


def test_evaluate_threshold_explain_reuse_the_label_and_ids(runner, data_csv, tmp_path):
    model = fit_remembering(runner, data_csv, tmp_path)
    metrics = json.loads(run(runner, "evaluate", "-m", model, "--json", data_csv).stdout)
    assert metrics["n_anomalies"] == 5 and metrics["roc_auc"] > 0.9
    tuned = tmp_path / "tuned.adscore"
    assert run(runner, "threshold", "-m", model, data_csv, "-o", tuned).exit_code == 0
    assert pyod_ae_ext.load(tuned).fit_info_["threshold_source"]["method"] == "f1"
    explained = json.loads(run(runner, "explain", "-m", model, "--top", 2, "--json", data_csv).stdout)
    assert all("id" in row["id"] for row in explained["rows"])


def test_label_column_is_asked_for_when_the_model_has_none(runner, data_csv, tmp_path):
    model = tmp_path / "m.adscore"
    run(runner, "fit", "-d", "ecod", "--exclude", "id,note,label", data_csv, "-o", model)
    assert_clean_error(runner.invoke(cli, ["evaluate", "-m", str(model), str(data_csv)]), "--label-column")


def test_scoring_columns_options_must_match_the_model(runner, data_csv, tmp_path):
    model = fit_remembering(runner, data_csv, tmp_path)
    assert_clean_error(runner.invoke(cli, ["score", "-m", str(model), "--columns", "a,b", str(data_csv)]),
                       "--columns must name the model's features")
    assert_clean_error(runner.invoke(cli, ["score", "-m", str(model), "--exclude", "a", str(data_csv)]),
                       "--exclude names feature(s) the model was fitted on: a")
    same = run(runner, "score", "-m", model, "--columns", "d,c,b,a", "--exclude", "note", data_csv)
    assert same.exit_code == 0


def test_info_shows_how_the_model_was_fitted(runner, data_csv, tmp_path):
    model = fit_remembering(runner, data_csv, tmp_path)
    run(runner, "threshold", "-m", model, "--cost-missed", 10, "--in-place", data_csv)
    text = run(runner, "info", model).stdout
    for fragment in ("id columns: id", "excluded:   note", "label:      label", "80 training rows on 20",
                     "after 3 epochs", "min cost on labelled data.csv, 80 rows", "10 per missed anomaly",
                     "sha256:"):
        assert fragment in text, text
    meta = json.loads(run(runner, "info", "--json", model).stdout)
    assert meta["training"]["n_rows"] == 80 and meta["training"]["loss"][""]["epochs"] == 3


def test_info_says_what_auto_parameters_resolved_to(runner, data_csv, tmp_path):
    model = tmp_path / "ae.adscore"
    run(runner, "fit", "-d", "ae", "-p", "epochs=2", "--exclude", "id,note,label", data_csv, "-o", model)
    text = run(runner, "info", model).stdout
    assert "hidden_dims = 'auto' -> (64, 32)" in text and "n_members = 'auto' -> 10" in text, text
    assert "member_subsample = 'auto' -> 512" in text and "device = 'auto'\n" in text


def test_info_of_an_ensemble_shows_each_members_loss(runner, data_csv, tmp_path):
    model = tmp_path / "ens.adscore"
    result = run(runner, "fit", "-d", "toll", "-d", "ecod", "--combine", "mean", "-p", "toll.epochs=2",
                 "--id-column", "id", "--exclude", "note,label", data_csv, "-o", model)
    assert result.exit_code == 0, result.output
    text = run(runner, "info", model).stdout
    assert "loss toll:" in text and "after 2 epochs" in text and "id columns: id" in text


@pytest.mark.parametrize("fit_info, problem", [
    ("no", "must be an object"),
    ({"id_columns": "id"}, "'id_columns' must be a list of column names"),
    ({"n_rows": -1}, "'n_rows' must be a non-negative integer"),
    ({"threshold_source": {"method": "guess"}}, "'threshold_source'"),
    ({"threshold_source": {"method": "f1", "rows": "many"}}, "'threshold_source'"),
    ({"surprise": 1}, "unknown entries 'surprise'"),
])
def test_fit_info_is_validated_on_load(runner, data_csv, tmp_path, fit_info, problem):
    model = fit_remembering(runner, data_csv, tmp_path, detector="ecod")
    meta, tensors = persistence.read_model_file(model)
    persistence.write_model_file(model, {**meta, "fit_info": fit_info}, tensors)
    with pytest.raises(ModelFileError, match="fit_info"):
        pyod_ae_ext.load(model)
    assert_clean_error(runner.invoke(cli, ["info", str(model)]), "fit_info", problem)


# --------------------------------------------------------------------------
# output columns never collide


def test_output_columns_have_distinct_names(runner, data_csv, tmp_path):
    model = fit_remembering(runner, data_csv, tmp_path)
    result = run(runner, "score", "-m", model, "--id-column", "id,label", data_csv)
    scores = frame_of(result)
    assert list(scores.columns) == ["id", "label", "anomaly_score", "is_anomaly", "anomaly_probability"]
    assert scores["label"].tolist() == pd.read_csv(data_csv)["label"].tolist()  # the true labels, untouched


def test_output_names_are_configurable_and_collisions_refused(runner, data_csv, tmp_path):
    model = fit_remembering(runner, data_csv, tmp_path)
    out = tmp_path / "s.csv"
    renamed = run(runner, "score", "-m", model, "--score-name", "s", "--flag-name", "f", "--probability-name", "p",
                  data_csv, "-o", out)
    assert renamed.exit_code == 0 and list(pd.read_csv(out).columns) == ["id", "s", "f", "p"]
    out.unlink()
    clash = runner.invoke(cli, ["score", "-m", str(model), "--id-column", "id,label", "--flag-name", "label",
                                str(data_csv), "-o", str(out)])
    assert_clean_error(clash, "output column 'label' would overwrite the id column")
    assert not out.exists()
    same = runner.invoke(cli, ["score", "-m", str(model), "--score-name", "x", "--flag-name", "x", str(data_csv)])
    assert_clean_error(same, "output column names must differ")


def test_remembered_id_column_clash_is_refused_too(runner, data_csv, tmp_path):
    model = fit_remembering(runner, data_csv, tmp_path)
    assert_clean_error(runner.invoke(cli, ["score", "-m", str(model), "--score-name", "id", str(data_csv)]),
                       "output column 'id' would overwrite the id column")


@pytest.mark.parametrize("method", ["linear", "unify"])
def test_probability_is_pyods_predict_proba(runner, data_csv, tmp_path, method):
    model = fit_remembering(runner, data_csv, tmp_path, detector="ecod")
    scores = frame_of(run(runner, "score", "-m", model, "--probability", method, data_csv))
    detector = pyod_ae_ext.load(model)
    X = pd.read_csv(data_csv)[["a", "b", "c", "d"]].to_numpy()
    np.testing.assert_allclose(scores["anomaly_probability"], detector.predict_proba(X, method=method)[:, 1],
                               rtol=1e-12, atol=1e-15)


def test_probability_help_says_what_it_means(runner):
    text = run(runner, "score", "--help").stdout
    assert "linear" in text and "unify" in text and "predict_proba" in text


# --------------------------------------------------------------------------
# same options, one grammar, one factory

DATA_COMMANDS = ["fit", "score", "explain", "evaluate", "threshold", "benchmark", "report"]


@pytest.mark.parametrize("command", DATA_COMMANDS)
def test_every_data_command_has_the_same_column_options(runner, command):
    params = {p.name: p for p in cli.get_command(None, command).params}
    for name in ("columns", "exclude", "id_columns"):
        assert name in params, f"{command} lacks --{name}"
    assert params["id_columns"].opts == ["--id-column"]
    assert params["exclude"].help == cli.get_command(None, "fit").params[
        [p.name for p in cli.get_command(None, "fit").params].index("exclude")].help


def test_fit_accepts_a_pyod_class_path_saved_under_its_registered_name(runner, data_csv, tmp_path):
    model = tmp_path / "knn.adscore"
    result = run(runner, "fit", "-d", "pyod.models.knn.KNN", "-p", "n_neighbors=3", "--exclude", "id,note,label",
                 data_csv, "-o", model)
    assert result.exit_code == 0, result.output
    loaded = pyod_ae_ext.load(model)
    assert type(loaded).__name__ == "KNN" and loaded.n_neighbors == 3
    assert json.loads(run(runner, "info", "--json", model).stdout)["detector"] == "knn"


def test_fit_refuses_an_unregistered_pyod_class_before_fitting(runner, data_csv, tmp_path):
    result = runner.invoke(cli, ["fit", "-d", "pyod.models.abod:ABOD", "--exclude", "id,note,label",
                                 str(data_csv), "-o", str(tmp_path / "m.adscore")])
    assert_clean_error(result, "not registered with adscore", "benchmark")
    assert "fitting" not in result.stderr


def test_verbose_works_for_detectors_without_a_verbose_parameter(runner, data_csv, tmp_path):
    result = run(runner, "fit", "-d", "ecod", "-v", "--exclude", "id,note,label", data_csv,
                 "-o", tmp_path / "e.adscore")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("args, fragments", [
    (["fit", "-d", "toll", "-p", "lamda=2"], ["unknown parameter(s) 'lamda'", "did you mean 'lam'?"]),
    (["fit", "-d", "tol"], ["unknown detector 'tol'", "Did you mean 'toll'?"]),
    (["fit", "-d", "toll", "-d", "iforest", "--combine", "mean", "-p", "n_estimator=3"],
     ["none of the detectors has a parameter 'n_estimator'", "Did you mean 'n_estimators'?"]),
    (["fit", "-d", "toll", "-d", "iforest", "--combine", "mean", "-p", "tol.lam=3"],
     ["'tol' is not one of the --detector values", "Did you mean 'toll'?"]),
    (["benchmark", "-y", "label", "-d", "toll", "-p", "lamda=2"], ["unknown parameter(s) 'lamda'", "'lam'"]),
    (["fit", "-d", "pyod.models.knn:KNNN"], ["has no class 'KNNN'", "Did you mean 'KNN'?"]),
])
def test_unknown_names_suggest_the_nearest(runner, data_csv, tmp_path, args, fragments):
    result = runner.invoke(cli, [*args, "--exclude", "id,note", str(data_csv), "-o", str(tmp_path / "m.adscore")]
                           if args[0] == "fit" else [*args, "--exclude", "id,note", str(data_csv)])
    assert_clean_error(result, *fragments)


def test_unprefixed_params_go_to_every_member_that_has_them(runner, data_csv, tmp_path):
    model = tmp_path / "ens.adscore"
    result = run(runner, "fit", "-d", "toll", "-d", "ae", "-d", "iforest", "--combine", "mean", "-p", "epochs=2",
                 "-p", "ae.epochs=3", "-p", "n_estimators=7", "--exclude", "id,note,label", data_csv, "-o", model)
    assert result.exit_code == 0, result.output
    assert pyod_ae_ext.load(model).detector_params == {"toll": {"epochs": 2}, "ae": {"epochs": 3},
                                                       "iforest": {"n_estimators": 7}}


def test_one_grammar_parser():
    from pyod_ae_ext.params import Assignment, parse_assignment, to_assignments

    assert parse_assignment("toll.lam=0.5") == Assignment("toll", "lam", 0.5, "toll.lam=0.5")
    assert parse_assignment("hidden_dims=[8, 4]").value == [8, 4]
    assert parse_assignment("pyod.models.knn.KNN.n_neighbors=3").target == "pyod.models.knn.KNN"
    assert parse_assignment("device=cpu").value == "cpu"
    assert to_assignments({"epochs": 3, "toll": {"lam": 0.5, "norm": "l2"}}) == [
        "epochs=3", 'toll.lam=0.5', 'toll.norm="l2"']
    for bad in ("lam", "=3", "toll.=3", "a b=1"):
        with pytest.raises(pyod_ae_ext.AdscoreError, match="KEY=VALUE"):
            parse_assignment(bad)


def test_the_factory_gives_one_message_in_python_fit_and_ensembles():
    from pyod_ae_ext.ensemble import Ensemble
    from pyod_ae_ext.registry import build_detector

    with pytest.raises(pyod_ae_ext.AdscoreError, match="did you mean 'lam'"):
        build_detector("toll", {"lamda": 1})
    with pytest.raises(pyod_ae_ext.AdscoreError, match="did you mean 'lam'"):
        Ensemble(("toll", "ecod"), {"toll": {"lamda": 1}}).fit(np.zeros((10, 2)))
    with pytest.raises(pyod_ae_ext.AdscoreError, match="did you mean 'lam'"):
        pyod_ae_ext.make_detector("toll", lamda=1)


def test_grammar_and_column_modules_do_not_import_torch_or_pandas():
    import subprocess
    import sys

    code = ("import sys, pyod_ae_ext.params, pyod_ae_ext.columns, pyod_ae_ext.registry; "
            "print(sorted(m for m in ('torch', 'pandas', 'pyod') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "[]", result.stderr


# --------------------------------------------------------------------------
# discoverable


def test_params_lists_defaults_types_and_meanings(runner):
    text = run(runner, "params", "toll").stdout
    lines = {line.split()[0]: line for line in text.splitlines()[3:]}
    assert "Weight of the latent-norm term" in lines["lam"] and "float" in lines["lam"]
    assert "'auto'" in lines["hidden_dims"] and "Widths of the encoder's hidden layers" in lines["hidden_dims"]
    header = text.splitlines()[2]
    assert header.index("meaning") == lines["lam"].index("Weight")  # aligned columns


@pytest.mark.parametrize("name, key, meaning", [
    ("knn", "n_neighbors", "Number of neighbors"),
    ("pyod.models.lof.LOF", "n_neighbors", "Number of neighbors"),
    ("ensemble", "combine", "Combination of the normalised scores"),
    ("rdae", "lam", ""),
])
def test_params_json_for_ours_and_pyods(runner, name, key, meaning):
    payload = json.loads(run(runner, "params", name, "--json").stdout)
    assert payload["schema_version"] == 1
    entry = next(p for p in payload["parameters"] if p["name"] == key)
    assert meaning in entry["description"] and entry["type"] and "default" in entry


def test_static_reading_of_parameters_matches_the_real_signature():
    """`params` reads the source without importing; it must agree with the imported class for every detector."""
    import inspect

    from pyod_ae_ext.paramdocs import describe_detector
    from pyod_ae_ext.registry import get_registry

    for spec in get_registry().detectors.values():
        static = {p.name: p.default for p in describe_detector(spec.path)}
        real = {name: p.default for name, p in inspect.signature(spec.cls).parameters.items()
                if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        assert list(static) == list(real), spec.name
        assert all(static[k] == v or repr(static[k]) == repr(v) for k, v in real.items()), spec.name


def test_params_of_a_class_registered_as_an_object_uses_its_docstring():
    from pyod.models.base import BaseDetector

    from pyod_ae_ext.paramdocs import describe_detector

    class Plugged(BaseDetector):
        """A plugin's detector.

        Parameters
        ----------
        width : int, default 3
            How wide the window is. More text.
        """

        def __init__(self, width=3, contamination=0.1):
            super().__init__(contamination=contamination)
            self.width = width

    width = describe_detector(Plugged)[0]
    assert (width.name, width.default, width.type, width.description) == ("width", 3, "int", "How wide the window is.")


def test_params_errors_are_one_line(runner):
    assert_clean_error(runner.invoke(cli, ["params", "tol"]), "unknown detector 'tol'", "Did you mean 'toll'?")
    assert_clean_error(runner.invoke(cli, ["params", "pyod.models.knn:KNNN"]), "has no class 'KNNN'")
    assert_clean_error(runner.invoke(cli, ["params", "os:system"]), "not a PyOD class path")


def test_version_flag(runner):
    for flag in ("-V", "--version"):
        assert run(runner, flag).stdout.strip() == f"adscore, version {pyod_ae_ext.__version__}"


@pytest.mark.parametrize("args, incomplete, expected", [
    (["fit", "-d"], "to", {"toll"}),
    (["benchmark", "--detector"], "rdae", {"rdae-l1", "rdae-l21", "rdae", "rdae_l1", "rdae_l21"}),
    (["params"], "ec", {"ecod"}),
])
def test_shell_completion_completes_detector_names(args, incomplete, expected):
    from click.shell_completion import ShellComplete

    completions = ShellComplete(cli, {}, "adscore", "_ADSCORE_COMPLETE").get_completions(args, incomplete)
    assert {item.value for item in completions} == expected


def test_plugins_table_is_aligned(runner):
    lines = [line for line in run(runner, "plugins").stdout.splitlines() if line.startswith("  ")]
    starts = {line.index("PyOD") for line in lines if "PyOD " in line}
    assert len(starts) == 1 and len(lines) >= 20
    listed = json.loads(run(runner, "plugins", "--json").stdout)
    assert listed["schema_version"] == 1 and {"toll", "ecod"} <= {d["detector"] for d in listed["detectors"]}


def test_explain_prints_an_aligned_table(runner, data_csv, tmp_path):
    model = fit_remembering(runner, data_csv, tmp_path)
    lines = run(runner, "explain", "-m", model, "--top", 3, data_csv).stdout.splitlines()
    header = next(line for line in lines if "top features" in line)
    rows = lines[lines.index(header) + 1:lines.index(header) + 4]
    assert all(row[header.index("score")] != " " for row in rows)
    assert {row[header.index("flagged"):].split()[0] for row in rows} <= {"yes", "no"}


# --------------------------------------------------------------------------
# fast start


@pytest.mark.parametrize("args", [["--help"], ["plugins"], ["params", "toll"], ["params", "knn"], ["fit", "--help"]])
def test_listing_commands_import_no_torch_pyod_or_pandas(args):
    import subprocess
    import sys

    code = ("import sys\nfrom pyod_ae_ext.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
            "    assert not e.code, e.code\nheavy = sorted(m for m in ('torch', 'pyod', 'pandas', 'sklearn') "
            "if m in sys.modules)\nsys.stderr.write(f'HEAVY={heavy}')\n")
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert "HEAVY=[]" in result.stderr, result.stderr[-2000:]


# --------------------------------------------------------------------------
# config files through click's default_map


def test_config_sets_any_fit_option_with_ensemble_members(runner, data_csv, tmp_path):
    config = tmp_path / "ens.toml"
    config.write_text('detector = ["toll", "iforest"]\ncombine = "max"\ncontamination = 0.05\nid-column = "id"\n'
                      'exclude = ["note"]\nlabel_column = "label"\nseed = 3\n'
                      '[params]\nepochs = 2\n[params.iforest]\nn_estimators = 11\n[params.ensemble]\nn_jobs = 1\n')
    model = tmp_path / "ens.adscore"
    result = run(runner, "fit", "--config", config, data_csv, "-o", model)
    assert result.exit_code == 0, result.output
    ensemble = pyod_ae_ext.load(model)
    assert ensemble.combine == "max" and ensemble.contamination == 0.05 and ensemble.random_state == 3
    assert ensemble.detector_params == {"toll": {"epochs": 2}, "iforest": {"n_estimators": 11}}
    assert ensemble.fit_info_["id_columns"] == ["id"] and ensemble.fit_info_["label_column"] == "label"


def test_flags_win_over_the_config(runner, data_csv, tmp_path):
    config = tmp_path / "toll.toml"
    config.write_text('detector = "toll"\ncontamination = 0.2\nexclude = "id,note,label"\n'
                      '[params]\nepochs = 2\nlam = 3\n')
    model = tmp_path / "m.adscore"
    result = run(runner, "fit", "--config", config, "--contamination", 0.05, "-p", "lam=0.5", data_csv, "-o", model)
    assert result.exit_code == 0, result.output
    toll = pyod_ae_ext.load(model)
    assert (toll.contamination, toll.lam, toll.epochs) == (0.05, 0.5, 2)


def test_config_for_a_scoring_command(runner, data_csv, tmp_path):
    model = fit_remembering(runner, data_csv, tmp_path)
    config = tmp_path / "score.toml"
    config.write_text(f'model = "{model}"\ntop = 3\nscore-name = "s"\nprobability = "unify"\n')
    scores = frame_of(run(runner, "score", "--config", config, data_csv))
    assert len(scores) == 3 and list(scores.columns) == ["id", "s", "is_anomaly", "anomaly_probability"]


@pytest.mark.parametrize("text, fragments", [
    ('detector = "toll"\nlabel-colum = "label"\n', ["unknown key(s) label-colum", "did you mean 'label-column'"]),
    ('detector = "toll"\ncombine = "sum"\n', ["'sum' is not one of"]),
    ('detector = "toll"\nparams = 3\n', ["`params` must be a table"]),
    ('detector = "toll"\n[params]\nlamda = 3\n', ["unknown parameter(s) 'lamda'", "did you mean 'lam'"]),
])
def test_bad_config_is_one_error_line(runner, data_csv, tmp_path, text, fragments):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    result = runner.invoke(cli, ["fit", "--config", str(config), "--exclude", "id,note,label", str(data_csv), "-o",
                                 str(tmp_path / "m.adscore")])
    assert result.exit_code == 2, result.output
    assert all(fragment in result.stderr for fragment in fragments), result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "m.adscore").exists()


# --------------------------------------------------------------------------
# live progress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_fit_draws_epoch_and_member_bars_on_a_terminal():
    from pyod_ae_ext.cli._progress import watched_fit
    from pyod_ae_ext.ensemble import Ensemble

    X = np.random.RandomState(0).normal(size=(60, 3))
    terminal = _Terminal()
    with watched_fit(quiet=False, verbose=False, members=["toll", "ecod"], stream=terminal):
        Ensemble(("toll", "ecod"), {"toll": {"epochs": 4}}, random_state=0).fit(X)
    text = terminal.getvalue()
    assert "toll:   0%" in text and "/4 epochs" in text  # the member's bar, cleared when it is done
    assert "members: 100%" in text and "2/2 fitted" in text
    single = _Terminal()
    with watched_fit(quiet=False, verbose=False, stream=single):
        pyod_ae_ext.make_detector("toll", epochs=4).fit(X)
    assert "toll: 100%" in single.getvalue() and "4/4 epochs" in single.getvalue() and "loss " in single.getvalue()
    quiet = _Terminal()
    with watched_fit(quiet=True, verbose=False, stream=quiet):
        pyod_ae_ext.make_detector("toll", epochs=2).fit(X)
    assert quiet.getvalue() == ""


def test_fit_progress_is_quiet_in_pipes_and_verbose_adds_epoch_losses(runner, data_csv, tmp_path):
    args = ["fit", "-d", "toll", "-p", "epochs=3", "--exclude", "id,note,label", data_csv, "-o", tmp_path / "m.adscore"]
    plain = run(runner, *args)
    assert "%|" not in plain.stderr and "epoch 1/3" not in plain.stderr
    verbose = run(runner, *args, "-v")
    assert [line.split("  ")[0] for line in verbose.stderr.splitlines() if " epoch " in line] == [
        "toll epoch 1/3", "toll epoch 2/3", "toll epoch 3/3"]
    assert run(runner, *args, "-q", "-v").stderr == ""
    assert pyod_ae_ext.load(tmp_path / "m.adscore").verbose is False  # -v is the command's, not the model's


def test_benchmark_lines_are_aligned_and_quiet_is_quiet(runner, data_csv):
    args = ["benchmark", "-y", "label", "--exclude", "id,note", "-d", "ecod", "-d", "pyod.models.knn.KNN",
            "--seeds", 2, data_csv]
    result = run(runner, *args)
    lines = [line for line in result.stderr.splitlines() if "ROC-AUC" in line]
    assert len(lines) == 4 and len({line.index("ROC-AUC") for line in lines}) == 1
    assert run(runner, *args, "--quiet").stderr == ""


def test_score_quiet_prints_no_notes(runner, data_csv, tmp_path):
    model = fit_remembering(runner, data_csv, tmp_path)
    pd.read_csv(data_csv).assign(extra=1).to_csv(tmp_path / "wider.csv", index=False)
    assert "ignoring" in run(runner, "score", "-m", model, tmp_path / "wider.csv").stderr
    assert run(runner, "score", "-m", model, "-q", tmp_path / "wider.csv").stderr == ""


# --------------------------------------------------------------------------
# stable JSON


def test_every_json_output_has_the_schema_version_and_shared_keys(runner, data_csv, tmp_path):
    model = fit_remembering(runner, data_csv, tmp_path)
    outputs = {
        "info": ["info", "--json", model],
        "plugins": ["plugins", "--json"],
        "params": ["params", "toll", "--json"],
        "explain": ["explain", "-m", model, "--top", 3, "--json", data_csv],
        "evaluate": ["evaluate", "-m", model, "--json", data_csv],
        "threshold": ["threshold", "-m", model, "--json", data_csv],
        "benchmark": ["benchmark", "-y", "label", "--exclude", "id,note", "-d", "ecod", "--seeds", 1, "--json",
                      data_csv],
    }
    payloads = {name: json.loads(run(runner, *args).stdout) for name, args in outputs.items()}
    assert all(payload["schema_version"] == 1 for payload in payloads.values())
    for name in ("info", "explain", "evaluate", "threshold"):
        assert payloads[name]["detector"] == "toll" and payloads[name]["model"] == str(model), name
    for name in ("explain", "evaluate", "threshold", "benchmark"):
        assert payloads[name]["n_rows"] == 80, name
    row = payloads["explain"]["rows"][0]
    assert {"row", "id", "anomaly_score", "is_anomaly", "features"} <= set(row) and "score" not in row
    chosen = payloads["threshold"]["chosen"]
    assert {"threshold", "n_flagged", "precision", "recall", "f1"} <= set(chosen) and "alarms" not in chosen
    assert {"roc_auc", "average_precision", "threshold", "n_flagged"} <= set(payloads["evaluate"])
    run_keys = set(payloads["benchmark"]["runs"][0])
    assert {"roc_auc", "average_precision", "fit_seconds", "score_seconds"} <= run_keys and "ap" not in run_keys
    assert {"average_precision_mean", "fit_seconds_std"} <= set(payloads["benchmark"]["summary"][0])


def test_readme_documents_the_json_schema():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for key in ("schema_version", "anomaly_score", "is_anomaly", "average_precision", "n_flagged"):
        assert f"`{key}`" in readme, key


@pytest.mark.parametrize("size", [{"total_rows": 1000}, {"fraction": lambda: 0.5}, {}])
def test_scoring_progress_is_a_bar_on_a_terminal(size):
    from pyod_ae_ext.streaming import Progress

    terminal = _Terminal()
    progress = Progress(True, stream=terminal, interval=0, **size)
    progress.update(500)
    progress.finish(1000)
    text = terminal.getvalue()
    assert "500 rows" in text and "rows/s" in text and text.endswith("scored 1,000 rows in 0.0s (" + text.split("(")[-1])
    if size:
        assert "50%|" in text and "<" in text  # percentage and time left
    quiet = _Terminal()
    Progress(False, stream=quiet, total_rows=10).finish(10)
    assert quiet.getvalue() == ""
