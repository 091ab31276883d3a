"""Fit time of our ``ae`` against PyOD's AutoEncoder on ADBench's 6_cardio, same network and settings.

``python -m benchmarks.cardio_fit_time [--repeats N]``: both fit all 1,831 rows with
PyOD's AutoEncoder defaults (layers 64-32 with BatchNorm and dropout 0.2, batch 32,
10 epochs, Adam lr 1e-3, weight decay 1e-5) and ours configured to match (see
``benchmarks/speed.py``), alternating, after one warm-up fit of each; prints the
median fit seconds and their ratio from the same run.
"""
from __future__ import annotations

import argparse
import statistics
import time

import pyod_ae_ext
from pyod_ae_ext import benchmarking as bench

from .common import load_dataset, require_datasets
from .speed import OURS_PYOD_SETTINGS, PYOD_SETTINGS


def _fit_seconds(make, X) -> float:
    detector = make()
    started = time.perf_counter()
    with bench.quiet():
        detector.fit(X)
    return time.perf_counter() - started


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cardio_fit_time", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    X, _ = load_dataset("6_cardio", require_datasets())
    from pyod.models.auto_encoder import AutoEncoder

    def ours():
        return pyod_ae_ext.make_detector("ae", epochs=10, **OURS_PYOD_SETTINGS)

    def pyod():
        return AutoEncoder(epoch_num=10, **PYOD_SETTINGS)

    for make in (ours, pyod):  # warm-up: imports, numba compilation
        _fit_seconds(make, X)
    times = {"ours": [], "pyod": []}
    for _ in range(args.repeats):
        times["ours"].append(_fit_seconds(ours, X))
        times["pyod"].append(_fit_seconds(pyod, X))
    ours_s, pyod_s = statistics.median(times["ours"]), statistics.median(times["pyod"])
    print(f"6_cardio ({X.shape[0]} x {X.shape[1]}), 10 epochs, batch 32, layers 64-32 + BatchNorm + dropout 0.2; "
          f"median of {args.repeats}: PyOD AutoEncoder {pyod_s:.2f} s, our ae {ours_s:.2f} s, "
          f"ratio {pyod_s / ours_s:.1f}x")


if __name__ == "__main__":
    main()
