"""Streaming `adscore score` and `fit --sample`: batches in, results out, same numbers as a whole-table run."""
from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from helpers import assert_clean_error

import pyod_ae_ext
from pyod_ae_ext import streaming
from pyod_ae_ext.cli import cli

FEATURES = ["a", "b", "c", "d"]
N_ROWS = 300


def _frame(n=N_ROWS, seed=0):
    rng = np.random.RandomState(seed)
    frame = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=FEATURES)
    frame.insert(0, "id", [f"{i:05d}" for i in range(n)])  # leading zeros survive as text
    frame.loc[:9, ["a", "b"]] += 6
    frame["note"] = "x"
    return frame


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """Data files and models (ae, iforest, an ensemble, ecod) shared by the tests of this module."""
    ws = tmp_path_factory.mktemp("streaming")
    frame = _frame()
    frame.to_csv(ws / "data.csv", index=False)
    frame.to_parquet(ws / "data.parquet", index=False)
    fits = {"ae": ["-d", "ae", "-p", "epochs=3", "-p", "hidden_dims=[8]"],
            "forest": ["-d", "iforest", "-p", "n_estimators=10"],
            "ensemble": ["-d", "ae", "-d", "iforest", "--combine", "max", "-p", "ae.epochs=2",
                         "-p", "iforest.n_estimators=10"],
            "ecod": ["-d", "ecod"]}
    for name, args in fits.items():
        result = CliRunner().invoke(cli, ["fit", *args, "--seed", "0", "--id-column", "id", "--exclude", "note",
                                          str(ws / "data.csv"), "-o", str(ws / f"{name}.adscore")])
        assert result.exit_code == 0, result.output
    return ws


def score(ws, *args, input=None):
    return CliRunner().invoke(cli, ["score", *map(str, args)], input=input)


def eager_scores(ws, model, frame=None):
    frame = _frame() if frame is None else frame
    return pyod_ae_ext.load(ws / model).decision_function(frame[FEATURES].to_numpy(dtype=np.float64))


# --- same numbers as a whole-table run ------------------------------------------


@pytest.mark.parametrize("model", ["ae", "forest", "ensemble", "ecod"])
@pytest.mark.parametrize("data", ["data.csv", "data.parquet"])
def test_batches_score_bit_for_bit_like_the_whole_table(ws, tmp_path, model, data):
    out = tmp_path / "s.parquet"
    result = score(ws, "-m", ws / f"{model}.adscore", "--id-column", "id", "--batch-rows", 37, ws / data,
                   "-o", out)
    assert result.exit_code == 0, result.output
    scores = pd.read_parquet(out)
    expected = eager_scores(ws, f"{model}.adscore")
    np.testing.assert_array_equal(scores["anomaly_score"].to_numpy(), expected)
    detector = pyod_ae_ext.load(ws / f"{model}.adscore")
    np.testing.assert_array_equal(scores["is_anomaly"], (expected > detector.threshold_).astype(int))
    assert scores["id"].tolist() == _frame()["id"].tolist()
    if model == "ecod":
        assert "scored at once" in result.stderr


def test_csv_output_keeps_every_digit_and_the_id_text(ws, tmp_path):
    result = score(ws, "-m", ws / "ae.adscore", "--id-column", "id", "--batch-rows", 50, ws / "data.csv")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("id,anomaly_score,is_anomaly,anomaly_probability\n00000,")
    scores = pd.read_csv(pd.io.common.StringIO(result.stdout), dtype={"id": str})
    np.testing.assert_array_equal(scores["anomaly_score"].to_numpy(), eager_scores(ws, "ae.adscore"))
    assert scores["id"].iloc[7] == "00007"


def test_json_lines_output(ws, tmp_path):
    out = tmp_path / "s.json"
    assert score(ws, "-m", ws / "ae.adscore", "--batch-rows", 64, ws / "data.csv", "-o", out).exit_code == 0
    scores = pd.read_json(out, lines=True)
    # the model remembers its id column from `fit`
    assert len(scores) == N_ROWS and list(scores.columns) == ["id", "anomaly_score", "is_anomaly", "anomaly_probability"]
    # JSON keeps 15 decimal places (pandas double_precision), so the error is absolute
    np.testing.assert_allclose(scores["anomaly_score"], eager_scores(ws, "ae.adscore"), rtol=0, atol=1e-15)


def test_ids_that_need_quotes_are_quoted(ws, tmp_path):
    frame = _frame(20)
    frame["id"] = [f'name, "{i}"' for i in range(20)]
    frame.to_csv(tmp_path / "q.csv", index=False)
    result = score(ws, "-m", ws / "ae.adscore", "--id-column", "id", tmp_path / "q.csv")
    assert result.exit_code == 0, result.output
    assert pd.read_csv(pd.io.common.StringIO(result.stdout))["id"].tolist() == frame["id"].tolist()


def test_top_n_across_batches_is_a_stable_sort_of_the_whole_table(ws, tmp_path):
    frame = pd.concat([_frame(60)] * 5, ignore_index=True)  # every score five times: ties across batches
    frame["id"] = [str(i) for i in range(len(frame))]
    frame.to_csv(tmp_path / "ties.csv", index=False)
    result = score(ws, "-m", ws / "forest.adscore", "--id-column", "id", "--top", 23, "--batch-rows", 16,
                   tmp_path / "ties.csv")
    assert result.exit_code == 0, result.output
    top = pd.read_csv(pd.io.common.StringIO(result.stdout), dtype={"id": str})
    full = frame[["id"]].assign(anomaly_score=eager_scores(ws, "forest.adscore", frame))
    expected = full.sort_values("anomaly_score", ascending=False, kind="stable").head(23)
    assert top["id"].tolist() == expected["id"].tolist()
    np.testing.assert_array_equal(top["anomaly_score"].to_numpy(), expected["anomaly_score"].to_numpy())


# --- inputs: compressed, stdin, Parquet, odd headers ----------------------------


def test_gzip_and_zstd_csv_and_stdin(ws, tmp_path):
    raw = (ws / "data.csv").read_bytes()
    (tmp_path / "data.csv.gz").write_bytes(gzip.compress(raw))
    with pa.CompressedOutputStream(str(tmp_path / "data.csv.zst"), "zstd") as out:
        out.write(raw)
    expected = eager_scores(ws, "ae.adscore")
    for source, stdin in ((tmp_path / "data.csv.gz", None), (tmp_path / "data.csv.zst", None),
                          ("-", gzip.compress(raw)), ("-", raw), ("-", (ws / "data.parquet").read_bytes())):
        result = score(ws, "-m", ws / "ae.adscore", "--batch-rows", 100, source, input=stdin)
        assert result.exit_code == 0, (source, result.output)
        scores = pd.read_csv(pd.io.common.StringIO(result.stdout))
        np.testing.assert_array_equal(scores["anomaly_score"].to_numpy(), expected)


def test_cells_padded_with_blanks_read_as_pandas_reads_them(ws, tmp_path):
    frame = _frame(40)
    text = "id, a, b, c, d,note\n" + "".join(
        f"{r.id}, {r.a!r}, {r.b!r} ,{r.c!r}, {r.d!r},x\n" for r in frame.itertuples())
    (tmp_path / "padded.csv").write_text(text)
    model = tmp_path / "padded.adscore"
    assert CliRunner().invoke(cli, ["fit", "-d", "iforest", "-p", "n_estimators=5", "--seed", "0", "--exclude",
                                    "note", "--id-column", "id", str(tmp_path / "padded.csv"), "-o",
                                    str(model)]).exit_code == 0
    result = score(ws, "-m", model, tmp_path / "padded.csv")
    assert result.exit_code == 0, result.output
    eager = pd.read_csv(tmp_path / "padded.csv")
    expected = pyod_ae_ext.load(model).decision_function(eager[[" a", " b", " c", " d"]].to_numpy())
    np.testing.assert_array_equal(pd.read_csv(pd.io.common.StringIO(result.stdout))["anomaly_score"], expected)


def test_a_blank_header_name_is_pandas_unnamed(ws, tmp_path):
    frame = _frame(50)[FEATURES]
    frame.to_csv(tmp_path / "indexed.csv")  # pandas writes its index under a blank name
    model = tmp_path / "indexed.adscore"
    fitted = CliRunner().invoke(cli, ["fit", "-d", "iforest", "-p", "n_estimators=5", "--seed", "0",
                                      "--id-column", "Unnamed: 0", str(tmp_path / "indexed.csv"), "-o", str(model)])
    assert fitted.exit_code == 0, fitted.output
    result = score(ws, "-m", model, "--id-column", "Unnamed: 0", "--batch-rows", 7, tmp_path / "indexed.csv")
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(pd.io.common.StringIO(result.stdout))
    assert scores["Unnamed: 0"].tolist() == list(range(50))
    np.testing.assert_array_equal(scores["anomaly_score"], pyod_ae_ext.load(model).decision_function(frame.to_numpy()))


# --- a bad cell late in the input: one Error line, the row named, no output -------


def _late_problem(tmp_path, kind):
    frame = _frame().astype({"c": object})
    if kind == "nan":
        frame.loc[250, "c"] = np.nan
    elif kind == "text":
        frame.loc[250, "c"] = "oops"
    path = tmp_path / f"{kind}.csv"
    frame.to_csv(path, index=False)
    if kind == "ragged":
        lines = path.read_text().splitlines()
        lines[251] += ",extra"
        path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("kind,fragments", [
    ("nan", ("nan", "'c'", "row 250")),
    ("text", ("c", "not numeric", "'oops'", "row 250")),
    ("ragged", ("row 250", "7 fields", "header has 6")),
])
def test_an_error_in_a_later_batch_leaves_no_output(ws, tmp_path, kind, fragments):
    data = _late_problem(tmp_path, kind)
    out = tmp_path / "out" / "scores.parquet"
    out.parent.mkdir()
    result = score(ws, "-m", ws / "ae.adscore", "--batch-rows", 16, data, "-o", out)
    assert_clean_error(result, *fragments)
    assert list(out.parent.iterdir()) == []


def test_an_error_in_a_later_batch_of_parquet(ws, tmp_path):
    frame = _frame()
    frame.loc[280, "d"] = np.inf
    frame.to_parquet(tmp_path / "inf.parquet")
    result = score(ws, "-m", ws / "ae.adscore", "--batch-rows", 32, tmp_path / "inf.parquet", "-o",
                   tmp_path / "s.csv")
    assert_clean_error(result, "inf", "'d'", "row 280")
    assert not (tmp_path / "s.csv").exists()


def test_duplicate_names_are_refused_in_csv_and_parquet(ws, tmp_path):
    (tmp_path / "dup.csv").write_text("a,b,c,d,a\n1,2,3,4,5\n")
    assert_clean_error(score(ws, "-m", ws / "ae.adscore", tmp_path / "dup.csv"), "duplicate", "'a' (2 times)")
    table = pa.table([pa.array([1.0]), pa.array([2.0]), pa.array([3.0]), pa.array([4.0]), pa.array([5.0])],
                     names=["a", "b", "c", "d", "b"])
    pq.write_table(table, tmp_path / "dup.parquet")
    assert_clean_error(score(ws, "-m", ws / "ae.adscore", tmp_path / "dup.parquet"), "duplicate", "'b'")


def test_text_feature_in_parquet_and_header_only(ws, tmp_path):
    _frame().assign(c="x").to_parquet(tmp_path / "text.parquet")
    assert_clean_error(score(ws, "-m", ws / "ae.adscore", tmp_path / "text.parquet"), "c", "not numeric")
    (tmp_path / "header.csv").write_text("id,a,b,c,d\n")
    assert_clean_error(score(ws, "-m", ws / "ae.adscore", tmp_path / "header.csv"), "no data rows")
    (tmp_path / "bad.csv.gz").write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    assert_clean_error(score(ws, "-m", ws / "ae.adscore", tmp_path / "bad.csv.gz"), "bad.csv.gz")


def test_scheduler_needs_the_dask_engine(ws):
    assert_clean_error(score(ws, "-m", ws / "ae.adscore", "--scheduler", "tcp://x:1", ws / "data.csv"),
                       "--engine dask")


def test_progress_with_verbose(ws):
    result = score(ws, "-m", ws / "ae.adscore", "-v", ws / "data.parquet", "-o", os.devnull)
    assert result.exit_code == 0, result.output
    assert f"scored {N_ROWS:,} rows" in result.stderr and "rows/s" in result.stderr
    quiet = score(ws, "-m", ws / "ae.adscore", ws / "data.parquet", "-o", os.devnull)
    assert "rows/s" not in quiet.stderr


def test_sigterm_while_streaming_leaves_no_file(ws, tmp_path):
    out = tmp_path / "scores.csv"
    process = subprocess.Popen([sys.executable, "-c", "from pyod_ae_ext.cli import main; main()", "score",
                                "-m", str(ws / "ae.adscore"), "-", "-o", str(out)],
                               stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdin.write((ws / "data.csv").read_bytes())  # the header and a first block; stdin stays open
    process.stdin.flush()
    deadline = time.time() + 60
    while not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()) and time.time() < deadline:
        time.sleep(0.05)
    assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir()), "the output was never started"
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    process.stdin.close()
    assert process.returncode == -signal.SIGTERM, process.stderr.read().decode(errors="replace")[-3000:]
    assert list(tmp_path.iterdir()) == []


# --- fit --sample ---------------------------------------------------------------


def _algorithm_r(n_rows, size, seed):
    """Row-by-row Algorithm R with the same draws as the vectorised one (reference for the test)."""
    rng = np.random.default_rng(seed)
    reservoir = list(range(min(size, n_rows)))
    for i in range(size, n_rows):
        j = rng.integers(0, i + 1)
        if j < size:
            reservoir[j] = i
    return sorted(reservoir)


@pytest.mark.parametrize("batch_rows", [1, 7, 64, 1000])
def test_reservoir_sample_is_algorithm_r_whatever_the_batches(batch_rows):
    X = np.arange(500, dtype=np.float64).reshape(-1, 1)
    batches = [streaming.Batch(X[i:i + batch_rows], None, i) for i in range(0, len(X), batch_rows)]
    sample, seen = streaming.reservoir_sample(batches, 40, seed=3)
    assert seen == 500
    assert sample[:, 0].astype(int).tolist() == _algorithm_r(500, 40, 3)


def test_reservoir_sample_is_uniform():
    X = np.arange(200, dtype=np.float64).reshape(-1, 1)
    counts = np.zeros(200)
    for seed in range(400):
        sample, _ = streaming.reservoir_sample([streaming.Batch(X[i:i + 33], None, i) for i in range(0, 200, 33)],
                                               20, seed)
        counts[sample[:, 0].astype(int)] += 1
    # each row is kept with probability 20/200: 40 of 400 draws, binomial sd ~6
    assert abs(counts.mean() - 40) < 1e-9 and counts.min() > 15 and counts.max() < 70


def test_fit_on_a_sample(ws, tmp_path):
    model = tmp_path / "sampled.adscore"
    result = CliRunner().invoke(cli, ["fit", "-d", "iforest", "-p", "n_estimators=5", "--seed", "4", "--sample", 50,
                                      "--id-column", "id", "--exclude", "note", str(ws / "data.parquet"), "-o",
                                      str(model)])
    assert result.exit_code == 0, result.output
    assert "fitted on a random sample of 50 of 300 rows (seed 4)" in result.stderr
    assert len(pyod_ae_ext.load(model).decision_scores_) == 50
    X, features, sample = streaming.sample_file(str(ws / "data.csv"), 50, 4, id_columns=["id"], exclude=["note"])
    assert sample == {"rows": 50, "of": 300, "seed": 4} and features == FEATURES
    rows = _algorithm_r(300, 50, 4)
    np.testing.assert_array_equal(X, _frame()[FEATURES].to_numpy()[rows])


def test_fit_sample_errors_name_the_column(ws, tmp_path):
    _frame().assign(id=lambda f: "r" + f["id"]).to_csv(tmp_path / "text_ids.csv", index=False)
    result = CliRunner().invoke(cli, ["fit", "-d", "iforest", "--sample", 10, "--exclude", "note",
                                      str(tmp_path / "text_ids.csv"), "-o", str(tmp_path / "m.adscore")])
    assert_clean_error(result, "non-numeric column(s) id", "--exclude")
    result = CliRunner().invoke(cli, ["fit", "-d", "iforest", "--sample", 10, "--exclude", "id,note",
                                      str(_late_problem(tmp_path, "nan")), "-o", str(tmp_path / "m.adscore")])
    assert_clean_error(result, "'c'", "row 250")
    assert not (tmp_path / "m.adscore").exists()
