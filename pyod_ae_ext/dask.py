"""Scoring and fitting on a Dask cluster (the optional ``dask`` extra: ``pip install "pyod-ae-ext[dask]"``).

- :func:`score_dask` scores a ``dask.dataframe`` or a ``dask.array`` with a fitted
  detector or ensemble, partition by partition on the workers. The model travels
  once, in the safe model format (JSON metadata and safetensors bytes, never a
  pickled detector): it is scattered to every worker when a distributed client is
  running, and each worker process rebuilds it once and caches it.
- :func:`scored_files` runs ``adscore score --engine dask``: Parquet or CSV files
  (a path or a glob) read by the workers, scores gathered in partition order with a
  bounded number of partitions in flight, so the client writes one output file
  without holding the whole result.
- :func:`joblib_on_dask` fits an :class:`~pyod_ae_ext.ensemble.Ensemble` 's members in
  parallel on the cluster: the ensemble already fits its members with joblib
  (``n_jobs != 1``), and joblib's ``dask`` backend sends each member's fit to a worker.

Scores equal local scores to float precision (bit for bit where the workers' torch
uses the same number of threads); detectors that rank rows against each other
(PyOD's ECOD, COPOD) are refused, since a partition is not the whole input.
"""
from __future__ import annotations

import collections
import contextlib
import glob
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import AdscoreError, DataError, ParameterError

INSTALL_HINT = 'pip install "pyod-ae-ext[dask]" (dask[dataframe] and distributed)'
CSV_BLOCK_SIZE = "64MB"


def require_dask() -> None:
    """Raise a :class:`ParameterError` with the install command when Dask is not importable."""
    try:
        import dask  # noqa: F401
        import dask.dataframe  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:
        raise ParameterError(f"--engine dask needs Dask, which is not installed ({exc}); install it with "
                             f"{INSTALL_HINT}") from None


# --------------------------------------------------------------------------
# the model, shipped in the safe format


@dataclass(frozen=True)
class ShippedModel:
    """A fitted detector as the workers receive it: JSON metadata and safetensors bytes."""

    digest: str
    metadata: str
    tensors: bytes


def ship_model(detector) -> ShippedModel:
    """``detector`` in the model-file format (no pickle of the detector), keyed by a SHA-256 digest."""
    from safetensors.torch import save

    from .persistence import detector_to_state

    meta, tensors = detector_to_state(detector)
    payload = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    metadata = json.dumps(meta, sort_keys=True)
    digest = hashlib.sha256(metadata.encode() + payload).hexdigest()
    return ShippedModel(digest, metadata, payload)


_LOADED: collections.OrderedDict = collections.OrderedDict()  # digest -> detector, per worker process


def load_shipped(model: ShippedModel):
    """The detector in ``model``, rebuilt once per process (the two most recent are kept)."""
    detector = _LOADED.get(model.digest)
    if detector is not None:
        _LOADED.move_to_end(model.digest)
        return detector
    from safetensors.torch import load

    from .persistence import detector_from_state

    detector = detector_from_state(json.loads(model.metadata), load(model.tensors),
                                   source="the model sent to a Dask worker")
    _match_worker_threads()
    _LOADED[model.digest] = detector
    while len(_LOADED) > 2:
        _LOADED.popitem(last=False)
    return detector


def _match_worker_threads() -> None:
    """Give torch as many threads as this Dask worker runs tasks (default: every core, per worker)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):  # not on a distributed worker
        return
    state = getattr(worker, "state", worker)
    nthreads = getattr(state, "nthreads", None)
    if nthreads:
        import torch

        torch.set_num_threads(int(nthreads))


def _shipped_argument(model: ShippedModel, client):
    """What tasks receive: a future of the model broadcast to every worker, or the model itself."""
    if client is None:
        try:
            from distributed import default_client

            client = default_client()
        except (ImportError, ValueError):
            return model  # the local schedulers share this process's memory
    return client.scatter(model, broadcast=True, hash=False)


# --------------------------------------------------------------------------
# scoring


def score_dask(detector, data, *, id_columns=None, client=None):
    """Score a Dask collection with a fitted detector, lazily, partition by partition.

    Parameters
    ----------
    detector : a fitted detector or ensemble
    data : dask.dataframe.DataFrame or dask.array.Array
        A DataFrame supplies the detector's features by name (``feature_names_in_``,
        as ``adscore fit`` records them; else every column that is not an id column,
        in order). An array holds rows x features; it is rechunked to whole rows.
    id_columns : list of str, optional
        DataFrame columns to keep beside the scores.
    client : distributed.Client, optional
        The cluster to broadcast the model to (default: the current client, if any).

    Returns
    -------
    dask.dataframe.Series (named ``score``), a dask DataFrame (the id columns and
    ``score``) when ``id_columns`` is given, or a 1-D dask.array.Array for an array.
    Compute it (``.compute()``, ``.to_parquet(...)``) to run it.

    Raises
    ------
    ParameterError
        Dask is missing, or the detector ranks rows against each other (ECOD, COPOD).
    DataError
        Missing feature columns; at compute time, NaN/inf or non-numeric cells, named
        with their partition and row within it.

    Examples
    --------
    >>> import dask.dataframe as dd                                      # doctest: +SKIP
    >>> scores = score_dask(pyod_ae_ext.load("ae.adscore"), dd.read_parquet("part-*.parquet"))
    >>> scores.compute()                                                 # doctest: +SKIP
    """
    require_dask()
    import dask.array as da

    from .streaming import scores_rows_independently

    if not scores_rows_independently(detector):
        raise ParameterError(f"{type(detector).__name__} scores rows relative to each other, so partitions "
                             "cannot be scored separately; score with the local engine instead")
    shipped = _shipped_argument(ship_model(detector), client)
    if isinstance(data, da.Array):
        return _score_array(data, shipped)
    ids = list(id_columns or [])
    features = _frame_features(detector, list(map(str, data.columns)), ids)
    return _score_frame(data, shipped, features, ids)


def _frame_features(detector, columns, ids) -> list:
    names = getattr(detector, "feature_names_in_", None)
    if names is not None:
        features = [str(n) for n in names]
        missing = [n for n in features if n not in set(columns)]
        if missing:
            raise DataError(f"the data lacks column(s) the model was fitted on: {', '.join(missing)}")
        return features
    features = [c for c in columns if c not in set(ids)]
    expected = getattr(detector, "n_features_in_", len(features))
    if len(features) != expected:
        raise DataError(f"the data has {len(features)} feature columns but the detector was fitted on {expected}")
    return features


def _score_array(data, shipped):
    if data.ndim != 2:
        raise DataError(f"the array must be 2-D (rows x features), got {data.ndim} dimensions")
    data = data.rechunk({1: -1})
    return data.map_blocks(_score_block, shipped, dtype=np.float64, drop_axis=1,
                           meta=np.empty((0,), dtype=np.float64))


def _score_block(block, shipped, block_info=None):
    from .validation import as_feature_matrix

    detector = load_shipped(shipped)
    where = f"the data (block {block_info[0]['chunk-location'][0]})" if block_info else "the data"
    X = as_feature_matrix(block, n_features=getattr(detector, "n_features_in_", None), what=where)
    return np.asarray(detector.decision_function(X), dtype=np.float64)


def _score_frame(data, shipped, features, ids):
    import pandas as pd

    if ids:
        meta = pd.DataFrame({name: pd.Series(dtype=data.dtypes[name]) for name in ids})
        meta["score"] = pd.Series(dtype=np.float64)
    else:
        meta = pd.Series(np.empty(0, dtype=np.float64), name="score")
    return data.map_partitions(_score_partition, shipped, features, ids, meta=meta)


def _score_partition(frame, shipped, features, ids, partition_info=None):
    """Scores of one partition (with its id columns when ``ids``), computed on a worker."""
    import pandas as pd

    from .validation import as_feature_matrix

    detector = load_shipped(shipped)
    number = partition_info.get("number") if partition_info else None
    where = f"the data (partition {number})" if number is not None else "the data"
    X = as_feature_matrix(frame[features], feature_names=features, what=where)
    scores = np.asarray(detector.decision_function(X), dtype=np.float64)
    if not ids:
        return pd.Series(scores, index=frame.index, name="score")
    out = frame[ids].copy()
    out["score"] = scores
    return out


# --------------------------------------------------------------------------
# the command line: files in, one output file out


@contextlib.contextmanager
def connect(scheduler=None, n_workers=None):
    """A distributed client: to ``scheduler`` (an address), else to a new local cluster.

    The local cluster runs ``n_workers`` processes (default: one per core) of one
    thread each, without a dashboard, and is shut down on exit.
    """
    require_dask()
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise ParameterError(f"cannot reach the Dask scheduler at {scheduler} ({exc}); check the address, "
                                 "or leave out --scheduler to start a local cluster") from None
        with client:
            yield client
        return
    # the workers' own logs would repeat every error the client reports
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
        yield client


@contextlib.contextmanager
def joblib_on_dask(scheduler=None, note=None):
    """Run joblib's parallel work (an ensemble's member fits) on a Dask cluster while the block runs.

    Examples
    --------
    >>> with joblib_on_dask("tcp://scheduler:8786"):                        # doctest: +SKIP
    ...     Ensemble(("toll", "iforest", "ecod"), n_jobs=-1).fit(X)
    """
    from joblib import parallel_config

    with connect(scheduler) as client:
        if note is not None:
            threads = sum(client.nthreads().values())
            note(f"fitting members on the Dask cluster at {client.scheduler.address} ({threads} worker threads)")
        with parallel_config(backend="dask"):
            yield client


@contextlib.contextmanager
def scored_files(detector, data, features, id_columns=(), scheduler=None, note=None, window=None,
                 columns_for=None):
    """Score the Parquet or CSV files ``data`` (a path or glob) on a Dask cluster.

    The header of the first file is checked as the local engine checks it (missing
    model features, unknown id columns, repeated names; unused columns noted).
    ``columns_for``, when given, maps that header to a
    :class:`~pyod_ae_ext.columns.ScoringColumns` that replaces ``id_columns``. Yields
    an iterator of :class:`~pyod_ae_ext.streaming.Scored` in file and partition order,
    computing at most ``window`` partitions ahead (default: twice the worker threads).
    """
    from .streaming import scoring_columns

    files = sorted(glob.glob(data)) if any(c in data for c in "*?[") else [data]
    if not files:
        raise DataError(f"no file matches {data}")
    is_parquet, columns = _inspect(files, features)
    known_unused = ()
    if columns_for is not None:
        chosen = columns_for(columns)
        id_columns, known_unused = chosen.id_columns, chosen.known_unused
    ids = scoring_columns(columns, features, id_columns, note=note, known_unused=known_unused)
    with connect(scheduler) as client:
        frame = _read_files(files, features, ids, is_parquet)
        scores = score_dask(detector, frame, id_columns=ids, client=client)
        window = window or 2 * max(1, sum(client.nthreads().values()))
        yield _in_order(client, scores, ids, window, data)


def _inspect(files, features):
    """(all Parquet?, column names of the first file), refusing mixed formats and missing files."""
    from .data import existing_file
    from .streaming import PARQUET_SUFFIXES, open_source

    kinds = set()
    for name in files:
        path = existing_file(name)
        with open(path, "rb") as handle:
            kinds.add(handle.read(4) == b"PAR1" or path.suffix.lower() in PARQUET_SUFFIXES)
    if len(kinds) > 1:
        raise DataError("the files mix Parquet and CSV; give one format at a time")
    with open_source(files[0]) as source:
        columns = list(source.columns)
        if kinds == {True}:
            source.check_numeric(features, "score")
    return kinds == {True}, columns


def _read_files(files, features, ids, is_parquet):
    import dask.dataframe as dd

    from .streaming import NA_VALUES

    columns = list(dict.fromkeys([*features, *ids]))
    if is_parquet:
        return dd.read_parquet(files, columns=columns)
    dtypes = {name: "str" for name in ids}
    dtypes.update({name: "float64" for name in features})
    compressed = any(Path(f).suffix.lower() in (".gz", ".bz2", ".zst", ".xz", ".zip") for f in files)
    return dd.read_csv(files, usecols=columns, dtype=dtypes, na_values=NA_VALUES, keep_default_na=False,
                       blocksize=None if compressed else CSV_BLOCK_SIZE)


def _in_order(client, scores, ids, window, data):
    """Computed partitions of ``scores`` in order, ``window`` at a time, as Scored items."""
    import pyarrow as pa

    from .streaming import Scored

    parts = iter(scores.to_delayed())
    pending = collections.deque()

    def submit_next():
        part = next(parts, None)
        if part is not None:
            pending.append(client.compute(part))

    for _ in range(window):
        submit_next()
    start = 0
    try:
        while pending:
            result = _result(pending.popleft(), data)
            submit_next()
            if ids:
                table = pa.Table.from_pandas(result[ids], preserve_index=False)
                values = result["score"].to_numpy(dtype=np.float64)
            else:
                table, values = None, result.to_numpy(dtype=np.float64)
            yield Scored(table, values, start)
            start += len(values)
    finally:
        for future in pending:
            future.cancel()


def _result(future, data):
    try:
        return future.result()
    except AdscoreError:
        raise
    except Exception as exc:  # pandas on a worker, e.g. a cell it cannot parse as a number
        text = " ".join(str(exc).split())[:300]
        advice = ""
        if "convert string to float" in text:
            advice = ("; a feature column holds text: the local engine (without --engine dask) names its "
                      "row and column")
        raise DataError(f"scoring {data} on the Dask cluster failed: {type(exc).__name__}: {text}{advice}") from None
