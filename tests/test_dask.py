"""Scoring and ensemble fitting on a real Dask cluster (two worker processes), against local results."""
from __future__ import annotations

import importlib.util
import logging
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from helpers import assert_clean_error

import pyod_ae_ext
from pyod_ae_ext.cli import cli
from pyod_ae_ext.ensemble import Ensemble

HAVE_DASK = all(importlib.util.find_spec(m) is not None for m in ("dask", "distributed"))
needs_dask = pytest.mark.skipif(not HAVE_DASK, reason='dask is not installed: pip install "pyod-ae-ext[dask]"')
FEATURES = ["a", "b", "c", "d"]


def _frame(n=240, seed=1):
    rng = np.random.RandomState(seed)
    frame = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=FEATURES)
    frame.insert(0, "id", [f"r{i}" for i in range(n)])
    frame.loc[:7, ["a", "c"]] += 5
    return frame


@pytest.fixture(scope="module")
def client():
    """A real cluster: two worker processes of one thread each, closed after the module."""
    if not HAVE_DASK:
        pytest.skip('dask is not installed: pip install "pyod-ae-ext[dask]"')
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                      silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = tmp_path_factory.mktemp("dask")
    frame = _frame()
    frame.to_csv(ws / "data.csv", index=False)
    for i, part in enumerate(np.array_split(np.arange(len(frame)), 3)):
        frame.iloc[part].to_parquet(ws / f"part-{i}.parquet", index=False)
        frame.iloc[part].to_csv(ws / f"part-{i}.csv", index=False)
    for name, args in (("ae", ["-d", "ae", "-p", "epochs=3", "-p", "hidden_dims=[16]"]),
                       ("ensemble", ["-d", "toll", "-d", "iforest", "--combine", "mean", "-p", "toll.epochs=2",
                                     "-p", "iforest.n_estimators=10"]),
                       ("ecod", ["-d", "ecod"])):
        result = CliRunner().invoke(cli, ["fit", *args, "--seed", "0", "--id-column", "id", str(ws / "data.csv"),
                                          "-o", str(ws / f"{name}.adscore")])
        assert result.exit_code == 0, result.output
    return ws


def local_scores(ws, model, frame=None):
    frame = _frame() if frame is None else frame
    return pyod_ae_ext.load(ws / model).decision_function(frame[FEATURES].to_numpy())


@needs_dask
@pytest.mark.parametrize("model", ["ae.adscore", "ensemble.adscore"])
def test_score_dask_matches_local(client, ws, model):
    import dask.array as da
    import dask.dataframe as dd

    from pyod_ae_ext.dask import score_dask

    detector = pyod_ae_ext.load(ws / model)
    expected = local_scores(ws, model)
    frame = dd.from_pandas(_frame(), npartitions=4)
    np.testing.assert_allclose(score_dask(detector, frame, client=client).compute().to_numpy(), expected,
                               rtol=1e-6)
    with_ids = score_dask(detector, frame, id_columns=["id"]).compute()  # the current client
    assert with_ids["id"].tolist() == _frame()["id"].tolist()
    np.testing.assert_allclose(with_ids["score"].to_numpy(), expected, rtol=1e-6)
    array = da.from_array(_frame()[FEATURES].to_numpy(), chunks=(70, 2))
    np.testing.assert_allclose(score_dask(detector, array, client=client).compute(), expected, rtol=1e-6)


@needs_dask
@pytest.mark.parametrize("pattern", ["part-*.parquet", "part-*.csv"])
def test_cli_engine_dask_writes_what_the_local_engine_writes(client, ws, tmp_path, pattern):
    address = client.scheduler.address
    local = CliRunner().invoke(cli, ["score", "-m", str(ws / "ae.adscore"), "--id-column", "id",
                                     str(ws / "data.csv"), "-o", str(tmp_path / "local.parquet")])
    assert local.exit_code == 0, local.output
    result = CliRunner().invoke(cli, ["score", "--engine", "dask", "--scheduler", address, "-m",
                                      str(ws / "ae.adscore"), "--id-column", "id", str(ws / pattern), "-o",
                                      str(tmp_path / "dask.parquet")])
    assert result.exit_code == 0, result.output
    expected, got = pd.read_parquet(tmp_path / "local.parquet"), pd.read_parquet(tmp_path / "dask.parquet")
    assert got["id"].tolist() == expected["id"].tolist()
    np.testing.assert_allclose(got["anomaly_score"], expected["anomaly_score"], rtol=1e-6)
    assert got["is_anomaly"].tolist() == expected["is_anomaly"].tolist()
    top = CliRunner().invoke(cli, ["score", "--engine", "dask", "--scheduler", address, "-m", str(ws / "ae.adscore"),
                                   "--id-column", "id", "--top", 5, str(ws / pattern)])
    assert top.exit_code == 0, top.output
    assert pd.read_csv(pd.io.common.StringIO(top.stdout))["id"].tolist() == \
        expected.sort_values("anomaly_score", ascending=False, kind="stable")["id"].head(5).tolist()


@needs_dask
def test_cli_engine_dask_errors_are_one_line_and_leave_no_file(client, ws, tmp_path):
    frame = _frame()
    frame.loc[130, "c"] = np.nan
    frame.iloc[:120].to_parquet(tmp_path / "p0.parquet")
    frame.iloc[120:].to_parquet(tmp_path / "p1.parquet")
    out = tmp_path / "out.csv"
    args = ["score", "--engine", "dask", "--scheduler", client.scheduler.address, "-m", str(ws / "ae.adscore")]
    assert_clean_error(CliRunner().invoke(cli, [*args, str(tmp_path / "p*.parquet"), "-o", str(out)]),
                       "partition 1", "'c'", "row 10")
    assert not out.exists()
    assert_clean_error(CliRunner().invoke(cli, [*args, str(tmp_path / "none-*.csv")]), "no file matches")
    assert_clean_error(CliRunner().invoke(cli, ["score", "--engine", "dask", "--scheduler", client.scheduler.address,
                                                "-m", str(ws / "ecod.adscore"), str(ws / "part-*.parquet")]),
                       "ECOD", "local engine")


@needs_dask
def test_ensemble_members_fit_on_the_cluster_like_locally(client):
    from pyod_ae_ext.dask import joblib_on_dask

    X = _frame()[FEATURES].to_numpy()
    params = dict(detectors=("toll", "iforest"), detector_params={"toll": {"epochs": 2},
                                                                  "iforest": {"n_estimators": 10}},
                  random_state=0)
    local = Ensemble(**params, n_jobs=1).fit(X)
    with joblib_on_dask(client.scheduler.address):
        remote = Ensemble(**params, n_jobs=-1).fit(X)
    np.testing.assert_allclose(remote.decision_scores_, local.decision_scores_, rtol=1e-6)
    np.testing.assert_allclose(remote.decision_function(X), local.decision_function(X), rtol=1e-6)


def test_engine_dask_without_dask_is_one_error_line(ws, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    result = CliRunner().invoke(cli, ["score", "--engine", "dask", "-m", str(ws / "ae.adscore"),
                                      str(ws / "data.csv"), "-o", str(tmp_path / "s.csv")])
    assert_clean_error(result, "--engine dask needs Dask", 'pip install "pyod-ae-ext[dask]"')
    assert not (tmp_path / "s.csv").exists()
