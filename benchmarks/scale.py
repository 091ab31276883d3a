"""Scale benchmark (issue 12): streaming ``adscore score`` from 1M to 50M rows, and the Dask engine.

``python -m benchmarks.scale [--sizes 1000000 10000000 50000000] [--formats parquet csv]
[--dask-workers 1 2] [--dask-rows 10000000] [--workdir /tmp/adscore-scale]``

1. A small ``ae`` model (``--seed 0``, ``latent_knn_weight=0, n_members=1``: one
   network's reconstruction score, as the ``ae`` was before the latent-space score and
   members became its defaults) is
   fitted with ``adscore fit`` on 10k generated rows x 32 features; one extra cell
   scores 1M rows with the default ``ae`` (members, latent kNN score on) to show what the
   detector itself costs.
2. For each size and format, the data (an integer ``id`` and 32 float features,
   written with 6 decimals in CSV) are generated in chunks of 1M rows (Parquet: one
   row group per chunk), never whole in memory, under ``--workdir``.
3. ``adscore score -m ae.adscore --id-column id DATA -o scores.parquet`` runs as a child
   process under ``/usr/bin/time``; its wall-clock seconds and peak resident memory
   (``%M``, that process alone) are recorded. Rows per second are end to end: process
   start, imports and model load included (the ``startup`` cell scores a 1-row file
   to show that fixed cost).
4. Dask: a ``LocalCluster`` of N worker processes of one thread each is started in
   this process, warmed up on a small file, and ``adscore score --engine dask
   --scheduler ADDRESS 'part-*.parquet'`` scores ``--dask-rows`` rows split into files
   of 1M rows.

Every file is deleted after its measurements. Results: one JSON line per cell appended
to ``--out`` (default ``benchmarks/results/scale.jsonl``) and a markdown table on stdout.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_FILE = REPO_ROOT / "benchmarks" / "results" / "scale.jsonl"
N_FEATURES = 32
TRAIN_ROWS = 10_000
CHUNK_ROWS = 1_000_000
FEATURES = [f"f{i}" for i in range(N_FEATURES)]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# data


def _chunk(rng, start: int, rows: int):
    """``rows`` rows of generated data as a pyarrow table: an id and 32 correlated features."""
    import pyarrow as pa

    mixing = np.random.default_rng(12345).normal(size=(N_FEATURES, N_FEATURES)) / np.sqrt(N_FEATURES)
    X = rng.standard_normal((rows, N_FEATURES)) @ mixing
    columns = {"id": pa.array(np.arange(start, start + rows, dtype=np.int64))}
    columns.update({name: pa.array(np.round(X[:, j], 6)) for j, name in enumerate(FEATURES)})
    return pa.table(columns)


def generate(path: Path, rows: int, fmt: str, seed: int = 0) -> Path:
    """Write ``rows`` generated rows to ``path`` as CSV or Parquet, 1M rows at a time."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    writer = None
    started = time.perf_counter()
    try:
        for start in range(0, rows, CHUNK_ROWS):
            table = _chunk(rng, start, min(CHUNK_ROWS, rows - start))
            if writer is None:
                writer = (pq.ParquetWriter(path, table.schema) if fmt == "parquet"
                          else pacsv.CSVWriter(path, table.schema))
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    log(f"generated {path.name}: {rows:,} rows, {path.stat().st_size / 1e9:.2f} GB in "
        f"{time.perf_counter() - started:.0f}s")
    return path


# --------------------------------------------------------------------------
# measuring a child process


def run_child(command: list) -> dict:
    """Run ``command``; its wall seconds, peak RSS (MB, this child alone) and exit status.

    Linux carries a process's peak RSS across ``exec``, so a child forked from this
    (large) process would report at least this process's size; ``/usr/bin/time``, a
    small process, forks the command instead and reports its peak alone.
    """
    timer = shutil.which("time") or "/usr/bin/time"
    with tempfile.TemporaryFile() as errors, tempfile.NamedTemporaryFile("r") as peak:
        started = time.perf_counter()
        process = subprocess.run([timer, "-f", "%M", "-o", peak.name, *command], stdout=subprocess.DEVNULL,
                                 stderr=errors)
        seconds = time.perf_counter() - started
        errors.seek(0)
        tail = errors.read().decode(errors="replace").strip().splitlines()[-3:]
        kilobytes = peak.read().strip().splitlines()[-1]
    return {"seconds": seconds, "peak_rss_mb": int(kilobytes) / 1024, "rc": process.returncode, "stderr": tail}


def adscore(*args) -> list:
    return [sys.executable, "-c", "from pyod_ae_ext.cli import main; main()", *map(str, args)]


def record(out: Path, cell: dict) -> dict:
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as handle:
        handle.write(json.dumps(cell) + "\n")
    shown = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in cell.items() if k != "stderr"}
    log(f"cell {shown}")
    if cell.get("rc"):
        log(f"  FAILED: {cell['stderr']}")
    return cell


def measure_score(model: Path, data: Path, rows: int, out: Path, label: dict, output="scores.parquet",
                  extra=()) -> dict:
    target = data.parent / output
    result = run_child(adscore("score", "-m", model, "--id-column", "id", *extra, data, "-o", target))
    target.unlink(missing_ok=True)
    return record(out, {**label, "rows": rows, **result, "rows_per_s": rows / result["seconds"],
                        "output": Path(output).suffix.lstrip(".")})


# --------------------------------------------------------------------------
# suites


def fit_model(workdir: Path, params=(), name="ae") -> Path:
    """``adscore fit -d ae --seed 0 [-p PARAM ...]`` on 10k generated rows."""
    import pyarrow.parquet as pq

    train = workdir / "train.parquet"
    if not train.exists():
        pq.write_table(_chunk(np.random.default_rng(99), 0, TRAIN_ROWS), train)
    model = workdir / f"{name}.adscore"
    options = [option for param in params for option in ("-p", param)]
    result = run_child(adscore("fit", "-d", "ae", *options, "--seed", "0", "--id-column", "id", train, "-o", model))
    if result["rc"]:
        raise SystemExit(f"fit failed: {result['stderr']}")
    log(f"fitted ae {' '.join(params)} on {TRAIN_ROWS:,} rows in {result['seconds']:.1f}s")
    return model


def default_model_cell(workdir, rows, out):
    """The default ``ae`` (members, latent kNN score on): the detector's own cost, next to the streaming's."""
    model = fit_model(workdir, (), name="ae-default")
    data = generate(workdir / f"default-{rows}.parquet", rows, "parquet")
    try:
        measure_score(model, data, rows, out, {"engine": "local", "format": "parquet", "model": "ae (defaults)"})
    finally:
        data.unlink(missing_ok=True)


def local_suite(model, workdir, sizes, formats, out, csv_output_rows):
    one = workdir / "one.parquet"
    import pyarrow.parquet as pq

    pq.write_table(_chunk(np.random.default_rng(1), 0, 1), one)
    measure_score(model, one, 1, out, {"engine": "local", "format": "parquet", "cell": "startup"})
    one.unlink()
    for fmt in formats:
        for rows in sizes:
            data = generate(workdir / f"data-{rows}.{fmt}", rows, fmt)
            try:
                measure_score(model, data, rows, out, {"engine": "local", "format": fmt})
                if fmt == "parquet" and rows == csv_output_rows:
                    measure_score(model, data, rows, out, {"engine": "local", "format": fmt},
                                  output="scores.csv")
            finally:
                data.unlink(missing_ok=True)


def dask_suite(model, workdir, rows, workers_list, out):
    import logging

    from distributed import Client, LocalCluster

    parts = workdir / "parts"
    parts.mkdir(exist_ok=True)
    try:
        rng = np.random.default_rng(7)
        import pyarrow.parquet as pq

        for i, start in enumerate(range(0, rows, CHUNK_ROWS)):
            pq.write_table(_chunk(rng, start, min(CHUNK_ROWS, rows - start)), parts / f"part-{i:04d}.parquet")
        warm = workdir / "warm.parquet"
        pq.write_table(_chunk(rng, 0, 1000), warm)
        for workers in workers_list:
            with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                              silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
                address = client.scheduler.address
                run_child(adscore("score", "--engine", "dask", "--scheduler", address, "-m", model, warm,
                                  "-o", workdir / "warm.csv"))  # workers import torch and load the model
                target = workdir / "dask-scores.parquet"
                result = run_child(adscore("score", "--engine", "dask", "--scheduler", address, "-m", model,
                                           "--id-column", "id", parts / "part-*.parquet", "-o", target))
                target.unlink(missing_ok=True)
                record(out, {"engine": "dask", "format": "parquet", "workers": workers, "rows": rows, **result,
                             "rows_per_s": rows / result["seconds"], "output": "parquet",
                             "note": "peak_rss_mb is the client process only"})
    finally:
        shutil.rmtree(parts, ignore_errors=True)


def table(out: Path) -> str:
    lines = ["| engine | input | rows | output | seconds | rows/s | peak RSS (MB) |", "|---|---|---|---|---|---|---|"]
    with open(out) as handle:
        for line in handle:
            c = json.loads(line)
            engine = c["engine"] + (f" ({c['workers']} workers)" if "workers" in c else "")
            engine += f", {c['model']}" if "model" in c else ""
            fmt = c["format"] + (" (startup: 1 row)" if c.get("cell") == "startup" else "")
            lines.append(f"| {engine} | {fmt} | {c['rows']:,} | {c.get('output', '')} | {c['seconds']:.1f} | "
                         f"{c['rows_per_s']:,.0f} | {c['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000, 50_000_000])
    parser.add_argument("--formats", nargs="+", choices=("parquet", "csv"), default=["parquet", "csv"])
    parser.add_argument("--dask-workers", type=int, nargs="*", default=[1, 2],
                        help="local Dask cluster sizes to measure (none: skip Dask)")
    parser.add_argument("--dask-rows", type=int, default=10_000_000)
    parser.add_argument("--csv-output-rows", type=int, default=10_000_000,
                        help="also measure CSV output at this Parquet size")
    parser.add_argument("--param", dest="params", action="append", metavar="KEY=VALUE",
                        help="ae parameter of the model scored (default: latent_knn_weight=0 and "
                             "n_members=1, one network's reconstruction score)")
    parser.add_argument("--default-model-rows", type=int, default=1_000_000,
                        help="also score this many Parquet rows with the default ae (0: skip)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/adscore-scale"))
    parser.add_argument("--out", type=Path, default=RESULTS_FILE)
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    try:
        params = args.params if args.params is not None else ["latent_knn_weight=0", "n_members=1"]
        model = fit_model(args.workdir, params)
        local_suite(model, args.workdir, args.sizes, args.formats, args.out, args.csv_output_rows)
        if args.default_model_rows:
            default_model_cell(args.workdir, args.default_model_rows, args.out)
        if args.dask_workers:
            dask_suite(model, args.workdir, args.dask_rows, args.dask_workers, args.out)
    finally:
        shutil.rmtree(args.workdir, ignore_errors=True)
    print(table(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
