"""Extreme and degenerate values (issue 9): robust scaling, overflow-free statistics,
extreme rows at scoring, dtypes of the Python API and duplicate CSV column names."""
import io
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import pyod_ae_ext
from pyod_ae_ext import engine
from pyod_ae_ext.data import read_frame
from pyod_ae_ext.engine import INPUT_BOUND, as_feature_matrix, column_statistics
from pyod_ae_ext.errors import DataError, TrainingError
from pyod_ae_ext.plugins.autoencoder import AutoEncoder

FAMILIES = ["ae", "toll", "rdae-l1", "rdae-l21", "vae", "ksparse-ae", "deep-ocsvm", "deep-svdd"]
# Scores that grow without bound as a value moves away: an extreme row gets the top score.
# AE-1SVM's score is bounded (tanh code, cosine features): finite, but not always flagged.
UNBOUNDED = [f for f in FAMILIES if f != "deep-ocsvm"]
EXTREMES = [1e30, 1e200, 1e308, -1e308]


def quick(name, **params):
    """A small, seeded detector of family ``name`` that fits in well under a second."""
    if name.startswith("rdae"):
        params = {"outer_iterations": 3, "inner_epochs": 3, **params}
    else:
        params = {"epochs": 10, **params}
    return pyod_ae_ext.make_detector(name, random_state=0, n_members=1, **params)


@pytest.fixture(scope="module")
def gaussian():
    rng = np.random.default_rng(0)
    return rng.normal(size=(300, 5)), rng.normal(size=(40, 5))


@pytest.fixture(scope="module")
def fitted(gaussian):
    train, _ = gaussian
    return {name: quick(name).fit(train) for name in FAMILIES}


# --- 1. robust feature scaling ---------------------------------------------------


def test_a_column_that_barely_varied_cannot_dominate_the_scores(gaussian):
    train, test = gaussian
    rng = np.random.default_rng(1)
    train = np.column_stack([train, 5 + 1e-9 * rng.normal(size=len(train))])
    test = np.column_stack([test, np.full(len(test), 5.0)])
    detector = AutoEncoder(n_members=1, epochs=10, random_state=0).fit(train)
    # the floor: a tenth of the median feature's standard deviation, not 1e-9
    assert detector.scaler_scale_[-1] == pytest.approx(0.1 * np.median(train.std(axis=0)))
    moved = test.copy()
    moved[:, -1] = 6.0  # every new row differs by 1 in the near-constant column
    scores, clean = detector.decision_function(moved), detector.decision_function(test)
    assert np.isfinite(scores).all()
    # before the floor: ~4e18 for every row; now the column adds (1 / 0.1)^2 = 100-ish per row
    assert scores.max() < 1e3
    assert (scores - clean).min() > 10  # still noticed: a value the column never had
    one = test.copy()
    one[3, -1] = 6.0
    assert detector.predict(one)[3] == 1


def test_gaussian_features_keep_their_standard_deviation(gaussian):
    train, _ = gaussian
    _, scale = engine._standardisation(train * [0.5, 1, 2, 5, 100] + [1, -2, 0, 10, 1e4])
    np.testing.assert_allclose(scale, train.std(axis=0) * [0.5, 1, 2, 5, 100], rtol=1e-12)


def test_scaling_is_unit_free_for_ordinary_features(gaussian):
    """Changing a feature's units (x 1000, + 1e6) changes no standardised value."""
    train, test = gaussian
    detector = AutoEncoder(n_members=1, epochs=1, random_state=0).fit(train)
    def rescaled(X):
        return X * [1, 1000, 1, 1, 1] + [0, 1e6, 0, 0, 0]

    other = AutoEncoder(n_members=1, epochs=1, random_state=0).fit(rescaled(train))
    np.testing.assert_allclose(other._to_tensor(rescaled(test)).cpu().numpy(),
                               detector._to_tensor(test).cpu().numpy(), rtol=1e-5, atol=1e-5)


def test_sparse_feature_is_scaled_by_its_spread_like_its_peers():
    """A rarely active feature (a rarely inked pixel) is not amplified by its tiny std."""
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(1000, 6))
    X[:, 5] = 0.0
    X[rng.choice(1000, 10, replace=False), 5] = rng.uniform(0.5, 1.0, size=10)
    mean, scale = engine._standardisation(X)
    std = X.std(axis=0)
    assert np.all(scale >= std)
    high, low = engine._second_extremes(X)
    fill = std / ((high - low) / 2)
    q = np.quantile(fill, engine.SCALE_FLOOR_FILL) / engine.SCALE_FLOOR_FILL_TOLERANCE
    assert scale[5] == pytest.approx(q * (high[5] - low[5]) / 2)
    np.testing.assert_array_equal(scale[:5], std[:5])  # evenly filled features keep their std
    # an active value standardises to a few units (about 2 / q at most), not to ~10 stds
    assert (X[:, 5].max() - mean[5]) / scale[5] < 2 / q + 1
    assert (X[:, 5].max() - mean[5]) / std[5] > 8


def test_one_extreme_training_value_does_not_set_the_spread():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    _, plain = engine._standardisation(X)
    X[17, 2] = 1e200
    _, scale = engine._standardisation(X)
    assert scale[2] == pytest.approx(column_statistics(X)[1][2], rel=1e-12)  # the std, no floor from 1e200
    np.testing.assert_array_equal(scale[[0, 1, 3]] > 0, True)
    assert np.isfinite(scale).all()
    assert np.allclose(scale[[0, 1, 3]], plain[[0, 1, 3]], rtol=0.5)


def test_second_extremes_count_ties():
    X = np.array([[1.0, 5.0], [3.0, 5.0], [2.0, 0.0], [3.0, 7.0], [0.0, 7.0]])
    high, low = engine._second_extremes(X)
    np.testing.assert_array_equal(high, [3.0, 7.0])  # the top value occurs twice: it is also second
    np.testing.assert_array_equal(low, [1.0, 5.0])
    sorted_ = np.sort(X, axis=0)
    np.testing.assert_array_equal(high, sorted_[-2])
    np.testing.assert_array_equal(low, sorted_[1])


def test_all_constant_features_keep_scale_one():
    mean, scale = engine._standardisation(np.full((10, 3), 4.0))
    np.testing.assert_array_equal(scale, 1.0)
    np.testing.assert_array_equal(mean, 4.0)


# --- 2. statistics without overflow ------------------------------------------------


@pytest.mark.parametrize("value", [1e155, 1e200, 1e308, -1e308])
def test_statistics_do_not_overflow(value):
    X = np.random.default_rng(0).normal(size=(100, 3))
    X[5, 1] = value
    X[6, 2] = 1.7e308
    X[7, 2] = 1.7e308
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning either
        mean, std = column_statistics(X)
        _, scale = engine._standardisation(X)
    assert np.isfinite(mean).all() and np.isfinite(std).all() and np.isfinite(scale).all()
    exact = X[:, 1] / abs(value)
    assert mean[1] == pytest.approx(exact.mean() * abs(value), rel=1e-12)
    assert std[1] == pytest.approx(exact.std() * abs(value), rel=1e-12)
    assert std[1] > 0 and std[2] > 0
    # columns that do not overflow keep numpy's result bit for bit
    with np.errstate(all="ignore"):
        plain_mean, plain_std = X.mean(axis=0), X.std(axis=0)
    assert mean[0] == plain_mean[0] and std[0] == plain_std[0]


@pytest.mark.parametrize("value", [1e200, 1e308, -1e308])
@pytest.mark.parametrize("name", FAMILIES)
def test_a_training_row_with_an_extreme_value_is_scored_and_flagged(gaussian, name, value):
    train = gaussian[0].copy()
    train[17, 2] = value
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        detector = quick(name).fit(train)
    assert np.isfinite(detector.decision_scores_).all()
    if name in UNBOUNDED:  # AE-1SVM's bounded score flags even a 17-sigma row by chance (see its Notes)
        assert detector.labels_[17] == 1  # default contamination 0.1
        assert detector.decision_scores_[17] == detector.decision_scores_.max()


# --- 3. extreme values at scoring ----------------------------------------------------


@pytest.mark.parametrize("name", FAMILIES)
def test_an_extreme_row_does_not_fail_or_change_the_batch(fitted, gaussian, name):
    detector = fitted[name]
    test = gaussian[1]
    clean = detector.decision_function(test)
    others = np.arange(len(test)) != 7
    for value in EXTREMES:
        batch = test.copy()
        batch[7, 2] = value
        scores = detector.decision_function(batch)
        assert np.isfinite(scores).all(), (name, value)
        # a row's score never depends on the rows scored with it
        np.testing.assert_array_equal(scores[others], clean[others])
        if name in UNBOUNDED:
            assert scores[7] > 1e3 * clean.max(), (name, value)
            assert detector.predict(batch)[7] == 1


@pytest.mark.parametrize("name", FAMILIES)
def test_scores_unchanged_when_another_row_is_1e300(fitted, gaussian, name):
    """The property only a per-row computation has: a 1e300 elsewhere changes nothing."""
    detector = fitted[name]
    test = gaussian[1]
    batch = np.vstack([test, np.full((1, test.shape[1]), 1e300)])
    scores = detector.decision_function(batch)
    np.testing.assert_array_equal(scores[:-1], detector.decision_function(test))
    assert np.isfinite(scores[-1])
    # and each row alone scores as in the batch
    np.testing.assert_allclose(detector.decision_function(test[3:4]), scores[3:4], rtol=1e-6)


def test_inputs_are_clipped_to_the_documented_bound(fitted, gaussian):
    detector = fitted["ae"]
    batch = gaussian[1].copy()
    batch[0, 0], batch[1, 1] = 1e308, -1e308
    x = detector._to_tensor(batch)
    assert float(x[0, 0]) == pytest.approx(INPUT_BOUND)
    assert float(x[1, 1]) == pytest.approx(-INPUT_BOUND)
    assert np.isfinite(detector.feature_contributions(batch)).all()


def test_the_learning_rate_advice_is_kept_for_real_divergence(gaussian):
    with pytest.raises(TrainingError, match="lower the learning rate"):
        AutoEncoder(n_members=1, lr=1e30, epochs=3, random_state=0).fit(gaussian[0])


def test_unstandardised_raw_values_beyond_the_bound_are_a_data_error(gaussian):
    train = gaussian[0].copy()
    train[4, 1] = 3e7
    with pytest.raises(DataError, match=r"3e\+07 in feature 'column 1' at row 4.*standardize=True"):
        AutoEncoder(n_members=1, epochs=1, standardize=False).fit(train)


# --- 4. dtypes in the Python API -------------------------------------------------------


def frame(**extra):
    base = pd.DataFrame({"x": [0.1, 0.5, -0.3, 1.2, 0.7, -1.1], "y": [1.0, 2.0, 0.5, 1.5, 0.2, 0.9]})
    for name, values in extra.items():
        base[name] = values
    return base


@pytest.mark.parametrize("dtype", ["string", "str"])
def test_text_columns_are_refused_by_name(dtype):
    with pytest.raises(DataError, match=r"non-numeric column\(s\) label \(") as info:
        as_feature_matrix(frame(label=pd.array(list("abcdef"), dtype=dtype)))
    assert "label" in str(info.value)


@pytest.mark.parametrize("values", [
    pd.array([1.0, 2.0, None, 4.0, 5.0, 6.0], dtype="Float64"),
    pd.array([1, 2, None, 4, 5, 6], dtype="Int64"),
    pd.array([True, False, None, True, False, True], dtype="boolean"),
])
def test_nullable_columns_with_na_name_the_column_and_row(values):
    with pytest.raises(DataError, match=r"missing value \(<NA>\) in feature 'n' at row 2"):
        AutoEncoder(n_members=1, epochs=1).fit(frame(n=values))


def test_nullable_columns_without_na_are_accepted():
    nullable = frame(a=pd.array([1, 2, 3, 4, 5, 6], dtype="Int64"),
                     b=pd.array([0.5, 1.5, 2.5, 3.5, 4.5, 5.5], dtype="Float64"),
                     c=pd.array([True, False, True, True, False, True], dtype="boolean"))
    plain = nullable.astype({"a": "int64", "b": "float64", "c": "bool"})
    np.testing.assert_array_equal(as_feature_matrix(nullable), as_feature_matrix(plain))
    detector = AutoEncoder(n_members=1, epochs=2, random_state=0).fit(nullable)
    np.testing.assert_array_equal(detector.decision_function(nullable),
                                  AutoEncoder(n_members=1, epochs=2, random_state=0).fit(plain).decision_function(plain))


def test_object_arrays_of_numbers_are_converted():
    numeric = np.random.default_rng(0).normal(size=(20, 3))
    cells = numeric.astype(object)
    cells[0, 0], cells[1, 1], cells[2, 2] = 3, np.float32(0.5), True
    expected = numeric.copy()
    expected[0, 0], expected[1, 1], expected[2, 2] = 3.0, 0.5, 1.0
    np.testing.assert_array_equal(as_feature_matrix(cells), expected)
    fitted = AutoEncoder(n_members=1, epochs=2, random_state=0).fit(cells)
    np.testing.assert_array_equal(fitted.decision_scores_,
                                  AutoEncoder(n_members=1, epochs=2, random_state=0).fit(expected).decision_scores_)
    as_frame = pd.DataFrame({"a": numeric[:, 0].astype(object), "b": numeric[:, 1]})
    np.testing.assert_array_equal(as_feature_matrix(as_frame), numeric[:, :2])


@pytest.mark.parametrize("cell, message", [
    ("abc", r"non-numeric value 'abc' \(str\) in feature 'column 1' at row 4"),
    (None, r"missing value \(None\) in feature 'column 1' at row 4"),
])
def test_object_arrays_name_the_first_bad_cell(cell, message):
    cells = np.zeros((6, 3), dtype=object)
    cells[4, 1] = cell
    cells[5, 2] = "later"
    with pytest.raises(DataError, match=message):
        AutoEncoder(n_members=1, epochs=1).fit(cells)


# --- 5. duplicate column names --------------------------------------------------------


def test_duplicate_csv_column_names_are_an_error(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text('a,b,"c,d",a,"c,d",e\n1,2,3,4,5,6\n')
    with pytest.raises(DataError, match=r"duplicate column names: 'a' \(2 times\), 'c,d' \(2 times\)"):
        read_frame(str(path))


def test_names_that_only_look_mangled_are_fine(tmp_path):
    path = tmp_path / "ok.csv"
    path.write_text('\ufeffa,a.1,"multi\nline",b\n1,2,3,4\n', encoding="utf-8")
    assert list(read_frame(str(path)).columns) == ["a", "a.1", "multi\nline", "b"]


def test_duplicate_names_on_standard_input(monkeypatch):
    stdin = io.TextIOWrapper(io.BytesIO(b"x,y,x\n1,2,3\n"))
    monkeypatch.setattr(sys, "stdin", stdin)
    with pytest.raises(DataError, match=r"standard input has duplicate column names: 'x' \(2 times\)"):
        read_frame("-")


def test_duplicate_parquet_column_names_are_an_error(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table([pa.array([1.0, 2.0]), pa.array([3.0, 4.0])], names=["a", "a"])
    pq.write_table(table, tmp_path / "dup.parquet")
    with pytest.raises(DataError, match=r"duplicate column names: 'a' \(2 times\)"):
        read_frame(str(tmp_path / "dup.parquet"))


def test_the_benchmark_candidate_reproduces_the_shipped_rule(monkeypatch):
    """benchmarks/robust_scaling.py's ``pool:0.1+fqd:1.5`` is the engine's rule (RESULTS.md relies on it)."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    from benchmarks.robust_scaling import make_rule

    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, 8)) * [1, 10, 0.001, 1, 1, 1, 3, 1]
    X[:, 3] = 5 + 1e-9 * rng.normal(size=500)
    X[:, 4] = 0.0
    X[::50, 4] = 3.0
    X[:, 5] = 7.0
    X[:, 6] = rng.standard_t(2, size=500)
    mean, scale = engine._standardisation(X)
    expected_mean, expected_scale = make_rule("pool:0.1+fqd:1.5")(X)
    np.testing.assert_array_equal(scale, expected_scale)
    np.testing.assert_array_equal(mean, expected_mean)
