"""Scoring data larger than memory: tables read in record batches, results written as they come.

``adscore score`` reads its input with pyarrow's streaming readers
(:func:`pyarrow.csv.open_csv`, :meth:`pyarrow.parquet.ParquetFile.iter_batches`), turns
each batch of rows into a float64 matrix, scores it and appends the results to the
output, so memory stays flat however long the input is:

- :func:`open_source` opens a CSV file (plain, gzip, zstd, bz2, lz4 or xz compressed,
  detected from the first bytes), a Parquet file or standard input;
- :func:`scoring_columns` / :func:`training_columns` apply the column rules of
  :mod:`pyod_ae_ext.data` to the header;
- :func:`iter_batches` yields :class:`Batch` es of ``batch_rows`` rows (features as a
  finite float64 matrix, id columns as an Arrow table, the global index of the first
  row); a bad cell in any batch is a :class:`~pyod_ae_ext.errors.DataError` naming
  the column and the global row (0-based data rows, as ``adscore fit`` counts them);
- :func:`score_batches` scores them, :func:`write_results` writes CSV, JSON lines or
  Parquet through one writer into a temporary file that replaces the output only when
  every row is written (:func:`pyod_ae_ext.outputs.streamed_output`), keeping only a
  running top N with ``--top``;
- :func:`reservoir_sample` draws a seeded uniform sample of rows in one pass
  (``adscore fit --sample``).

The detectors score rows independently, so batch scores equal whole-table scores bit
for bit; PyOD's ECOD and COPOD are the exception (they rank new rows against each
other), and :func:`score_batches` scores them in one batch.
"""
from __future__ import annotations

import contextlib
import csv
import functools
import io
import os
import queue
import re
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

import numpy as np

from .columns import split_names, unused_columns_note
from .data import _check_unique_columns, compression_of, existing_file, require_codec
from .errors import AdscoreError, DataError, ParameterError
from .validation import check_number

BATCH_ROWS = 1 << 16
"""Rows per batch: a multiple of the engine's scoring batches, ~16 MiB at 32 features."""

PARQUET_SUFFIXES = (".parquet", ".pq")
_PARQUET_MAGIC = b"PAR1"
_CSV_BLOCK_BYTES = 1 << 20
_MIN_TAIL_ROWS = 1024
_TRANSPOSE_ROWS = 4096
_PARQUET_BUFFER_BYTES = 1 << 20
_HEADER_CHUNK_BYTES = 1 << 16
# pandas.read_csv's default missing-value markers, so that a cell means what it means to `adscore fit`.
NA_VALUES = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
             "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
# A cell with blanks beside a delimiter ("1, 2"): pandas reads it as a number, pyarrow's
# float parser does not, so such files are read as text and trimmed (see CsvSource).
_PADDED_CELL = re.compile(rb"(?:^|,)[ \t]+[^ \t,\r\n]|[^ \t,\r\n][ \t]+(?:,|\r?$)", re.MULTILINE)
_CONVERSION_ERROR = re.compile(r"column #(\d+): Row #(\d+): CSV conversion error to \w+: invalid value '(.*)'\s*$",
                               re.DOTALL)
_FIELD_COUNT_ERROR = re.compile(r"Row #(\d+): Expected (\d+) columns, got (\d+)")


def _decompressing(raw, codec: str, name: str):
    """``raw`` read through a decompressor: pyarrow's codecs natively, xz through the standard library."""
    import pyarrow as pa

    require_codec(codec, name)

    if codec == "xz":
        import lzma

        return pa.PythonFile(lzma.LZMAFile(raw), mode="r")
    return pa.CompressedInputStream(raw, codec)


# --------------------------------------------------------------------------
# batches


@dataclass
class Batch:
    """Rows of a table ready for a detector.

    Attributes
    ----------
    X : ndarray of shape (n_rows, n_features), float64, C-contiguous and finite
    ids : pyarrow.Table or None
        The id columns of the same rows (text as in a CSV file, typed as in Parquet).
    start : int
        Global index of the first row (0-based data rows of the whole input).
    """

    X: np.ndarray
    ids: object
    start: int

    def __len__(self) -> int:
        return self.X.shape[0]


@dataclass
class Scored:
    """Scores of consecutive rows starting at global row ``start``, with their ids."""

    ids: object
    scores: np.ndarray
    start: int


def iter_batches(source, features, id_columns=(), batch_rows=BATCH_ROWS, purpose="score"):
    """Yield :class:`Batch` es of ``batch_rows`` rows from ``source`` (the last holds what is left).

    Parameters
    ----------
    source : CsvSource or ParquetSource, from :func:`open_source`
    features : list of str
        Feature columns, in the order of the matrix columns.
    id_columns : list of str
        Columns copied to :attr:`Batch.ids` (already checked by :func:`scoring_columns`).
    batch_rows : int
    purpose : {"score", "fit"}
        Chooses the advice in the message for a non-numeric column.

    Raises
    ------
    DataError
        A non-numeric cell, NaN or infinity (naming the column and global row), an
        unreadable file, or a header without rows.
    """
    import pyarrow as pa

    ids = list(dict.fromkeys(split_names(id_columns)))
    start = 0
    for table in _rechunk(source.record_batches(features, ids, purpose, batch_rows), batch_rows, pa):
        X = _feature_matrix(source, table, features, start, purpose)
        yield Batch(X, table.select(ids) if ids else None, start)
        start += X.shape[0]
    if start == 0:
        raise DataError(source.no_rows_message)


def _rechunk(record_batches, rows, pa):
    """Arrow tables of ``rows`` rows from record batches of any size; the last one has what is left.

    A short remainder (under ``min(rows, 1024)`` rows) joins the last full table instead
    of standing alone: torch multiplies matrices of a few rows with other kernels,
    whose last bits differ, and a whole-table run has no such tiny batch unless the
    engine's own chunking makes one, in the same place as here when ``rows`` is a
    multiple of the engine's scoring chunk (as the default is).
    """
    min_tail = min(_MIN_TAIL_ROWS, rows)
    pending, count = [], 0
    for batch in record_batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        count += batch.num_rows
        while count >= rows + min_tail:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(pending)


def _feature_matrix(source, table, features, start, purpose) -> np.ndarray:
    """The feature columns of ``table`` as a C-contiguous float64 matrix, refusing NaN and infinity."""
    import pyarrow as pa

    n_rows = table.num_rows
    # Columns are copied whole into the rows of a transposed buffer, then transposed in
    # cache-sized blocks: 4x faster than writing each column with a stride.
    columns = np.empty((len(features), n_rows), dtype=np.float64)
    for j, name in enumerate(features):
        column = table.column(name)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = _parse_padded_numbers(column, name, start, purpose)
        elif column.type != pa.float64():
            column = column.cast(pa.float64())
        offset = 0
        for chunk in column.chunks:
            columns[j, offset:offset + len(chunk)] = chunk.to_numpy(zero_copy_only=False)  # nulls -> NaN
            offset += len(chunk)
    X = np.empty((n_rows, len(features)), dtype=np.float64)
    for block in range(0, n_rows, _TRANSPOSE_ROWS):
        X[block:block + _TRANSPOSE_ROWS] = columns[:, block:block + _TRANSPOSE_ROWS].T
    _check_finite(X, features, start)
    return X


def _parse_padded_numbers(column, name, start, purpose):
    """Text cells with blanks around numbers (" 1.5 ") as float64, as pandas reads them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    trimmed = pc.utf8_trim_whitespace(column)
    try:
        return pc.cast(trimmed, pa.float64())
    except (pa.ArrowInvalid, ValueError):
        import pandas as pd

        text = trimmed.to_numpy(zero_copy_only=False)
        parsed = pd.to_numeric(pd.Series(text), errors="coerce").to_numpy()
        bad = np.flatnonzero(np.isnan(parsed) & pd.notna(text) & ~np.isin(text, NA_VALUES))
        value = text[bad[0]] if bad.size else "?"
        row = start + int(bad[0]) if bad.size else None
        raise non_numeric_error(name, value, row, purpose) from None


def _check_finite(X: np.ndarray, features, start: int) -> None:
    """Raise the engine's NaN/infinity message with the global row number."""
    finite = np.isfinite(X)
    if finite.all():
        return
    rows, cols = np.nonzero(~finite)
    others = len(np.unique(cols)) - 1
    more = f" (and {others} other column(s))" if others else ""
    raise DataError(f"the data contains {X[rows[0], cols[0]]} in feature {features[cols[0]]!r} at row "
                    f"{start + rows[0]}{more}; remove or impute non-finite values first")


def non_numeric_error(column, value, row, purpose) -> DataError:
    """The message for a cell that is not a number, worded for scoring or fitting."""
    where = f"{value!r} at row {row}" if row is not None else f"{value!r}"
    if purpose == "fit":
        return DataError(f"non-numeric column(s) {column} ({where}); exclude them with --exclude {column} "
                         "(or mark ids with --id-column)")
    return DataError(f"model feature column(s) {column} are not numeric in this data: {where} is not a "
                     "number; fix that value or remove the row")


# --------------------------------------------------------------------------
# column selection (the rules of pyod_ae_ext.data, applied to a header)


def _check_present(columns, names, option) -> None:
    missing = [n for n in names if n not in set(columns)]
    if missing:
        raise DataError(f"{option} names column(s) not in the data: {', '.join(missing)}; "
                        f"available: {', '.join(columns)}")


def scoring_columns(columns, feature_names, id_columns=(), note=None, known_unused=()) -> list:
    """The id columns to copy; checks the header as :func:`pyod_ae_ext.data.select_scoring_table` does.

    Missing model features are an error, unused columns (``known_unused`` aside) are
    reported through ``note``.
    """
    ids = split_names(id_columns)
    _check_present(columns, ids, "--id-column")
    present = set(columns)
    missing = [n for n in feature_names if n not in present]
    if missing:
        raise DataError(f"the data lacks column(s) the model was fitted on: {', '.join(missing)}")
    message = unused_columns_note(columns, [*feature_names, *ids], known_unused)
    if message and note is not None:
        note(message)
    return ids


def training_columns(columns, select=(), exclude=(), id_columns=()) -> list:
    """Feature columns for fitting, as :func:`pyod_ae_ext.data.select_training_table` chooses them."""
    select, exclude, ids = split_names(select), split_names(exclude), split_names(id_columns)
    for names, option in ((select, "--columns"), (exclude, "--exclude"), (ids, "--id-column")):
        _check_present(columns, names, option)
    reserved = set(exclude) | set(ids)
    features = [c for c in (select or columns) if c not in reserved]
    if not features:
        raise DataError("no feature columns left after --columns/--exclude/--id-column")
    return features


# --------------------------------------------------------------------------
# sources


@contextlib.contextmanager
def open_source(source: str):
    """Open ``source`` (a path, or ``-`` for standard input) for reading in batches.

    CSV (optionally gzip/zstd/bz2/lz4/xz compressed, recognised by its first bytes) or
    Parquet (by its magic number or a ``.parquet``/``.pq`` suffix). Parquet on
    standard input is first copied to an anonymous temporary file, since Parquet
    keeps its index at the end. Yields a :class:`CsvSource` or :class:`ParquetSource`.
    """
    with contextlib.ExitStack() as stack:
        if source == "-":
            yield _open_stdin(sys.stdin.buffer, stack)
            return
        path = existing_file(source)
        size = path.stat().st_size
        if size == 0:
            raise DataError(f"data file {source} is empty: expected a CSV with a header row, or Parquet")
        with open(path, "rb") as handle:
            head = handle.read(16)
        if head[:4] == _PARQUET_MAGIC or path.suffix.lower() in PARQUET_SUFFIXES:
            yield ParquetSource(str(path), source)
            return
        yield CsvSource.from_path(path, source, compression_of(head), size, stack)


def _open_stdin(stream, stack):
    head = stream.read(16)
    if not head:
        raise DataError("standard input is empty: pipe a CSV with a header row into `-`")
    if head[:4] == _PARQUET_MAGIC:
        spool = stack.enter_context(tempfile.TemporaryFile(prefix="adscore-stdin-"))
        spool.write(head)
        shutil.copyfileobj(stream, spool, 1 << 20)
        spool.seek(0)
        return ParquetSource(spool, "standard input")
    raw = _Prefixed(head, stream)
    codec = compression_of(head)
    if codec is not None:
        raw = _decompressing(raw, codec, "standard input")
    return CsvSource(raw, "standard input", empty_message="standard input is empty: pipe a CSV with a "
                                                           "header row into `-`")


class _Prefixed(io.RawIOBase):
    """A read-only stream: ``head`` (bytes already read) followed by the rest of ``stream``."""

    def __init__(self, head: bytes, stream):
        super().__init__()
        self._head = memoryview(head)
        self._stream = stream

    def readable(self):
        return True

    def readinto(self, buffer):
        if len(self._head):
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


class CsvSource:
    """A CSV input read by :func:`pyarrow.csv.open_csv` in blocks.

    The header is read first (with Python's csv module, as :mod:`pyod_ae_ext.data`
    reads it) so that the reader converts only the columns in use, features straight
    to float64. Repeated column names are an error; blank names become pandas'
    ``Unnamed: N``. When the first 64 KiB have cells padded with blanks ("1, 2"),
    feature columns are read as text and trimmed, as pandas would read them.

    Attributes
    ----------
    name : str
        How messages name the input (the path, or "standard input").
    columns : list of str
        Column names, as ``adscore fit`` sees them.
    total_rows : None
        Unknown for CSV; :meth:`fraction_read` estimates progress from bytes instead.
    """

    total_rows = None

    def __init__(self, stream, name, empty_message=None, reopen=None, size=None):
        self.name = name
        self._reopen = reopen  # a fresh stream from the start (files), else None (stdin)
        self._size, self._raw = size, None
        self.no_rows_message = f"{name} has a header but no data rows"
        prefix, at_eof = b"", False
        while True:
            try:
                chunk = stream.read(_HEADER_CHUNK_BYTES if not prefix else len(prefix))
            except Exception as exc:  # a damaged compressed stream (pyarrow raises OSError or ArrowInvalid)
                raise DataError(f"cannot read {name}: {_first_line(exc)}") from None
            at_eof = not chunk
            prefix += chunk
            header = _csv_header(prefix, at_eof)
            if header is not None or at_eof:
                break
        if not header or not any(cell.strip() for cell in header[0]):
            raise DataError(empty_message or f"{name} is empty: expected a CSV with a header row")
        file_names, self._header_lines = header
        _check_unique_columns(file_names, name)
        self.columns = _pandas_names(file_names)
        self._renamed = self.columns != file_names
        self._padded = bool(_PADDED_CELL.search(prefix[:_HEADER_CHUNK_BYTES]))
        longest = max((len(line) for line in prefix.split(b"\n")[:-1]), default=len(prefix))
        self._block_bytes = max(_CSV_BLOCK_BYTES, 8 * longest)
        self._stream = stream if reopen is None else None
        self._prefix = prefix if reopen is None else b""
        self.bytes_fraction = 0.0

    @classmethod
    def from_path(cls, path, name, codec, size, stack):
        """A source for a file; the file is opened again for the data, natively (no Python in the loop)."""
        import pyarrow as pa

        def reopen():
            raw = stack.enter_context(pa.OSFile(str(path), "rb"))
            return raw, (_decompressing(raw, codec, name) if codec else raw)

        _, stream = reopen()
        return cls(stream, name, reopen=reopen, size=size)

    def fraction_read(self) -> float | None:
        """Share of the input file read so far (compressed bytes for compressed files), None for stdin."""
        return self.bytes_fraction if self._size else None

    def record_batches(self, features, id_columns, purpose, batch_rows=None):
        """Arrow record batches of the feature and id columns, in file order."""
        import pyarrow as pa
        import pyarrow.csv as pacsv

        stream, self._raw = self._data_stream()
        feature_type = pa.string() if self._padded else pa.float64()
        types = {name: pa.string() for name in id_columns}
        types.update({name: feature_type for name in features})
        read_options = pacsv.ReadOptions(use_threads=False, block_size=self._block_bytes)
        if self._renamed:  # pyarrow skips physical lines here, then takes these names
            read_options.column_names = self.columns
            read_options.skip_rows = self._header_lines
        convert = pacsv.ConvertOptions(include_columns=list(dict.fromkeys([*features, *id_columns])),
                                       column_types=types, null_values=NA_VALUES,
                                       strings_can_be_null=self._padded)
        parse = pacsv.ParseOptions(newlines_in_values=True)
        # pyarrow counts rows from 1 at the header (records, blank lines skipped), or from the
        # first physical line after skip_rows.
        offset = self._header_lines + 1 if self._renamed else 2
        try:
            reader = pacsv.open_csv(stream, read_options=read_options, parse_options=parse,
                                    convert_options=convert)
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                if self._size:
                    self.bytes_fraction = min(1.0, self._raw.tell() / self._size)
                yield batch
        except AdscoreError:
            raise
        except Exception as exc:  # pyarrow: ArrowInvalid (a ValueError), OSError, ...
            raise self._read_error(exc, offset, purpose) from None

    def _data_stream(self):
        if self._reopen is not None:
            raw, stream = self._reopen()
            return stream, raw
        if self._stream is None:
            raise AdscoreError(f"{self.name} can be read only once")
        stream, self._stream = _Prefixed(self._prefix, self._stream), None
        return stream, None

    def _read_error(self, exc, offset, purpose) -> DataError:
        text = str(exc).strip()
        match = _CONVERSION_ERROR.search(text)
        if match and int(match[1]) < len(self.columns):
            return non_numeric_error(self.columns[int(match[1])], match[3], int(match[2]) - offset, purpose)
        match = _FIELD_COUNT_ERROR.search(text)
        if match:
            return DataError(f"{self.name} is not a readable CSV file: row {int(match[1]) - offset} has "
                             f"{match[3]} fields but the header has {match[2]}")
        first = text.splitlines()[0] if text else type(exc).__name__
        if isinstance(exc, OSError):
            return DataError(f"cannot read {self.name}: {first}")
        return DataError(f"{self.name} is not a readable CSV file: {first}")


def _csv_header(prefix: bytes, at_eof: bool):
    """(names, physical lines up to the header's end) of the first non-blank CSV record in ``prefix``.

    None when ``prefix`` may end inside that record (read more), [] when there is none.
    """
    try:
        text = prefix.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(prefix) - 4 or at_eof:  # not a character cut by the chunk's end
            text = prefix.decode("utf-8-sig", errors="replace")
        else:
            return None
    lines = io.StringIO(text, newline="").readlines()  # \n, \r\n and \r end lines, as for pyarrow
    consumed = 0

    def feed():
        nonlocal consumed
        for line in lines:
            consumed += 1
            yield line

    try:
        for record in csv.reader(feed()):
            if any(cell.strip() for cell in record):
                if consumed < len(lines) or at_eof:
                    return record, consumed
                return None
    except csv.Error:
        if not at_eof:
            return None
        raise DataError("the input is not a readable CSV file: its header row cannot be parsed") from None
    return [] if at_eof else None


def _pandas_names(names) -> list:
    """Header names as pandas names them: a blank one becomes ``Unnamed: <position>``."""
    return [name if name != "" else f"Unnamed: {i}" for i, name in enumerate(names)]


class ParquetSource:
    """A Parquet input read with :meth:`pyarrow.parquet.ParquetFile.iter_batches`."""

    def __init__(self, file, name):
        import pyarrow.parquet as pq

        self.name = name
        self.no_rows_message = f"{name} has no data rows"
        try:
            # pyarrow's default pre-buffering keeps every row group it has read until the file is
            # closed (memory grew with the file: 13.9 GB peak for 50M rows); buffered reads of each
            # column chunk keep only what the current batch needs.
            self._file = pq.ParquetFile(file, pre_buffer=False, buffer_size=_PARQUET_BUFFER_BYTES)
            schema = self._file.schema_arrow
            # pandas stores its index as columns; pandas (and so `adscore fit`) reads them back as the index
            index = {c for c in (schema.pandas_metadata or {}).get("index_columns", []) if isinstance(c, str)}
        except Exception as exc:
            raise DataError(f"{name} is not a readable Parquet file: {_first_line(exc)}") from None
        _check_unique_columns(schema.names, name)
        self.columns = [str(n) for n in schema.names if n not in index]
        self._schema = schema
        self.total_rows = self._file.metadata.num_rows

    def fraction_read(self):
        return None  # total_rows is known

    def record_batches(self, features, id_columns, purpose, batch_rows=BATCH_ROWS):
        """Arrow record batches of the feature and id columns; non-numeric features refused up front."""
        self.check_numeric(features, purpose)
        columns = list(dict.fromkeys([*features, *id_columns]))
        try:
            yield from self._file.iter_batches(batch_size=batch_rows, columns=columns, use_threads=True)
        except Exception as exc:
            raise DataError(f"{self.name} is not a readable Parquet file: {_first_line(exc)}") from None

    def check_numeric(self, features, purpose) -> None:
        """Refuse feature columns whose Parquet type is not a number (before reading any row)."""
        import pyarrow as pa

        def numeric(dtype):
            if pa.types.is_dictionary(dtype):
                dtype = dtype.value_type
            return (pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_boolean(dtype)
                    or pa.types.is_decimal(dtype))

        bad = [n for n in features if not numeric(self._schema.field(n).type)]
        if not bad:
            return
        names = ", ".join(bad)
        if purpose == "fit":
            raise DataError(f"non-numeric column(s) {names}; exclude them with --exclude {','.join(bad)} "
                            "(or mark ids with --id-column)")
        raise DataError(f"model feature column(s) {names} are not numeric in this data")


def _first_line(exc) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --------------------------------------------------------------------------
# reading ahead


def prefetch(iterable, depth: int = 2):
    """Iterate over ``iterable`` in a background thread, up to ``depth`` items ahead.

    Parsing the next batch (pyarrow and NumPy release the GIL) then overlaps with
    scoring the current one. An exception in the reader is raised here, in order.
    """
    items = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in iterable:
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as exc:  # handed to the consumer
            put((None, exc))

    thread = threading.Thread(target=produce, name="adscore-reader", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = items.get()
            if exc is not None:
                raise exc
            if item is done:
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)  # it stops after its current batch; stdin may block it, hence the bound


# --------------------------------------------------------------------------
# scoring


def scores_rows_independently(detector) -> bool:
    """Whether a row's score depends on that row alone (so batches may be scored separately).

    PyOD's ECOD and COPOD rank new rows against each other as well as against the
    training data; an ensemble is independent when all its members are.
    """
    from pyod.models.copod import COPOD
    from pyod.models.ecod import ECOD

    if isinstance(detector, (ECOD, COPOD)):
        return False
    members = getattr(detector, "members_", None)
    if members is not None:
        return all(scores_rows_independently(m) for m in members)
    return True


def score_batches(detector, batches, note=None):
    """Yield :class:`Scored` results for ``batches``, one per batch.

    A detector whose scores depend on the whole input (:func:`scores_rows_independently`)
    gets every row in one batch, so its scores stay those of a whole-table run.
    """
    if not scores_rows_independently(detector):
        if note is not None:
            note(f"note: {type(detector).__name__} scores rows relative to each other, so the whole input is "
                 "read into memory and scored at once")
        batches = [_merge(list(batches))]
    threads = _ScoringThreads()
    batches = iter(batches)
    with threads:
        while True:
            asked = time.perf_counter()
            batch = next(batches, None)
            if batch is None:
                return
            started = time.perf_counter()
            scores = np.asarray(detector.decision_function(batch.X), dtype=np.float64).ravel()
            threads.observe(waited=started - asked, scoring=time.perf_counter() - started)
            yield Scored(batch.ids, scores, batch.start)


class _ScoringThreads:
    """torch's thread count while batches are scored: one core left to the reader, unless scoring is the bottleneck.

    torch's worker threads spin while they wait for each other, so one that shares a
    core with a busy reader (parsing CSV takes a whole core) slows every batch many
    times over. Scoring starts on one core fewer than torch would use; if after a few
    batches the scorer hardly ever waits for the reader (a costly detector), the
    reader needs no core of its own and torch gets them all back.
    """

    DECIDE_AFTER = 3
    WAIT_SHARE = 0.2

    def __init__(self):
        self.waited = self.scoring = 0.0
        self.batches = 0
        self.torch = None

    def __enter__(self):
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a dependency
            return self
        self.torch, self.previous = torch, torch.get_num_threads()
        torch.set_num_threads(max(1, min(self.previous, (os.cpu_count() or 1) - 1)))
        return self

    def observe(self, waited: float, scoring: float) -> None:
        self.batches += 1
        if self.batches == 1 or self.torch is None:  # the first batch pays for warm-up on both sides
            return
        self.waited += waited
        self.scoring += scoring
        if self.batches == self.DECIDE_AFTER + 1 and self.waited < self.WAIT_SHARE * self.scoring:
            self.torch.set_num_threads(self.previous)

    def __exit__(self, *exc):
        if self.torch is not None:
            self.torch.set_num_threads(self.previous)
        return False


def _merge(batches) -> Batch:
    import pyarrow as pa

    X = np.concatenate([b.X for b in batches]) if len(batches) > 1 else batches[0].X
    ids = None
    if batches[0].ids is not None:
        ids = pa.concat_tables([b.ids for b in batches])
    return Batch(X, ids, batches[0].start)


PROBABILITY_METHODS = ("linear", "unify")


@dataclass(frozen=True)
class OutputColumns:
    """Names of the columns ``score`` adds to the id columns, and how the probability is computed.

    ``probability`` is PyOD's ``predict_proba`` outlier probability: ``"linear"`` scales
    scores by the training scores' range (0 at the lowest, 1 at the highest training
    score, clipped), ``"unify"`` is Kriegel et al.'s Gaussian unification,
    erf((score - mean) / (std * sqrt 2)) over the training scores, clipped to [0, 1].
    """

    score: str = "anomaly_score"
    flag: str = "is_anomaly"
    probability: str = "anomaly_probability"
    probability_method: str = "linear"

    def names(self) -> list:
        return [self.score, self.flag, self.probability]

    def check(self, id_columns) -> None:
        """A clear error when two output columns, or an output and an id column, share a name."""
        names = self.names()
        if len(set(names)) < len(names):
            raise ParameterError(f"the output column names must differ, got {', '.join(names)}")
        clash = [n for n in names if n in set(id_columns)]
        if clash:
            raise ParameterError(f"output column {clash[0]!r} would overwrite the id column of that name; "
                                 "rename the output with --score-name/--flag-name/--probability-name")
        if self.probability_method not in PROBABILITY_METHODS:
            raise ParameterError(f"--probability must be one of {', '.join(PROBABILITY_METHODS)}")


def outlier_probability(detector, scores: np.ndarray, method: str = "linear") -> np.ndarray:
    """PyOD's ``predict_proba(X, method)[:, 1]`` for rows already scored as ``scores``.

    PyOD's own code runs on the detector's fitted statistics; the rows are not scored a
    second time.
    """
    proxy = _already_scored_class()(scores)
    proxy.decision_scores_ = np.asarray(detector.decision_scores_, dtype=np.float64)
    proxy.threshold_, proxy.labels_ = detector.threshold_, detector.labels_
    proxy._mu, proxy._sigma = detector._mu, detector._sigma
    proxy._classes = getattr(detector, "_classes", 2)
    return proxy.predict_proba(np.empty((len(scores), 0)), method=method)[:, 1]


@functools.lru_cache(maxsize=None)
def _already_scored_class():
    """A PyOD detector whose ``decision_function`` returns scores computed before (PyOD imported on use)."""
    from pyod.models.base import BaseDetector

    class AlreadyScored(BaseDetector):
        def __init__(self, scores):
            super().__init__()
            self.scores = scores

        def fit(self, X, y=None):
            raise NotImplementedError("AlreadyScored only converts scores to probabilities")

        def decision_function(self, X):
            return self.scores

    return AlreadyScored


class TopRows:
    """The ``n`` highest-scoring rows seen so far, highest first, earlier rows first on ties.

    The order is that of a stable descending sort of the whole table, kept with memory
    for ``n`` rows plus one batch.
    """

    def __init__(self, n: int):
        self.n = n
        self.scores = np.empty(0)
        self.rows = np.empty(0, dtype=np.int64)
        self.ids = None

    def add(self, item: Scored) -> None:
        import pyarrow as pa

        scores = item.scores
        candidates = np.arange(len(scores))
        if len(self.scores) == self.n:  # only rows that beat the current last can enter
            candidates = np.flatnonzero(scores > self.scores[-1])
            if candidates.size == 0:
                return
        scores = np.concatenate([self.scores, scores[candidates]])
        rows = np.concatenate([self.rows, item.start + candidates])
        order = np.lexsort((rows, -scores))[:self.n]
        self.scores, self.rows = scores[order], rows[order]
        if item.ids is not None:
            new_ids = item.ids.take(pa.array(candidates))
            ids = new_ids if self.ids is None else pa.concat_tables([self.ids, new_ids])
            self.ids = ids.take(pa.array(order))

    def result(self) -> Scored:
        return Scored(self.ids, self.scores, 0)


# --------------------------------------------------------------------------
# writing


class ResultWriter:
    """Append score tables to a binary stream as CSV, JSON lines or Parquet.

    CSV is written with pyarrow's CSV writer after a header quoted as pandas quotes
    it; floats get their shortest round-trip representation. JSON lines use pandas'
    writer (15 significant digits, as before). Parquet gets one row group per batch,
    dictionary encoding only for ``dictionary_columns`` (the 0/1 flag).
    """

    def __init__(self, sink, fmt: str, dictionary_columns=()):
        import pyarrow as pa

        self.fmt = fmt
        self._dictionary_columns = list(dictionary_columns)
        self._sink = sink
        self._native = pa.PythonFile(sink, mode="w")
        self._parquet = None
        self._started = False

    def write(self, table) -> None:
        """Append ``table`` (a pyarrow.Table with the output columns)."""
        if self.fmt == "csv":
            self._write_csv(table)
        elif self.fmt == "json":
            payload = table.to_pandas().to_json(orient="records", lines=True, double_precision=15) or ""
            self._sink.write(payload.encode())
        else:
            import pyarrow.parquet as pq

            if self._parquet is None:
                # dictionary-encoding unique floats and ids is wasted work (6x the time of plain pages)
                self._parquet = pq.ParquetWriter(self._native, table.schema,
                                                use_dictionary=self._dictionary_columns)
            self._parquet.write_table(table)
        self._started = True

    def _write_csv(self, table) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pacsv

        if not self._started:
            header = io.StringIO()
            csv.writer(header, lineterminator="\n").writerow(table.column_names)
            self._sink.write(header.getvalue().encode())
        # pyarrow quotes every string when asked to quote any; do so only for batches that need it
        needs_quotes = any(pc.any(pc.match_substring_regex(column, r'[",\r\n]')).as_py()
                           for column in table.columns
                           if pa.types.is_string(column.type) or pa.types.is_large_string(column.type))
        options = pacsv.WriteOptions(include_header=False, quoting_style="needed" if needs_quotes else "none")
        pacsv.write_csv(table, self._native, options)

    def abandon(self) -> None:
        """Close the Parquet writer quietly (its output is being thrown away), so that it is not closed later."""
        if self._parquet is not None:
            with contextlib.suppress(Exception):
                self._parquet.close()
            self._parquet = None

    def close(self) -> None:
        """Finish the output (Parquet's footer; an empty Parquet table when nothing was written)."""
        if self._parquet is not None:
            self._parquet.close()
        self._native.flush()
        self._sink.flush()


def result_table(detector, item: Scored, names: OutputColumns = OutputColumns()):
    """The output table of ``item``: id columns, the score, the 0/1 flag (1 above the threshold), the probability."""
    import pyarrow as pa

    scores = item.scores
    columns = {}
    if item.ids is not None:
        columns.update({name: item.ids.column(name) for name in item.ids.column_names})
    columns[names.score] = pa.array(scores, type=pa.float64())
    columns[names.flag] = pa.array((scores > detector.threshold_).astype(np.int64))
    columns[names.probability] = pa.array(outlier_probability(detector, scores, names.probability_method),
                                          type=pa.float64())
    return pa.table(columns)


class _GuardedSink(io.RawIOBase):
    """A writable stream whose write errors are one :class:`AdscoreError` naming the output."""

    def __init__(self, handle, label):
        super().__init__()
        self._handle, self._label = handle, label

    def writable(self):
        return True

    def write(self, data):
        try:
            return self._handle.write(data)
        except BrokenPipeError:
            raise  # the reader stopped early (`| head`): click exits quietly
        except OSError as exc:
            raise AdscoreError(f"cannot write {self._label}: {exc.strerror or exc}") from None

    def flush(self):
        if getattr(self._handle, "closed", False):
            return
        try:
            self._handle.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise AdscoreError(f"cannot write {self._label}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def _open_sink(output):
    if output == "-":
        yield _GuardedSink(sys.stdout.buffer, "to standard output")
        return
    from .outputs import streamed_output

    with streamed_output(output) as handle:
        yield _GuardedSink(handle, output)


def write_results(scored, output, fmt, detector, top=None, progress=None,
                  names: OutputColumns = OutputColumns()) -> int:
    """Write :class:`Scored` items to ``output`` (a path or ``-``) as they arrive; return the row count.

    With ``top``, only the ``top`` highest-scoring rows are kept (highest first) and
    written at the end. A file is replaced only when everything was written; on any
    error it is left as it was (:func:`pyod_ae_ext.outputs.streamed_output`).
    """
    rows = 0
    keeper = TopRows(top) if top else None
    with _open_sink(output) as sink:
        writer = ResultWriter(sink, fmt, dictionary_columns=[names.flag])
        try:
            for item in scored:
                rows += len(item.scores)
                if keeper is not None:
                    keeper.add(item)
                else:
                    writer.write(result_table(detector, item, names))
                if progress is not None:
                    progress.update(rows)
            if keeper is not None:
                writer.write(result_table(detector, keeper.result(), names))
        except BaseException:
            writer.abandon()
            raise
        writer.close()
    if progress is not None:
        progress.finish(rows)
    return rows


# --------------------------------------------------------------------------
# progress


class Progress:
    """Rows done, rows per second and, when the size is known, time left; on stderr.

    On a terminal a tqdm bar (percentage and ETA when the size is known, else a row
    count) is redrawn a few times a second; otherwise (``-v`` into a log) a line is
    printed every ``interval`` seconds.

    Parameters
    ----------
    enabled : bool
    total_rows : int or None
        Rows in the input (Parquet metadata), for the time left.
    fraction : callable or None
        Share of the input read so far (bytes of a CSV file), used when ``total_rows`` is None.
    interval : float or None
        Seconds between updates (default 0.25 on a terminal, 10 otherwise).
    """

    def __init__(self, enabled, total_rows=None, fraction=None, verb="scored", stream=None, interval=None):
        self.enabled = enabled
        self.total_rows, self.fraction, self.verb = total_rows, fraction, verb
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if interval is not None else (0.25 if self.interactive else 10.0)
        self.started = time.perf_counter()
        self._last = self.started
        self._bar = None

    def update(self, rows: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last < self.interval:
            return
        self._last = now
        if self.interactive:
            self._draw(rows, now)
        else:
            self.stream.write(self._line(rows, now) + "\n")
            self.stream.flush()

    def finish(self, rows: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if self._bar is not None:
            if self._bar.total:
                self._bar.n = 1.0
            self._bar.close()
        seconds = now - self.started
        self.stream.write(f"{self.verb} {rows:,} rows in {seconds:.1f}s ({rows / max(seconds, 1e-9):,.0f} rows/s)\n")
        self.stream.flush()

    def _done(self, rows):
        """Share of the input done, or None when the size is unknown."""
        if self.total_rows:
            return min(rows / self.total_rows, 1.0)
        return self.fraction() if self.fraction is not None else None

    def _line(self, rows, now) -> str:
        seconds = max(now - self.started, 1e-9)
        text = f"{self.verb} {rows:,} rows, {rows / seconds:,.0f} rows/s"
        done = self._done(rows)
        if done:
            left = seconds * (1 - done) / done
            text += f", {100 * done:.0f}%, ETA {int(left // 60)}:{int(left % 60):02d}"
        return text

    def _draw(self, rows, now) -> None:
        from tqdm import tqdm

        done = self._done(rows)
        if self._bar is None:
            sized = done is not None
            self._bar = tqdm(total=1.0 if sized else None, file=self.stream, dynamic_ncols=True, desc=self.verb,
                             bar_format=("{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]" if sized
                                         else "{desc} [{elapsed}{postfix}]"))
            self._bar.start_t = time.time() - (now - self.started)  # tqdm's clock: the time since we began
        rate = rows / max(now - self.started, 1e-9)
        self._bar.set_postfix_str(f"{rows:,} rows, {rate:,.0f} rows/s", refresh=False)
        if done is not None:
            self._bar.n = done
        self._bar.refresh()


def progress_for(source, verbose, verb="scored", quiet=False) -> Progress:
    """A :class:`Progress` for ``source``: shown when stderr is a terminal or ``verbose``, never when ``quiet``."""
    enabled = not quiet and (bool(verbose) or bool(getattr(sys.stderr, "isatty", lambda: False)()))
    return Progress(enabled, total_rows=getattr(source, "total_rows", None),
                    fraction=getattr(source, "fraction_read", None), verb=verb)


# --------------------------------------------------------------------------
# sampling


def reservoir_sample(batches, size: int, seed: int) -> tuple:
    """A uniform random sample of ``size`` rows from ``batches``, in one pass (Algorithm R, vectorised).

    Row ``i`` (0-based, global) replaces reservoir slot ``j ~ U{0..i}`` when ``j < size``;
    within a batch a later row wins a slot, as in the row-by-row algorithm, and the
    random draws do not depend on where batches begin. The sample is returned in file
    order, so with ``size`` at least the row count it is the whole input.

    Returns
    -------
    sample : ndarray of shape (min(size, rows), n_features)
    rows_seen : int
    """
    rng = np.random.default_rng(seed)
    sample, rows, seen = None, None, 0
    for batch in batches:
        X, n = batch.X, len(batch)
        if sample is None:
            sample = np.empty((size, X.shape[1]), dtype=np.float64)
            rows = np.empty(size, dtype=np.int64)
        fill = min(max(size - seen, 0), n)
        sample[seen:seen + fill] = X[:fill]
        rows[seen:seen + fill] = np.arange(seen, seen + fill)
        if fill < n:
            index = np.arange(seen + fill, seen + n)
            slots = rng.integers(0, index + 1)
            hit = slots < size
            slots, index = slots[hit], index[hit]
            _, last_from_end = np.unique(slots[::-1], return_index=True)
            winners = len(slots) - 1 - last_from_end
            sample[slots[winners]] = X[index[winners] - seen]
            rows[slots[winners]] = index[winners]
        seen += n
    kept = min(size, seen)
    order = np.argsort(rows[:kept], kind="stable")
    return sample[:kept][order], seen


def sample_file(data, size, seed=None, columns=(), exclude=(), id_columns=(), verbose=False,
                batch_rows=BATCH_ROWS):
    """Training rows for ``adscore fit --sample``: a seeded reservoir sample of ``data``'s rows.

    Features are chosen as :func:`training_columns` does; every row is read and
    checked (a NaN outside the sample is still an error), only ``size`` are kept.

    Returns
    -------
    X : ndarray of shape (min(size, rows), n_features)
    features : list of str
    sample : dict
        ``{"rows": kept, "of": rows read, "seed": seed}``; a random seed is drawn and
        reported when ``seed`` is None, so that the sample can be drawn again.
    """
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (1 << 31))
    check_number("the sample's seed (--seed)", seed, 0, 2**63 - 1, integer=True)
    with open_source(data) as source:
        features = training_columns(source.columns, columns, exclude, id_columns)
        progress = progress_for(source, verbose, verb="read")
        batches = prefetch(iter_batches(source, features, (), batch_rows, purpose="fit"))
        X, seen = reservoir_sample(_reported(batches, progress), size, seed)
        progress.finish(seen)
    return X, features, {"rows": int(X.shape[0]), "of": int(seen), "seed": int(seed)}


def _reported(batches, progress):
    rows = 0
    for batch in batches:
        rows += len(batch)
        progress.update(rows)
        yield batch
