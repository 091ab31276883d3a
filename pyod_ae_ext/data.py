"""Reading data for the command line: CSV (with header) and Parquet, files or stdin; images.

``.npy``/``.npz`` files and directories of PNG/JPEG files are images, read by
:mod:`pyod_ae_ext.images` (:func:`read_training_table`, :func:`read_scoring_table`
dispatch on the source).
"""
from __future__ import annotations

import csv
import io
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .columns import split_names, unused_columns_note
from .validation import as_feature_matrix
from .errors import DataError

PARQUET_SUFFIXES = (".parquet", ".pq")
_PARQUET_MAGIC = b"PAR1"
_MAGIC_BYTES = 16
# the command that decompresses each codec, for the advice in error messages
_DECOMPRESSORS = {"gzip": "gzip", "zstd": "zstd", "lz4": "lz4", "bz2": "bzip2", "xz": "xz"}


@dataclass
class Table:
    """Features ready for a detector, plus what rides along with them."""

    X: np.ndarray
    feature_names: list
    ids: pd.DataFrame | None
    labels: np.ndarray | None
    n_rows: int
    image_shape: tuple | None = None  # (C, H, W) of each row, for image data


def read_frame(source: str) -> pd.DataFrame:
    """Read ``source`` (a path, or ``-`` for stdin) into a DataFrame; CSV unless Parquet."""
    if source == "-":
        raw = sys.stdin.buffer.read()
        if not raw.strip():
            raise DataError("standard input is empty: pipe a CSV with a header row into `-`")
        if raw[:4] == _PARQUET_MAGIC:
            return _read_parquet(io.BytesIO(raw), "standard input")
        codec = compression_of(raw[:_MAGIC_BYTES])
        if codec is not None:
            raw = decompress(raw, codec, "standard input")
        return _read_csv(io.BytesIO(raw), "standard input")
    path = existing_file(source)
    if path.stat().st_size == 0:
        raise DataError(f"data file {source} is empty: expected a CSV with a header row, or Parquet")
    with open(path, "rb") as handle:
        head = handle.read(_MAGIC_BYTES)
    if head[:4] == _PARQUET_MAGIC or path.suffix.lower() in PARQUET_SUFFIXES:
        return _read_parquet(path, source)
    codec = compression_of(head)
    if codec is not None:
        return _read_csv(io.BytesIO(decompress(path.read_bytes(), codec, source)), source)
    return _read_csv(path, source)


def compression_of(head: bytes) -> str | None:
    """The codec whose magic number starts ``head`` (gzip, zstd, bz2, lz4 frame, xz), else None."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if head.startswith(b"\x04\x22\x4d\x18"):
        return "lz4"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if re.match(rb"BZh[1-9]\x31\x41\x59\x26\x53\x59", head):  # not a CSV header that starts "BZh"
        return "bz2"
    return None


def require_codec(codec: str, name: str) -> None:
    """Raise a :class:`DataError` with the fix when this pyarrow cannot decompress ``codec`` (xz: always can)."""
    if codec != "xz" and not _pyarrow_has_codec(codec):
        raise DataError(f"{name} is {codec}-compressed and this pyarrow cannot decompress {codec}; install a "
                        f"pyarrow built with it (pip install --upgrade pyarrow), or decompress it first: "
                        f"{_DECOMPRESSORS[codec]} -dc FILE | adscore ... -")


def _pyarrow_has_codec(codec: str) -> bool:
    import pyarrow as pa

    return pa.Codec.is_available(codec)


def decompress(raw: bytes, codec: str, name: str) -> bytes:
    """``raw`` decompressed with pyarrow's codec (the standard library's lzma for xz).

    pyarrow bundles gzip, bz2, zstd and lz4, so no extra package (``zstandard``, ``lz4``)
    is needed; a codec this pyarrow lacks, or data that does not decompress, is a
    :class:`DataError` saying what to do.
    """
    tool = _DECOMPRESSORS[codec]
    require_codec(codec, name)
    try:
        if codec == "xz":
            import lzma

            return lzma.decompress(raw)
        import pyarrow as pa

        with pa.input_stream(pa.py_buffer(raw), compression=codec) as stream:
            return stream.read()
    except Exception as exc:  # lzma.LZMAError, pyarrow's OSError/ArrowInvalid
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{name} looks {codec}-compressed but does not decompress ({detail}); "
                        f"check it with `{tool} -t`, or give the uncompressed CSV") from None


def _read_csv(handle, name) -> pd.DataFrame:
    try:
        frame = pd.read_csv(handle, compression=None)  # read_frame decompresses, by content not by name
    except pd.errors.EmptyDataError:
        raise DataError(f"{name} is empty: expected a CSV with a header row") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{name} is not a readable CSV file: {str(exc).strip().splitlines()[0]}") from None
    # pandas renames a repeated name ("a", "a" -> "a", "a.1"), so duplicates are read
    # from the header row itself.
    if hasattr(handle, "seek"):
        handle.seek(0)
    _check_unique_columns(_csv_header(handle), name)
    if frame.shape[0] == 0:
        raise DataError(f"{name} has a header but no data rows")
    return frame


def _csv_header(source) -> list:
    """The names in the first non-blank record of a CSV (quoting-aware, as pandas reads it)."""
    if isinstance(source, (str, Path)):
        handle = open(source, "rb")
    else:
        handle = source
    try:
        # utf-8-sig drops a byte-order mark, as pandas does; a quoted header may span lines
        text = io.TextIOWrapper(handle, encoding="utf-8-sig", errors="replace", newline="")
        try:
            for record in csv.reader(text):
                if any(cell.strip() for cell in record):
                    return record
            return []
        finally:
            text.detach()
    except csv.Error:
        return []  # pandas read it; leave any oddity to its result
    finally:
        if handle is not source:
            handle.close()


def _parquet_names(handle) -> list:
    """Column names from a Parquet file's schema (metadata only; pyarrow allows repeats, pandas then fails)."""
    try:
        import pyarrow.parquet as pq

        return list(pq.read_schema(handle).names)
    except Exception:  # unreadable: pandas says why below
        return []
    finally:
        if hasattr(handle, "seek"):
            handle.seek(0)


def _check_unique_columns(names, name) -> None:
    """Raise a DataError naming the column names that occur more than once (blank names aside)."""
    counts = Counter(str(n) for n in names if str(n).strip())
    repeated = [f"{n!r} ({k} times)" for n, k in counts.items() if k > 1]
    if repeated:
        raise DataError(f"{name} has duplicate column names: {', '.join(repeated)}; "
                        "give every column its own name")


def _read_parquet(handle, name) -> pd.DataFrame:
    _check_unique_columns(_parquet_names(handle), name)
    try:
        frame = pd.read_parquet(handle)
    except Exception as exc:
        raise DataError(f"{name} is not a readable Parquet file: {str(exc).strip().splitlines()[0]}") from None
    _check_unique_columns(frame.columns, name)
    if frame.shape[0] == 0:
        raise DataError(f"{name} has no data rows")
    return frame


def existing_file(source) -> Path:
    """The data file ``source`` as a Path; DataError when it is missing or not a regular file."""
    path = Path(source)
    if not path.exists():
        raise DataError(f"data file {source} does not exist")
    if not path.is_file():
        raise DataError(f"data file {source} is not a regular file (a folder or a device): give a data file, "
                        "or - for standard input")
    return path


def _check_present(frame, names, option):
    columns = set(map(str, frame.columns))
    missing = [n for n in names if n not in columns]
    if missing:
        raise DataError(f"{option} names column(s) not in the data: {', '.join(missing)}; "
                        f"available: {', '.join(map(str, frame.columns))}")


def select_training_table(frame: pd.DataFrame, columns=(), exclude=(), id_columns=(),
                          label_column=None) -> Table:
    """Pick feature columns for fitting: ``columns`` if given, else every column not excluded.

    Id and label columns are never features. Non-numeric feature columns are an error
    naming them, unless excluded.
    """
    frame = frame.rename(columns=str)
    columns, exclude, id_columns = split_names(columns), split_names(exclude), split_names(id_columns)
    for names, option in ((columns, "--columns"), (exclude, "--exclude"), (id_columns, "--id-column")):
        _check_present(frame, names, option)
    if label_column:
        _check_present(frame, [label_column], "--label-column")
    reserved = set(exclude) | set(id_columns) | ({label_column} if label_column else set())
    features = [c for c in (columns or frame.columns) if c not in reserved]
    if not features:
        raise DataError("no feature columns left after --columns/--exclude/--id-column")
    non_numeric = [c for c in features if not _is_numeric(frame[c])]
    if non_numeric:
        raise DataError(f"non-numeric column(s) {', '.join(non_numeric)}; exclude them with "
                        f"--exclude {','.join(non_numeric)} (or mark ids with --id-column)")
    return _table(frame, features, id_columns, label_column)


def select_scoring_table(frame: pd.DataFrame, feature_names, id_columns=(), label_column=None,
                         note=None, known_unused=()) -> Table:
    """Pick a model's features by name; missing ones are an error, extra ones are ignored.

    Extra columns are reported through ``note``, except ``known_unused`` ones (those the
    model was told to leave out when it was fitted).
    """
    frame = frame.rename(columns=str)
    id_columns = split_names(id_columns)
    _check_present(frame, id_columns, "--id-column")
    if label_column:
        _check_present(frame, [label_column], "--label-column")
    missing = [n for n in feature_names if n not in set(frame.columns)]
    if missing:
        raise DataError(f"the data lacks column(s) the model was fitted on: {', '.join(missing)}")
    message = unused_columns_note(frame.columns, [*feature_names, *id_columns, label_column], known_unused)
    if message and note is not None:
        note(message)
    non_numeric = [c for c in feature_names if not _is_numeric(frame[c])]
    if non_numeric:
        raise DataError(f"model feature column(s) {', '.join(non_numeric)} are not numeric in this data")
    return _table(frame, list(feature_names), id_columns, label_column)


def _table(frame, features, id_columns, label_column) -> Table:
    X = as_feature_matrix(frame[features], feature_names=features, what="the data")  # names <NA> cells
    ids = frame[id_columns].reset_index(drop=True) if id_columns else None
    labels = None
    if label_column:
        labels = binary_labels(frame[label_column], label_column)
    return Table(X, list(features), ids, labels, len(frame))


def binary_labels(series: pd.Series, name: str) -> np.ndarray:
    """The 0/1 values of the label column ``name`` as ints; DataError for missing or other values."""
    if series.isna().any():
        raise DataError(f"label column {name!r} has missing values")
    values = set(pd.unique(series))
    if not values <= {0, 1}:  # True and False compare equal to 1 and 0
        shown = ", ".join(map(repr, sorted(map(str, values))[:5]))
        raise DataError(f"label column {name!r} must hold 0 (normal) and 1 (anomaly), found {shown}")
    return series.to_numpy().astype(int)


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


# --------------------------------------------------------------------------
# any source: tables or images


def read_training_table(source, columns=(), exclude=(), id_columns=(), label_column=None,
                        image_shape=None) -> Table:
    """Features for fitting from ``source``: images (``.npy``, ``.npz``, a folder) or a table.

    ``image_shape`` ``(C, H, W)`` shapes flat rows (pixel columns of a table, a flat
    array) and must match image arrays and folders.
    """
    from .images import is_image_source, read_images

    if is_image_source(source):
        _refuse_column_options(columns, exclude, id_columns)
        return read_images(source, image_shape, label_column)
    table = select_training_table(read_frame(source), columns, exclude, id_columns, label_column)
    return _with_image_shape(table, image_shape)


def read_scoring_table(source, feature_names, id_columns=(), label_column=None, note=None,
                       image_shape=None, known_unused=(), columns=(), exclude=(), frame=None) -> Table:
    """A model's features from ``source``: images by shape, table columns by name.

    ``image_shape`` is the model's image shape, if it has one: images must have it.
    ``known_unused`` columns of a table are left out without a note; ``columns`` and
    ``exclude`` (already checked against the model's features) are refused for images.
    ``frame`` is the table of ``source`` when the caller has already read it.
    """
    from .images import is_image_source, pixel_names, read_images

    if frame is None and is_image_source(source):
        _refuse_column_options(columns, exclude, id_columns)
        channels = image_shape[0] if image_shape is not None else None
        table = read_images(source, image_shape, label_column, channels=channels)
        if table.X.shape[1] != len(feature_names):
            raise DataError(f"the images in {source} have {table.X.shape[1]} pixel values each, the model was "
                            f"fitted on {len(feature_names)} features")
        table.feature_names = list(feature_names)
        return table
    if frame is None:
        frame = read_frame(source)
    if image_shape is not None and list(feature_names) == pixel_names(image_shape) and \
            feature_names[0] not in set(map(str, frame.columns)):
        raise DataError(f"the model was fitted on images of {','.join(map(str, image_shape))} (C,H,W) and {source} "
                        "has no such pixel columns: give it images (.npy, .npz or a folder of images)")
    table = select_scoring_table(frame, feature_names, id_columns, label_column, note, known_unused)
    return _with_image_shape(table, image_shape)


def _refuse_column_options(columns, exclude, id_columns) -> None:
    used = [option for option, value in (("--columns", columns), ("--exclude", exclude),
                                         ("--id-column", id_columns)) if value]
    if used:
        raise DataError(f"image data (.npy, .npz, a folder of images) have no columns to select: drop "
                        f"{' and '.join(used)}")


def _with_image_shape(table: Table, image_shape) -> Table:
    if image_shape is not None:
        if int(np.prod(image_shape)) != table.X.shape[1]:
            raise DataError(f"image shape {','.join(map(str, image_shape))} holds {int(np.prod(image_shape))} "
                            f"pixel values but the data have {table.X.shape[1]} feature columns")
        table.image_shape = tuple(int(s) for s in image_shape)
    return table
