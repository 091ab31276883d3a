"""Speed suite: our ``ae`` against PyOD's AutoEncoder, and against the hardware's arithmetic limit.

Every measurement runs in a fresh child process (``python -m benchmarks.speed --cell
JSON``) so that its peak resident memory (``ru_maxrss``, which sees torch's
allocations, unlike tracemalloc) belongs to that cell alone and no cell warms caches
for the next; inside the cell, a small warm-up fit of the same implementation runs
before the timed one (PyOD compiles a numba kernel on its first scoring, which would
otherwise be charged to whichever cell ran first).

1. **Same network, PyOD's settings**: PyOD ``AutoEncoder(hidden_neuron_list=[64, 32],
   batch_norm=True, dropout_rate=0.2, batch_size=32, lr=1e-3,
   optimizer_params={"weight_decay": 1e-5})`` (PyOD's defaults) against our
   ``ae(hidden_dims=(64,), latent_dim=32, batch_norm=True, dropout=0.2, batch_size=32,
   lr=1e-3, weight_decay=1e-5)``: the same four linear layers 32-64-32-64-32 (PyOD's code
   layer also has BatchNorm, ReLU and dropout; ours is linear). Generated data, 32
   features; 10k rows x 10 epochs, 100k x 2, 1M x 1 (``--quick``: 2k and 4k rows x 1 epoch).
   Fit and score (``decision_function`` on the same rows) seconds, the ratio from the
   same run, rows per second and peak memory. (``--quick`` runs its cells in the
   parent process instead, so its peak memory is cumulative.)
2. **Our defaults** (``ae()``: 32-64-32-8-32-64-32, batch 128, no BatchNorm/dropout)
   at the same sizes and epochs.
3. **Arithmetic limit**: the best of 5 ``torch.mm`` of two 4096 x 4096 float32
   matrices (with all threads and with one) gives the machine's matmul throughput.
   FLOPs per epoch of a network = rows x 3 x sum over linear layers of 2 x in x out
   (forward, and about twice that backward); BatchNorm, activations and the optimiser
   are not counted. Training seconds of our ``ae`` at batch 256, 1024 and 4096 on 100k
   rows (``--quick``: 10k) = fit(epochs=E) - fit(epochs=0), i.e. without
   standardisation and the training-score pass; achieved FLOP/s over the limit is the
   fraction reached.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import numpy as np

from .common import (REPO_ROOT, ResultsFile, fmt, fmt_seconds, log, markdown_table, read_records,
                     results_path, run_headers)

N_FEATURES = 32
SIZES = ((10_000, 10), (100_000, 2), (1_000_000, 1))
QUICK_SIZES = ((2_000, 1), (4_000, 1))
FLOPS_ROWS, QUICK_FLOPS_ROWS = 100_000, 10_000
FLOPS_EPOCHS, QUICK_FLOPS_EPOCHS = 3, 1
BATCH_SIZES = (256, 1024, 4096)
MATMUL_N, QUICK_MATMUL_N = 4096, 1024
CELL_TIMEOUT = 3600

PYOD_SETTINGS = dict(hidden_neuron_list=[64, 32], batch_norm=True, dropout_rate=0.2, batch_size=32, lr=1e-3,
                     optimizer_params={"weight_decay": 1e-5}, verbose=0, random_state=0)
OURS_PYOD_SETTINGS = dict(hidden_dims=(64,), latent_dim=32, batch_norm=True, dropout=0.2, batch_size=32,
                          lr=1e-3, weight_decay=1e-5, random_state=0, n_members=1)
IMPLS = {
    "pyod:AutoEncoder": "PyOD AutoEncoder, PyOD settings",
    "ours-pyod-settings": "our ae, PyOD settings",
    "ours-defaults": "our ae, defaults",
}
FLOPS_NETS = {
    "defaults": {},
    "pyod-layers": dict(hidden_dims=(64,), latent_dim=32),
}


# --------------------------------------------------------------------------
# the child: one measurement


def make_data(rows: int, seed: int = 0) -> np.ndarray:
    """Correlated Gaussian data: 8 latent factors mixed into 32 features, plus noise."""
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((8, N_FEATURES))
    X = np.empty((rows, N_FEATURES))
    for start in range(0, rows, 100_000):
        stop = min(rows, start + 100_000)
        X[start:stop] = rng.standard_normal((stop - start, 8)) @ mixing + 0.3 * rng.standard_normal(
            (stop - start, N_FEATURES))
    return X


def _maxrss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _build(impl: str, epochs: int, **overrides):
    import pyod_ae_ext

    if impl == "pyod:AutoEncoder":
        from pyod.models.auto_encoder import AutoEncoder

        return AutoEncoder(epoch_num=epochs, **{**PYOD_SETTINGS, **overrides})
    if impl == "ours-pyod-settings":
        return pyod_ae_ext.make_detector("ae", epochs=epochs, **{**OURS_PYOD_SETTINGS, **overrides})
    if impl == "ours-defaults":
        return pyod_ae_ext.make_detector("ae", epochs=epochs, random_state=0, **overrides)
    raise ValueError(f"unknown implementation {impl!r}")


def child_fit(cell: dict) -> dict:
    import torch

    from pyod_ae_ext.benchmarking import quiet, seed_everything, timed_fit_and_score

    X = make_data(cell["rows"])
    # warm-up in the same process: PyOD compiles a numba kernel on its first scoring and
    # torch initialises its kernels; neither belongs to the per-row cost measured here
    started = time.perf_counter()
    with quiet():
        _build(cell["impl"], 1).fit(X[:256]).decision_function(X[:256])
    warm_up_s = time.perf_counter() - started
    base = _maxrss_mib()
    detector = _build(cell["impl"], cell["epochs"])
    seed_everything(0)
    scores, fit_s, score_s = timed_fit_and_score(detector, X, X)
    if not np.isfinite(scores).all():
        raise RuntimeError("non-finite scores")
    device = getattr(detector, "device_", None) or str(getattr(detector, "device", "cpu"))
    return {"fit_s": fit_s, "score_s": score_s, "warm_up_s": warm_up_s, "rss_base_mib": base,
            "rss_peak_mib": _maxrss_mib(),
            "torch_threads": torch.get_num_threads(), "device": str(device)}


def child_flops(cell: dict) -> dict:
    import torch

    import pyod_ae_ext
    from pyod_ae_ext.benchmarking import seed_everything
    from pyod_ae_ext.engine import _SINGLE_THREAD_WORK

    X = make_data(cell["rows"])
    params = dict(FLOPS_NETS[cell["net"]], batch_size=cell["batch_size"], random_state=0, n_members=1)
    pyod_ae_ext.make_detector("ae", epochs=1, **params).fit(X[:1024])  # warm-up
    seed_everything(0)
    times = {}
    for epochs in (0, cell["epochs"]):
        detector = pyod_ae_ext.make_detector("ae", epochs=epochs, **params)
        started = time.perf_counter()
        detector.fit(X)
        times[epochs] = time.perf_counter() - started
    linears = [m for m in detector.net_.modules() if isinstance(m, torch.nn.Linear)]
    forward_per_row = sum(2 * m.in_features * m.out_features for m in linears)
    train_s = max(times[cell["epochs"]] - times[0], 1e-9)
    flops_epoch = 3 * forward_per_row * cell["rows"]
    widest = max(N_FEATURES, *detector.hidden_widths(), detector.latent_dim)
    cpu = str(detector.device_) == "cpu"
    threads = 1 if cpu and cell["batch_size"] * widest <= _SINGLE_THREAD_WORK else torch.get_num_threads()
    return {"train_s": train_s, "fit0_s": times[0], "flops_per_epoch": flops_epoch,
            "layers": [[m.in_features, m.out_features] for m in linears],
            "gflops": flops_epoch * cell["epochs"] / train_s / 1e9, "engine_threads": threads,
            "device": str(detector.device_), "rss_peak_mib": _maxrss_mib()}


def child_matmul(cell: dict) -> dict:
    import torch

    n = cell["n"]
    device = "cuda" if cell.get("device") == "cuda" else "cpu"
    if device == "cpu":
        torch.set_num_threads(cell["threads"])
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    torch.mm(a, b)
    sync()
    best = math.inf
    for _ in range(5):
        started = time.perf_counter()
        torch.mm(a, b)
        sync()
        best = min(best, time.perf_counter() - started)
    return {"seconds": best, "gflops": 2 * n ** 3 / best / 1e9, "torch_threads": torch.get_num_threads()}


CHILDREN = {"fit": child_fit, "flops": child_flops, "matmul": child_matmul}


# --------------------------------------------------------------------------
# the parent: which cells, in child processes


def cells(quick: bool, include_pyod_1m: bool = True) -> list:
    import torch

    sizes = QUICK_SIZES if quick else SIZES
    out = []
    for impl in IMPLS:
        for rows, epochs in sizes:
            if impl == "pyod:AutoEncoder" and rows >= 1_000_000 and not include_pyod_1m:
                continue
            out.append({"test": "fit", "impl": impl, "rows": rows, "epochs": epochs})
    n = QUICK_MATMUL_N if quick else MATMUL_N
    threads = sorted({1, torch.get_num_threads()})
    out += [{"test": "matmul", "n": n, "threads": t, "device": "cpu"} for t in threads]
    if torch.cuda.is_available():
        out.append({"test": "matmul", "n": n, "threads": 0, "device": "cuda"})
    for net in FLOPS_NETS:
        for batch_size in BATCH_SIZES:
            out.append({"test": "flops", "net": net, "batch_size": batch_size,
                        "rows": QUICK_FLOPS_ROWS if quick else FLOPS_ROWS,
                        "epochs": QUICK_FLOPS_EPOCHS if quick else FLOPS_EPOCHS})
    return out


def run_child(cell: dict, timeout: float) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        done = subprocess.run([sys.executable, "-m", "benchmarks.speed", "--cell", json.dumps(cell)],
                              cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    lines = [line for line in done.stdout.strip().splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"child exited {done.returncode}: {tail}"}
    return json.loads(lines[-1])


def run(args) -> int:
    quick = args.quick
    results = ResultsFile(results_path(args.out, "speed", quick), ("cell_id",))
    todo = cells(quick, include_pyod_1m=not args.skip_pyod_1m)
    if args.tests:
        todo = [c for c in todo if c["test"] in args.tests]
    if args.rows:
        todo = [c for c in todo if c["test"] != "fit" or c["rows"] in args.rows]
    results.start_run("speed", {"quick": quick, "cells": len(todo), "timeout_s": args.timeout})
    log(f"speed suite -> {results.path}: {len(todo)} measurements, each in its own process")
    for cell in todo:
        cell_id = json.dumps(cell, sort_keys=True)
        if results.has(cell_id=cell_id):
            continue
        started = time.perf_counter()
        if quick:  # smoke run: in this process (no per-cell memory isolation, no import cost per cell)
            try:
                outcome = {**CHILDREN[cell["test"]](cell), "in_process": True}
            except Exception as exc:  # recorded like a failed child
                outcome = {"error": f"{type(exc).__name__}: {exc}"}
        else:
            outcome = run_child(cell, args.timeout)
        record = {"kind": "cell", "cell_id": cell_id, **outcome, **cell, "wall_s": time.perf_counter() - started,
                  "load_avg": list(os.getloadavg())}
        results.append(record)
        log(f"  {json.dumps(cell)} -> " + (record["error"] if "error" in record else ", ".join(
            f"{k} {v:.4g}" for k, v in outcome.items() if isinstance(v, float))))
    print(render(read_records(results.path)))
    return 0


# --------------------------------------------------------------------------
# report


def _latest(cells, **match):
    found = [c for c in cells if all(c.get(k) == v for k, v in match.items())]
    return found[-1] if found else None


def render(records) -> str:
    cells = [r for r in records if r.get("kind") == "cell" and not r.get("error")]
    errors = [r for r in records if r.get("kind") == "cell" and r.get("error")]
    parts = ["## Speed\n", run_headers(records, {"speed"})]
    if not cells and not errors:
        return "\n".join(parts + ["No results yet.\n"])
    where = ("every cell in this one process (a --quick run: peak memory is cumulative)"
             if any(c.get("in_process") for c in cells) else "every cell in a fresh process")
    parts.append(f"Generated data, 32 features; {where}, after a warm-up fit of the same implementation. "
                 "Fit seconds include "
                 "standardisation and scoring the training rows (PyOD's `fit` contract); score seconds are "
                 "`decision_function` on the same rows. Peak memory is the process's maximum resident set "
                 "(`ru_maxrss`), the data included. Load average at measurement in the last column: the "
                 "machine is shared, so high load inflates both sides.\n")
    fits = [c for c in cells if c["test"] == "fit"]
    sizes = sorted({(c["rows"], c["epochs"]) for c in fits})
    if fits:
        parts.append("### Same network and settings as PyOD's AutoEncoder\n")
        parts.append("PyOD `AutoEncoder(hidden_neuron_list=[64, 32], batch_norm=True, dropout_rate=0.2, "
                     "batch_size=32, lr=1e-3, weight_decay=1e-5)` vs our `ae(hidden_dims=(64,), latent_dim=32, "
                     "batch_norm=True, dropout=0.2, batch_size=32, lr=1e-3, weight_decay=1e-5)`.\n")
        body = []
        for rows, epochs in sizes:
            p = _latest(fits, impl="pyod:AutoEncoder", rows=rows, epochs=epochs)
            o = _latest(fits, impl="ours-pyod-settings", rows=rows, epochs=epochs)
            if not (p or o):
                continue
            body.append([
                f"{rows:,}", epochs,
                fmt_seconds(p["fit_s"]) if p else "-", fmt_seconds(o["fit_s"]) if o else "-",
                f"{p['fit_s'] / o['fit_s']:.1f}x" if p and o else "-",
                fmt_seconds(p["score_s"]) if p else "-", fmt_seconds(o["score_s"]) if o else "-",
                f"{p['score_s'] / o['score_s']:.1f}x" if p and o else "-",
                _rate(rows * epochs, o["fit_s"]) if o else "-", _rate(rows, o["score_s"]) if o else "-",
                f"{p['rss_peak_mib']:.0f} / {o['rss_peak_mib']:.0f}" if p and o else "-",
                _load(p, o),
            ])
        parts.append(markdown_table(["rows", "epochs", "PyOD fit s", "ours fit s", "fit speed-up", "PyOD score s",
                                     "ours score s", "score speed-up", "ours train rows/s", "ours score rows/s",
                                     "peak MiB PyOD / ours", "load"], body))
        parts.append("")
        body = []
        for rows, epochs in sizes:
            o = _latest(fits, impl="ours-defaults", rows=rows, epochs=epochs)
            if o:
                body.append([f"{rows:,}", epochs, fmt_seconds(o["fit_s"]), fmt_seconds(o["score_s"]),
                             _rate(rows * epochs, o["fit_s"]), _rate(rows, o["score_s"]),
                             f"{o['rss_peak_mib']:.0f}", f"{o['rss_peak_mib'] - o['rss_base_mib']:.0f}",
                             o.get("device", "?"), _load(o)])
        if body:
            parts.append("### Our defaults (`ae()`: 32-64-32-8-32-64-32, batch 128)\n")
            parts.append(markdown_table(["rows", "epochs", "fit s", "score s", "train rows/s", "score rows/s",
                                         "peak MiB", "MiB over data", "device", "load"], body))
            parts.append("")
        parts.append("### Time against rows (linearity)\n")
        parts.append("Fit seconds per epoch and per million rows; the slope is d log(fit s per epoch) / "
                     "d log(rows) between the smallest and largest size (1.0 = linear).\n")
        body = []
        for impl, title in IMPLS.items():
            points = [(c["rows"], c["fit_s"] / c["epochs"], c["score_s"]) for c in fits if c["impl"] == impl]
            if not points:
                continue
            points.sort()
            per_m = ", ".join(f"{r:,}: {1e6 * t / r:.2f}" for r, t, _ in points)
            slope = (math.log(points[-1][1] / points[0][1]) / math.log(points[-1][0] / points[0][0])
                     if len(points) > 1 else float("nan"))
            score_slope = (math.log(points[-1][2] / points[0][2]) / math.log(points[-1][0] / points[0][0])
                           if len(points) > 1 else float("nan"))
            body.append([title, per_m, fmt(slope, 2), fmt(score_slope, 2)])
        parts.append(markdown_table(["implementation", "fit s per epoch per 1M rows (by rows)", "fit slope",
                                     "score slope"], body, align=["l", "l", "r", "r"]))
        parts.append("")
    matmuls = [c for c in cells if c["test"] == "matmul"]
    flops = [c for c in cells if c["test"] == "flops"]
    if matmuls or flops:
        parts.append("### Arithmetic limit\n")
        peak = {}
        for c in matmuls:
            key = "cuda" if c["device"] == "cuda" else c["threads"]
            peak[key] = c["gflops"]
        parts.append("Measured matmul throughput (best of 5 `torch.mm`, float32): " + ", ".join(
            f"{c['n']}x{c['n']} on " + ("GPU" if c["device"] == "cuda" else f"{c['threads']} thread(s)")
            + f": **{c['gflops']:.1f} GFLOP/s**" for c in matmuls) + ".\n")
        all_threads = max((v for k, v in peak.items() if k != "cuda"), default=None)
        body = []
        for c in flops:
            limit = peak.get("cuda") if c.get("device", "cpu").startswith("cuda") else all_threads
            engine_limit = peak.get("cuda") if c.get("device", "cpu").startswith("cuda") else peak.get(
                c["engine_threads"], all_threads)
            layers = "-".join(str(x) for x in [c["layers"][0][0]] + [lay[1] for lay in c["layers"]])
            limit_s = c["flops_per_epoch"] / (limit * 1e9) if limit else None
            body.append([
                f"{c['net']} ({layers})", c["batch_size"], f"{c['rows']:,}",
                f"{c['flops_per_epoch'] / 1e9:.2f}", fmt_seconds(c["train_s"] / c["epochs"]),
                fmt_seconds(limit_s) if limit_s else "-", f"{c['gflops']:.2f}",
                f"{c['gflops'] / limit:.1%}" if limit else "-",
                f"{limit / c['gflops']:.1f}x" if limit else "-",
                f"{c['engine_threads']}: {c['gflops'] / engine_limit:.1%}" if engine_limit else "-",
            ])
        if body:
            parts.append("Training FLOPs per epoch = rows x 3 x sum(2 x in x out) over the linear layers; train "
                         "seconds = fit(epochs=E) - fit(epochs=0).\n")
            parts.append(markdown_table(["network", "batch", "rows", "GFLOP/epoch", "train s/epoch",
                                         "limit s/epoch", "achieved GFLOP/s", "of limit", "slower than limit by",
                                         "engine threads: of that many threads' limit"], body))
            parts.append("")
    if errors:
        parts.append("Failed or skipped measurements:\n")
        fields = ("test", "impl", "rows", "epochs", "net", "batch_size")
        parts += [f"- {json.dumps({k: e[k] for k in fields if e.get(k) is not None})}: {e['error']}" for e in errors]
        parts.append("")
    return "\n".join(parts)


def _rate(rows, seconds) -> str:
    if not seconds:
        return "-"
    rate = rows / seconds
    if rate >= 1e6:
        return f"{rate / 1e6:.2f}M"
    if rate >= 1e3:
        return f"{rate / 1e3:.0f}k"
    return f"{rate:.0f}"


def _load(*cells) -> str:
    loads = [c["load_avg"][0] for c in cells if c and c.get("load_avg")]
    return f"{max(loads):.1f}" if loads else "-"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "--cell":
        import warnings

        warnings.simplefilter("ignore")
        if os.environ.get("ADSCORE_BENCH_THREADS"):
            import torch

            torch.set_num_threads(int(os.environ["ADSCORE_BENCH_THREADS"]))
        cell = json.loads(argv[1])
        print(json.dumps(CHILDREN[cell["test"]](cell)), flush=True)
        return 0
    from .__main__ import main as suites_main

    return suites_main(["speed", *argv])


if __name__ == "__main__":
    sys.exit(main())
