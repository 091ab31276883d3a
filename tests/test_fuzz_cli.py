"""Property: whatever bytes arrive as CSV, `adscore` exits 0, or 2 with one `Error:` line.

Never another exit status, never a traceback. Bounded for CI (a few hundred examples in
all); set ADSCORE_FUZZ_EXAMPLES to run longer locally.
"""
import os

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from pyod_ae_ext.cli import cli

EXAMPLES = int(os.environ.get("ADSCORE_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

CELLS = st.one_of(
    st.integers(-10**6, 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "nan", "NaN", "inf", "-inf", "1e308", "1e-320", "1e400", "-0", "0x10", "1,5",
                     "TRUE", "false", "None", "NULL", "\"3\"", "'4'", " 5 ", "é", "\x00", "a\"b", "\"x\ny\""]),
    st.text(max_size=6),
)
NAMES = st.one_of(st.sampled_from(["a", "b", "c", "d", "id", "label", "", " a", "a,b", "\"q\""]),
                  st.text(max_size=4))


@st.composite
def csv_like(draw):
    """Mostly table-shaped text (sometimes ragged), sometimes raw bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    if draw(st.booleans()):  # the model's own columns, so that scoring gets past the header
        header = ["a", "b"] + draw(st.lists(NAMES, max_size=2))
    else:
        header = draw(st.lists(NAMES, min_size=1, max_size=5))
    n_columns = len(header)
    rows = draw(st.lists(st.lists(CELLS, min_size=max(1, n_columns - 1), max_size=n_columns + 1),
                         max_size=12))
    separator = draw(st.sampled_from([",", ",", ",", ";", "\t"]))
    lines = [separator.join(header)] + [separator.join(row) for row in rows]
    ending = draw(st.sampled_from(["\n", "\r\n", ""]))
    return ("\n".join(lines) + ending).encode("utf-8", errors="surrogatepass")


@pytest.fixture(scope="module")
def forest_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    rng = np.random.RandomState(0)
    data = folder / "train.csv"
    pd.DataFrame(rng.normal(size=(60, 2)), columns=["a", "b"]).to_csv(data, index=False)
    model = folder / "forest.adscore"
    result = CliRunner().invoke(cli, ["fit", "-d", "iforest", "-p", "n_estimators=5", "--seed", "0", str(data),
                                      "-o", str(model)])
    assert result.exit_code == 0, result.output
    return model


def assert_exit_0_or_one_error_line(result):
    assert result.exit_code in (0, 2), (result.exit_code, result.output, result.exception)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"uncaught {type(result.exception).__name__}: {result.exception}")
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
        assert len(errors) == 1, result.stderr


@FUZZ
@given(payload=csv_like())
def test_fit_never_crashes_on_random_csv(payload, tmp_path):
    model = tmp_path / "fuzz.adscore"
    result = CliRunner().invoke(cli, ["fit", "-d", "iforest", "-p", "n_estimators=5", "-", "-o", str(model)],
                                input=payload)
    assert_exit_0_or_one_error_line(result)
    if result.exit_code == 2:
        assert not model.exists()
    model.unlink(missing_ok=True)


@FUZZ
@given(payload=csv_like())
def test_score_never_crashes_on_random_csv(payload, forest_model):
    result = CliRunner().invoke(cli, ["score", "-m", str(forest_model), "-"], input=payload)
    assert_exit_0_or_one_error_line(result)
