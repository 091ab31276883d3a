"""Compressed CSV (gzip, bz2, xz, zstd, lz4) for `fit` (the eager reader) and `score` (the streaming one).

The codec is recognised by the file's first bytes, never by its name, and decompressed
with pyarrow's bundled codecs (the standard library's lzma for xz), so no extra package
(`zstandard`, `lz4`) is needed.
"""
from __future__ import annotations

import bz2
import gzip
import io
import lzma

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from helpers import assert_clean_error

from pyod_ae_ext.cli import cli
from pyod_ae_ext.persistence import load_detector


def _pyarrow_compress(codec):
    def compress(raw: bytes) -> bytes:
        sink = pa.BufferOutputStream()
        with pa.CompressedOutputStream(sink, codec) as out:
            out.write(raw)
        return sink.getvalue().to_pybytes()
    return compress


COMPRESSORS = {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress,
               "zst": _pyarrow_compress("zstd"), "lz4": _pyarrow_compress("lz4")}


@pytest.fixture
def raw_csv():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    frame.insert(0, "id", range(200))
    return frame.to_csv(index=False).encode()


def _fit(runner, source, model, stdin=None):
    return runner.invoke(cli, ["fit", "-d", "pca", "--id-column", "id", str(source), "-o", str(model)],
                         input=stdin)


@pytest.mark.parametrize("suffix", sorted(COMPRESSORS))
def test_fit_and_score_read_every_codec_from_files_and_stdin(suffix, raw_csv, runner, tmp_path):
    plain, packed = tmp_path / "data.csv", tmp_path / f"data.csv.{suffix}"
    plain.write_bytes(raw_csv)
    packed.write_bytes(COMPRESSORS[suffix](raw_csv))
    assert _fit(runner, plain, tmp_path / "plain.adscore").exit_code == 0
    expected = load_detector(tmp_path / "plain.adscore").decision_scores_
    for source, stdin in ((packed, None), ("-", packed.read_bytes())):
        result = _fit(runner, source, tmp_path / "packed.adscore", stdin)
        assert result.exit_code == 0, result.output
        np.testing.assert_array_equal(load_detector(tmp_path / "packed.adscore").decision_scores_, expected)
        scored = runner.invoke(cli, ["score", "-m", str(tmp_path / "plain.adscore"), "--id-column", "id",
                                     str(source)], input=stdin)
        assert scored.exit_code == 0, scored.output
        scores = pd.read_csv(io.StringIO(scored.stdout))
        assert scores["id"].tolist() == list(range(200))
        np.testing.assert_allclose(scores["score"], expected, rtol=1e-12)


def test_a_misleading_suffix_does_not_matter(raw_csv, runner, tmp_path):
    (tmp_path / "plain.csv.gz").write_bytes(raw_csv)  # named .gz, not compressed
    (tmp_path / "packed.csv").write_bytes(gzip.compress(raw_csv))  # compressed, named .csv
    for name in ("plain.csv.gz", "packed.csv"):
        result = _fit(runner, tmp_path / name, tmp_path / "m.adscore")
        assert result.exit_code == 0, result.output


@pytest.mark.parametrize("suffix", sorted(COMPRESSORS))
def test_a_truncated_compressed_file_is_one_clear_error(suffix, raw_csv, runner, tmp_path):
    packed = COMPRESSORS[suffix](raw_csv * 20)
    broken = tmp_path / f"broken.csv.{suffix}"
    broken.write_bytes(packed[:len(packed) // 2])
    result = _fit(runner, broken, tmp_path / "m.adscore")
    assert_clean_error(result, "broken.csv", "does not decompress")
    assert not (tmp_path / "m.adscore").exists()
    (tmp_path / "data.csv").write_bytes(raw_csv)
    assert _fit(runner, tmp_path / "data.csv", tmp_path / "m.adscore").exit_code == 0
    scored = runner.invoke(cli, ["score", "-m", str(tmp_path / "m.adscore"), str(broken), "-o",
                                 str(tmp_path / "s.csv")])
    assert_clean_error(scored, "broken.csv")
    assert not (tmp_path / "s.csv").exists()


def test_a_codec_missing_from_pyarrow_is_one_error_with_the_fix(raw_csv, runner, tmp_path, monkeypatch):
    # No pyarrow build without zstd is at hand, so its answer is replaced.
    from pyod_ae_ext import data

    monkeypatch.setattr(data, "_pyarrow_has_codec", lambda codec: codec != "zstd")
    (tmp_path / "data.csv.zst").write_bytes(COMPRESSORS["zst"](raw_csv))
    (tmp_path / "data.csv").write_bytes(raw_csv)
    assert _fit(runner, tmp_path / "data.csv", tmp_path / "m.adscore").exit_code == 0
    fix = ("zstd-compressed", "pip install --upgrade pyarrow", "zstd -dc FILE | adscore")
    for source, stdin in ((tmp_path / "data.csv.zst", None), ("-", (tmp_path / "data.csv.zst").read_bytes())):
        assert_clean_error(_fit(runner, source, tmp_path / "new.adscore", stdin), *fix)
        scored = runner.invoke(cli, ["score", "-m", str(tmp_path / "m.adscore"), str(source), "-o",
                                     str(tmp_path / "s.csv")], input=stdin)
        assert_clean_error(scored, *fix)
    assert not (tmp_path / "new.adscore").exists() and not (tmp_path / "s.csv").exists()
