"""The bad-input catalogue: every way a user (or an attacker) can hand `adscore` bad input.

Each case is one CLI invocation in a workspace of small files. Every case must end in
exit status 2 with exactly one `Error:` line that names the problem, no traceback, and
the workspace unchanged: no output file left behind, no input modified.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from helpers import assert_clean_error
from model_payloads import (INCONSISTENT_KINDS, MALICIOUS_KINDS, REFUSED_TYPE, write_inconsistent_model,
                            write_malicious_model)

import pyod_ae_ext
from pyod_ae_ext.cli import cli

FEATURES = ["a", "b", "c", "d"]


def _frame(n=80, seed=0):
    rng = np.random.RandomState(seed)
    frame = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=FEATURES)
    frame.insert(0, "id", [f"r{i}" for i in range(n)])
    frame["label"] = 0
    frame.loc[:5, ["a", "b"]] += 8
    frame.loc[:5, "label"] = 1
    return frame


def _write_inputs(ws: Path) -> None:
    frame = _frame()
    frame.to_csv(ws / "data.csv", index=False)
    (ws / "empty.csv").write_text("")
    (ws / "header.csv").write_text("id,a,b,c,d,label\n")
    (ws / "garbage.csv").write_bytes(bytes(range(256)) * 4)
    (ws / "fake.parquet").write_text("not parquet at all\n")
    (ws / "one_row.csv").write_text("a,b,c,d\n1,2,3,4\n")
    (ws / "text.csv").write_text("a,b,c,d\n1,2,x,4\n5,6,y,8\n")
    (ws / "duplicates.csv").write_text("a,b,a,d\n1,2,3,4\n5,6,7,8\n9,1,2,3\n")
    (ws / "ragged.csv").write_text('a,b,c,d\n1,2,3,4\n5,6,"7\n')
    nan = frame.copy()
    nan.loc[7, "c"] = np.nan
    nan.to_csv(ws / "nan.csv", index=False)
    inf = frame.copy()
    inf.loc[3, "b"] = np.inf
    inf.to_csv(ws / "inf.csv", index=False)
    frame.drop(columns=["b", "d"]).to_csv(ws / "partial.csv", index=False)
    frame.assign(c=["x"] * len(frame)).to_csv(ws / "c_text.csv", index=False)
    frame.assign(label=0).to_csv(ws / "all_normal.csv", index=False)
    frame.assign(label=1).to_csv(ws / "all_anomalies.csv", index=False)
    frame.assign(label=frame["label"] * 2).to_csv(ws / "labels_02.csv", index=False)
    frame.assign(label=frame["label"].astype(float).where(frame.index != 4)).to_csv(ws / "labels_na.csv",
                                                                                    index=False)
    (ws / "bad.toml").write_text('detector = "toll"\nwhatever = 3\n')
    (ws / "good.toml").write_text('detector = "toll"\n')
    (ws / "broken.toml").write_text("detector = [unclosed\n")
    (ws / "params.toml").write_text('detector = "toll"\nparams = 3\n')
    (ws / "short.key").write_text("tiny\n")
    (ws / "empty.key").write_text("")
    (ws / "a_directory").mkdir()


def _write_models(ws: Path) -> None:
    runner = CliRunner()
    for name, args in (("forest.adscore", ["-d", "iforest", "-p", "n_estimators=10"]),
                       ("toll.adscore", ["-d", "toll", "-p", "epochs=2", "-p", "hidden_dims=[8]"])):
        result = runner.invoke(cli, ["fit", *args, "--seed", "0", "--exclude", "id,label", str(ws / "data.csv"),
                                     "-o", str(ws / name)])
        assert result.exit_code == 0, result.output
    model = (ws / "toll.adscore").read_bytes()
    (ws / "truncated.adscore").write_bytes(model[:300])
    tampered = bytearray(model)
    tampered[-3] ^= 0xFF
    (ws / "tampered.adscore").write_bytes(bytes(tampered))


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    ws = tmp_path_factory.mktemp("template")
    _write_inputs(ws)
    _write_models(ws)
    return ws


@pytest.fixture
def ws(template, tmp_path, monkeypatch):
    """A fresh copy of the workspace, as the current directory."""
    target = tmp_path / "ws"
    shutil.copytree(template, target)
    monkeypatch.chdir(target)
    monkeypatch.delenv("ADSCORE_SIGNING_KEY", raising=False)
    return target


def snapshot(ws: Path) -> dict:
    """Every path under ``ws`` with a hash of its content (directories as None)."""
    state = {}
    for path in sorted(ws.rglob("*")):
        key = str(path.relative_to(ws))
        state[key] = None if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return state


@dataclass
class Case:
    id: str
    args: list
    fragments: tuple
    stdin: str | None = None
    env: dict = field(default_factory=dict)


FIT = ["fit", "--exclude", "id,label"]
FIT_TOLL = [*FIT, "-d", "toll", "-p", "epochs=1"]
SCORE = ["score", "-m", "toll.adscore"]
NO_CUDA = not __import__("torch").cuda.is_available()

CASES = [
    # --- fit: detectors and parameters
    Case("fit-no-detector", [*FIT, "data.csv", "-o", "m.adscore"], ("--detector",)),
    Case("fit-unknown-detector", [*FIT, "-d", "tol", "data.csv", "-o", "m.adscore"], ("unknown detector 'tol'",)),
    Case("fit-unknown-param", [*FIT, "-d", "toll", "-p", "lamda=2", "data.csv", "-o", "m.adscore"],
         ("unknown parameter(s) 'lamda'",)),
    Case("fit-param-without-value", [*FIT, "-d", "toll", "-p", "lam", "data.csv", "-o", "m.adscore"],
         ("KEY=VALUE",)),
    Case("fit-negative-lr", [*FIT, "-d", "toll", "-p", "lr=-3", "data.csv", "-o", "m.adscore"], ("lr must be",)),
    Case("fit-zero-width", [*FIT, "-d", "ae", "-p", "hidden_dims=[0]", "data.csv", "-o", "m.adscore"],
         ("hidden_dims",)),
    Case("fit-epochs-text", [*FIT, "-d", "ae", "-p", "epochs=many", "data.csv", "-o", "m.adscore"],
         ("epochs must be an integer",)),
    Case("fit-bad-activation", [*FIT, "-d", "ae", "-p", "activation=swishy", "data.csv", "-o", "m.adscore"],
         ("activation must be one of",)),
    Case("fit-dropout-one", [*FIT, "-d", "ae", "-p", "dropout=1.5", "data.csv", "-o", "m.adscore"], ("dropout",)),
    Case("fit-pyod-negative-trees", [*FIT, "-d", "iforest", "-p", "n_estimators=-3", "data.csv", "-o", "m.adscore"],
         ("iforest",)),
    Case("fit-pyod-contamination", [*FIT, "-d", "iforest", "-p", "contamination=0.9", "data.csv", "-o", "m.adscore"],
         ("iforest", "contamination")),
    Case("fit-contamination-option", [*FIT_TOLL, "--contamination", "0.9", "data.csv", "-o", "m.adscore"],
         ("contamination must be in (0, 0.5]",)),
    Case("fit-device-bogus", [*FIT_TOLL, "--device", "tpu", "data.csv", "-o", "m.adscore"], ("device must be",)),
    *([Case("fit-device-cuda-missing", [*FIT_TOLL, "--device", "cuda", "data.csv", "-o", "m.adscore"],
            ("no usable CUDA GPU",))] if NO_CUDA else []),
    Case("fit-device-for-forest", [*FIT, "-d", "iforest", "--device", "cpu", "data.csv", "-o", "m.adscore"],
         ("no 'device' parameter",)),
    # --- fit: ensembles
    Case("fit-ensemble-no-combine", [*FIT, "-d", "toll", "-d", "iforest", "data.csv", "-o", "m.adscore"],
         ("--combine",)),
    Case("fit-combine-one-detector", [*FIT, "-d", "toll", "--combine", "mean", "data.csv", "-o", "m.adscore"],
         ("two or more",)),
    Case("fit-ensemble-unknown-param", [*FIT, "-d", "toll", "-d", "iforest", "--combine", "mean", "-p", "lamb=2",
                                        "data.csv", "-o", "m.adscore"], ("none of the detectors has a parameter",)),
    Case("fit-ensemble-foreign-prefix", [*FIT, "-d", "toll", "-d", "iforest", "--combine", "mean", "-p", "knn.k=2",
                                         "data.csv", "-o", "m.adscore"], ("not one of the --detector values",)),
    Case("fit-weights-text", [*FIT, "-d", "toll", "-d", "iforest", "--combine", "weighted", "--weights", "1,x",
                              "data.csv", "-o", "m.adscore"], ("--weights expects",)),
    # --- fit: config files
    Case("fit-config-missing", [*FIT, "--config", "nope.toml", "data.csv", "-o", "m.adscore"],
         ("cannot read config",)),
    Case("fit-config-unknown-key", [*FIT, "--config", "bad.toml", "data.csv", "-o", "m.adscore"],
         ("unknown key(s) whatever",)),
    Case("fit-config-broken", [*FIT, "--config", "broken.toml", "data.csv", "-o", "m.adscore"],
         ("cannot read config",)),
    Case("fit-config-params-not-table", [*FIT, "--config", "params.toml", "data.csv", "-o", "m.adscore"],
         ("`params` must be a table",)),
    # --- fit: data
    Case("fit-data-missing", [*FIT_TOLL, "nope.csv", "-o", "m.adscore"], ("does not exist",)),
    Case("fit-data-device", [*FIT_TOLL, os.devnull, "-o", "m.adscore"], ("is not a regular file",)),
    Case("score-data-device", [*SCORE, os.devnull, "-o", "s.csv"], ("is not a regular file",)),
    Case("fit-data-empty", [*FIT_TOLL, "empty.csv", "-o", "m.adscore"], ("empty",)),
    Case("fit-data-header-only", [*FIT_TOLL, "header.csv", "-o", "m.adscore"], ("no data rows",)),
    Case("fit-data-binary-garbage", ["fit", "-d", "toll", "garbage.csv", "-o", "m.adscore"], ("garbage.csv",)),
    Case("fit-data-fake-parquet", ["fit", "-d", "toll", "fake.parquet", "-o", "m.adscore"], ("Parquet",)),
    Case("fit-data-ragged-quote", ["fit", "-d", "toll", "ragged.csv", "-o", "m.adscore"], ("ragged.csv",)),
    Case("fit-one-row", ["fit", "-d", "toll", "one_row.csv", "-o", "m.adscore"], ("at least 2 rows",)),
    Case("fit-non-numeric-column", ["fit", "-d", "toll", "--exclude", "label", "data.csv", "-o", "m.adscore"],
         ("non-numeric column(s) id",)),
    Case("fit-text-cells", ["fit", "-d", "toll", "text.csv", "-o", "m.adscore"], ("non-numeric column(s) c",)),
    Case("fit-duplicate-columns", ["fit", "-d", "toll", "duplicates.csv", "-o", "m.adscore"], ("duplicate", "a")),
    Case("fit-nan", [*FIT_TOLL, "nan.csv", "-o", "m.adscore"], ("'c'", "row 7")),
    Case("fit-inf", [*FIT_TOLL, "inf.csv", "-o", "m.adscore"], ("inf", "'b'")),
    Case("fit-exclude-unknown", ["fit", "-d", "toll", "--exclude", "id,zzz", "data.csv", "-o", "m.adscore"],
         ("zzz",)),
    Case("fit-columns-unknown", ["fit", "-d", "toll", "--columns", "a,q", "data.csv", "-o", "m.adscore"], ("q",)),
    Case("fit-id-column-unknown", ["fit", "-d", "toll", "--id-column", "key", "data.csv", "-o", "m.adscore"],
         ("key",)),
    Case("fit-nothing-left", ["fit", "-d", "toll", "--exclude", "id,a,b,c,d,label", "data.csv", "-o", "m.adscore"],
         ("no feature columns",)),
    Case("fit-stdin-empty", [*FIT_TOLL, "-", "-o", "m.adscore"], ("standard input is empty",), stdin=""),
    # --- fit: outputs
    Case("fit-output-stdout", [*FIT_TOLL, "data.csv", "-o", "-"], ("-o MODEL.adscore",)),
    Case("fit-output-is-the-data", [*FIT_TOLL, "data.csv", "-o", "data.csv"], ("also an input",)),
    Case("fit-output-is-the-data-by-another-path", [*FIT_TOLL, "data.csv", "-o", "./a_directory/../data.csv"],
         ("also an input",)),
    Case("fit-output-is-the-config", [*FIT, "--config", "good.toml", "data.csv", "-o", "good.toml"],
         ("also an input",)),
    Case("fit-output-missing-directory", [*FIT_TOLL, "data.csv", "-o", "no/such/dir/m.adscore"], ("does not exist",)),
    Case("fit-output-is-a-directory", [*FIT_TOLL, "data.csv", "-o", "a_directory"], ("is a directory",)),
    Case("fit-output-device-full", [*FIT_TOLL, "data.csv", "-o", "/dev/full"], ("/dev/full", "No space left")),
    Case("fit-sign-key-missing", [*FIT_TOLL, "--sign-key-file", "nope.key", "data.csv", "-o", "m.adscore"],
         ("nope.key",)),
    Case("fit-sign-key-empty", [*FIT_TOLL, "--sign-key-file", "empty.key", "data.csv", "-o", "m.adscore"],
         ("empty.key",)),
    Case("fit-sign-key-short", [*FIT_TOLL, "--sign-key-file", "short.key", "data.csv", "-o", "m.adscore"],
         ("short",)),
    # --- score
    Case("score-model-missing", ["score", "-m", "nope.adscore", "data.csv", "-o", "s.csv"], ("does not exist",)),
    Case("score-model-is-csv", ["score", "-m", "data.csv", "data.csv", "-o", "s.csv"], ("not an adscore model",)),
    Case("score-model-truncated", ["score", "-m", "truncated.adscore", "data.csv", "-o", "s.csv"], ("truncated",)),
    Case("score-model-tampered", ["score", "-m", "tampered.adscore", "data.csv", "-o", "s.csv"],
         ("integrity check",)),
    Case("score-output-is-the-model", [*SCORE, "data.csv", "-o", "toll.adscore"], ("also an input",)),
    Case("score-output-is-the-data", [*SCORE, "data.csv", "-o", "data.csv"], ("also an input",)),
    Case("score-output-missing-directory", [*SCORE, "data.csv", "-o", "nowhere/s.csv"], ("does not exist",)),
    Case("score-output-is-a-directory", [*SCORE, "data.csv", "-o", "a_directory"], ("is a directory",)),
    Case("score-output-device-full", [*SCORE, "data.csv", "-o", "/dev/full"], ("No space left",)),
    Case("score-parquet-to-stdout", [*SCORE, "--format", "parquet", "data.csv"], ("Parquet output needs a file",)),
    Case("score-missing-columns", [*SCORE, "partial.csv", "-o", "s.csv"],
         ("lacks column(s) the model was fitted on: b, d",)),
    Case("score-text-feature", [*SCORE, "c_text.csv", "-o", "s.csv"], ("c", "not numeric")),
    Case("score-nan", [*SCORE, "nan.csv", "-o", "s.csv"], ("'c'", "row 7")),
    Case("score-id-column-unknown", [*SCORE, "--id-column", "key", "data.csv", "-o", "s.csv"], ("key",)),
    Case("score-top-zero", [*SCORE, "--top", "0", "data.csv"], ("--top",)),
    Case("score-duplicate-columns", ["score", "-m", "forest.adscore", "duplicates.csv"], ("duplicate",)),
    Case("score-signed-key-required", [*SCORE, "data.csv"], ("not signed",),
         env={"ADSCORE_SIGNING_KEY": "a-team-secret-of-32-characters!!"}),
    # --- info
    Case("info-missing", ["info", "nope.adscore"], ("does not exist",)),
    Case("info-garbage", ["info", "garbage.csv"], ("not an adscore model",)),
    Case("info-tampered", ["info", "tampered.adscore"], ("integrity check",)),
    # --- explain
    Case("explain-forest", ["explain", "-m", "forest.adscore", "data.csv"], ("does not attribute",)),
    Case("explain-features-zero", ["explain", "-m", "toll.adscore", "--features", "0", "data.csv"],
         ("--features",)),
    Case("explain-plot-is-the-data", ["explain", "-m", "toll.adscore", "--plot", "data.csv", "data.csv"],
         ("also an input",)),
    Case("explain-plot-is-the-model", ["explain", "-m", "toll.adscore", "--plot", "toll.adscore", "data.csv"],
         ("also an input",)),
    # --- evaluate
    Case("evaluate-label-missing", ["evaluate", "-m", "toll.adscore", "--label-column", "y", "data.csv"], ("y",)),
    Case("evaluate-labels-not-binary", ["evaluate", "-m", "toll.adscore", "--label-column", "label",
                                        "labels_02.csv"], ("must hold 0 (normal) and 1",)),
    Case("evaluate-labels-na", ["evaluate", "-m", "toll.adscore", "--label-column", "label", "labels_na.csv"],
         ("missing values",)),
    Case("evaluate-all-normal", ["evaluate", "-m", "toll.adscore", "--label-column", "label", "all_normal.csv"],
         ("no anomaly",)),
    Case("evaluate-all-anomalies", ["evaluate", "-m", "toll.adscore", "--label-column", "label",
                                    "all_anomalies.csv"], ("only anomalies",)),
    Case("evaluate-plot-missing-directory", ["evaluate", "-m", "toll.adscore", "--label-column", "label",
                                             "--plot", "nowhere/p.png", "data.csv"], ("does not exist",)),
    # --- threshold
    Case("threshold-o-and-in-place", ["threshold", "-m", "toll.adscore", "--label-column", "label", "--in-place",
                                      "-o", "t.adscore", "data.csv"], ("choose one of -o NEW_MODEL and --in-place",)),
    Case("threshold-all-normal", ["threshold", "-m", "toll.adscore", "--label-column", "label", "--in-place",
                                  "all_normal.csv"], ("no anomaly",)),
    Case("threshold-all-anomalies", ["threshold", "-m", "toll.adscore", "--label-column", "label", "--in-place",
                                     "all_anomalies.csv"], ("only anomalies",)),
    Case("threshold-output-is-the-data", ["threshold", "-m", "toll.adscore", "--label-column", "label", "-o",
                                          "data.csv", "data.csv"], ("also an input",)),
    Case("threshold-output-is-the-model", ["threshold", "-m", "toll.adscore", "--label-column", "label", "-o",
                                           "toll.adscore", "data.csv"], ("also an input",)),
    Case("threshold-output-stdout", ["threshold", "-m", "toll.adscore", "--label-column", "label", "-o", "-",
                                     "data.csv"], ("not a stream",)),
    Case("threshold-f1-with-costs", ["threshold", "-m", "toll.adscore", "--label-column", "label", "--objective",
                                     "f1", "--cost-missed", "3", "data.csv"], ("--objective cost",)),
    Case("threshold-negative-cost", ["threshold", "-m", "toll.adscore", "--label-column", "label",
                                     "--cost-missed", "-3", "data.csv"], ("non-negative",)),
    Case("threshold-zero-costs", ["threshold", "-m", "toll.adscore", "--label-column", "label", "--cost-missed",
                                  "0", "--cost-false-alarm", "0", "data.csv"], ("both be 0",)),
    # --- example, benchmark
    Case("example-missing-directory", ["example", "-o", "nowhere/example.csv"], ("does not exist",)),
    Case("example-output-is-a-directory", ["example", "-o", "a_directory"], ("is a directory",)),
    Case("benchmark-label-missing", ["benchmark", "-y", "nope", "-d", "iforest", "data.csv"], ("nope",)),
]


def test_the_catalogue_is_large_and_unique():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 60


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case, ws, monkeypatch):
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    before = snapshot(ws)
    result = CliRunner().invoke(cli, case.args, input=case.stdin)
    assert_clean_error(result, *case.fragments)
    assert snapshot(ws) == before, "the command left or changed a file"


# --- extreme values are flagged, not lost ----------------------------------------


@pytest.mark.parametrize("value", ["1e30", "1e200", "1e308", "-1e308"])
@pytest.mark.parametrize("model", ["toll.adscore", "forest.adscore"])
def test_an_extreme_row_is_scored_and_flagged(ws, value, model):
    frame = _frame()
    frame["a"] = frame["a"].astype(object)
    frame.loc[40, "a"] = value
    frame.to_csv(ws / "extreme.csv", index=False)
    result = CliRunner().invoke(cli, ["score", "-m", model, "--id-column", "id", "extreme.csv", "-o", "s.csv"])
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(ws / "s.csv")
    assert np.isfinite(scores["anomaly_score"]).all()
    if model == "toll.adscore":
        # An isolation forest sees 1e308 as just past the largest training value (its splits
        # are ranks, not distances), so only our distance-like scores must flag the row.
        assert scores.loc[40, "is_anomaly"] == 1
    clean = pyod_ae_ext.load(ws / model).decision_function(_frame()[FEATURES].to_numpy())
    others = scores.index != 40
    np.testing.assert_allclose(scores["anomaly_score"][others], clean[others], rtol=1e-6)


# --- outputs that are not regular files -------------------------------------------


def test_score_writes_through_a_fifo_and_keeps_it(ws):
    import threading

    fifo = ws / "scores.fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    result = CliRunner().invoke(cli, [*SCORE, "data.csv", "-o", str(fifo)])
    reader.join(timeout=30)
    assert result.exit_code == 0, result.output
    assert fifo.is_fifo()
    assert received and received[0].startswith(b"anomaly_score,is_anomaly,anomaly_probability\n")


def test_score_to_dev_null_keeps_the_device(ws):
    result = CliRunner().invoke(cli, [*SCORE, "data.csv", "-o", os.devnull])
    assert result.exit_code == 0, result.output
    assert Path(os.devnull).is_char_device()


def test_threshold_changes_nothing_unless_asked(ws):
    original = (ws / "toll.adscore").read_bytes()
    result = CliRunner().invoke(cli, ["threshold", "-m", "toll.adscore", "--label-column", "label", "data.csv"])
    assert result.exit_code == 0, result.output
    assert "old threshold" in result.stdout and "new threshold" in result.stdout
    assert "model unchanged" in result.stdout
    assert (ws / "toll.adscore").read_bytes() == original
    result = CliRunner().invoke(cli, ["threshold", "-m", "toll.adscore", "--label-column", "label",
                                      "-o", "tuned.adscore", "data.csv"])
    assert result.exit_code == 0 and (ws / "toll.adscore").read_bytes() == original
    tuned = pyod_ae_ext.load(ws / "tuned.adscore")
    assert tuned.threshold_ != pyod_ae_ext.load(ws / "toll.adscore").threshold_
    result = CliRunner().invoke(cli, ["threshold", "-m", "toll.adscore", "--label-column", "label",
                                      "--in-place", "data.csv"])
    assert result.exit_code == 0
    assert pyod_ae_ext.load(ws / "toll.adscore").threshold_ == tuned.threshold_
    assert sorted(p.name for p in ws.iterdir() if p.name.startswith(".")) == []


# --- model files that would run code, or do not describe a working detector -----------

MODEL_COMMANDS = {
    "score": lambda model: ["score", "-m", model, "data.csv", "-o", "s.csv"],
    "info": lambda model: ["info", model],
    "explain": lambda model: ["explain", "-m", model, "data.csv"],
    "evaluate": lambda model: ["evaluate", "-m", model, "--label-column", "label", "data.csv"],
    "threshold": lambda model: ["threshold", "-m", model, "--label-column", "label", "--in-place", "data.csv"],
}


@pytest.mark.parametrize("command", sorted(MODEL_COMMANDS))
@pytest.mark.parametrize("kind", MALICIOUS_KINDS)
def test_every_model_command_refuses_code_in_a_model_file(ws, command, kind):
    marker = ws.parent / "marker"  # outside the workspace, so the snapshot cannot hide it
    write_malicious_model(ws / "evil.adscore", kind, marker)
    before = snapshot(ws)
    result = CliRunner().invoke(cli, MODEL_COMMANDS[command]("evil.adscore"))
    assert_clean_error(result, REFUSED_TYPE[kind])
    assert not marker.exists()
    assert snapshot(ws) == before


@pytest.mark.parametrize("kind", sorted(INCONSISTENT_KINDS))
def test_inconsistent_model_files_are_one_error_line(ws, kind):
    write_inconsistent_model(ws / "odd.adscore", kind)
    before = snapshot(ws)
    for command in ("score", "info"):
        result = CliRunner().invoke(cli, MODEL_COMMANDS[command]("odd.adscore"))
        assert_clean_error(result, INCONSISTENT_KINDS[kind])
    assert snapshot(ws) == before


def test_signed_models_from_the_command_line(ws, monkeypatch):
    (ws / "team.key").write_text("a-team-secret-of-32-characters!!\n")
    (ws / "other.key").write_text("another-secret-of-32-characters!\n")
    fit = ["fit", "-d", "iforest", "-p", "n_estimators=5", "--exclude", "id,label", "data.csv"]
    assert CliRunner().invoke(cli, [*fit, "--sign-key-file", "team.key", "-o", "signed.adscore"]).exit_code == 0
    info = CliRunner().invoke(cli, ["info", "--sign-key-file", "team.key", "signed.adscore"])
    assert info.exit_code == 0 and "signed, verified" in info.stdout
    assert "signed, not verified" in CliRunner().invoke(cli, ["info", "signed.adscore"]).stdout
    assert "unsigned" in CliRunner().invoke(cli, ["info", "forest.adscore"]).stdout
    score = ["score", "-m", "signed.adscore", "data.csv"]
    assert CliRunner().invoke(cli, [*score, "--sign-key-file", "team.key"]).exit_code == 0
    assert_clean_error(CliRunner().invoke(cli, [*score, "--sign-key-file", "other.key"]),
                       "signature does not match")
    assert_clean_error(CliRunner().invoke(cli, ["score", "-m", "forest.adscore", "--sign-key-file", "team.key",
                                                "data.csv"]), "is not signed")
    monkeypatch.setenv("ADSCORE_SIGNING_KEY", "another-secret-of-32-characters!")
    assert_clean_error(CliRunner().invoke(cli, score), "signature does not match")
    # an explicit key file wins over the environment; threshold signs what it writes with it
    result = CliRunner().invoke(cli, ["threshold", "-m", "signed.adscore", "--label-column", "label",
                                      "--sign-key-file", "team.key", "-o", "tuned.adscore", "data.csv"])
    assert result.exit_code == 0, result.output
    monkeypatch.delenv("ADSCORE_SIGNING_KEY")
    assert CliRunner().invoke(cli, ["score", "-m", "tuned.adscore", "--sign-key-file", "team.key",
                                    "data.csv"]).exit_code == 0
    assert_clean_error(CliRunner().invoke(cli, ["score", "-m", "tuned.adscore", "--sign-key-file", "other.key",
                                                "data.csv"]), "signature does not match")
