"""Accuracy against training budget: our defaults, a 4x cheaper budget, and PyOD's AutoEncoder.

``python -m benchmarks.training_budget [--seeds N] [--protocol ...] [--datasets ...]``
runs ``ae``, ``toll`` and ``vae`` at their defaults (50 epochs, batch 128) and at
``epochs=20, batch_size=256`` beside PyOD's AutoEncoder (its defaults) in one run, and
prints mean ROC-AUC over the datasets and each one's mean fit time relative to PyOD's
(markdown on stdout, progress on stderr). It answers whether the defaults could train
for less without losing accuracy.
"""
from __future__ import annotations

import argparse

import numpy as np

from pyod_ae_ext import benchmarking as bench

from .accuracy import DATASETS
from .common import load_dataset, log, markdown_table, require_datasets

CHEAP = {"epochs": 20, "batch_size": 256}
REFERENCE = "pyod:AutoEncoder"


def choices():
    out = [bench.resolve_detector("pyod.models.auto_encoder:AutoEncoder", {}, label=REFERENCE)]
    for name in ("ae", "toll", "vae"):
        out.append(bench.resolve_detector(name, {}, label=name))
        out.append(bench.resolve_detector(name, dict(CHEAP), label=f"{name} (20 ep, batch 256)"))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.training_budget",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--protocol", default="one-class", choices=bench.PROTOCOLS)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    args = parser.parse_args(argv)
    root = require_datasets()
    selected = choices()
    auc = {c.label: [] for c in selected}
    fit = {c.label: [] for c in selected}
    for dataset in args.datasets:
        X, y = load_dataset(dataset, root)
        records = bench.run_benchmark(selected, X, y, range(args.seeds), args.protocol)
        for choice in selected:
            mine = [r for r in records if r["detector"] == choice.label]
            auc[choice.label].append(np.mean([r["roc_auc"] for r in mine]))
            fit[choice.label].append(np.mean([r["fit_s"] for r in mine]))
        log(f"{dataset}: " + ", ".join(f"{c.label} {auc[c.label][-1]:.3f}" for c in selected))
    reference_fit = np.array(fit[REFERENCE])
    rows = [[label, f"{np.mean(auc[label]):.3f}", f"{np.mean(fit[label]):.2f}",
             f"{np.mean(np.array(fit[label]) / reference_fit):.3f}"] for label in auc]
    print(f"Training budget, {args.protocol} protocol, {len(args.datasets)} datasets, {args.seeds} seed(s)\n")
    print(markdown_table(["detector", "mean ROC-AUC", "mean fit s", f"fit time / {REFERENCE} (mean of ratios)"],
                         rows))


if __name__ == "__main__":
    main()
