"""How Toll's default ``lam`` was chosen: a sweep on the shared ADBench sets.

``python -m benchmarks.toll_lambda [--seeds N] [--protocol one-class|unsupervised]``
fits Toll with each ``lam`` (``lam=0`` is the plain autoencoder) and every other
parameter at its default, on the datasets below, and prints mean ROC-AUC per dataset
and over datasets (markdown on stdout, progress on stderr).
"""
from __future__ import annotations

import argparse

import numpy as np

from pyod_ae_ext import benchmarking as bench

from .common import load_dataset, log, markdown_table, require_datasets

DATASETS = ("6_cardio", "38_thyroid", "4_breastw", "29_Pima", "18_Ionosphere", "31_satimage-2", "47_yeast",
            "40_vowels", "41_Waveform", "arrhythmia")
LAMS = (0.0, 0.1, 1.0, 10.0, 100.0)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.toll_lambda", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--protocol", default="one-class", choices=bench.PROTOCOLS)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--lams", nargs="+", type=float, default=list(LAMS))
    args = parser.parse_args(argv)
    root = require_datasets()
    choices = [bench.resolve_detector("toll", {"lam": lam}, label=f"lam={lam:g}") for lam in args.lams]
    table = {}
    for dataset in args.datasets:
        X, y = load_dataset(dataset, root)
        records = bench.run_benchmark(choices, X, y, range(args.seeds), args.protocol)
        for choice in choices:
            aucs = [r["roc_auc"] for r in records if r["detector"] == choice.label]
            table.setdefault(dataset, {})[choice.label] = float(np.mean(aucs))
        log(f"{dataset}: " + ", ".join(f"{k} {v:.3f}" for k, v in table[dataset].items()))
    labels = [c.label for c in choices]
    rows = [[name, *(f"{table[name][label]:.3f}" for label in labels)] for name in args.datasets]
    rows.append(["**mean**", *(f"**{np.mean([table[n][label] for n in args.datasets]):.3f}**" for label in labels)])
    print(f"Toll lam sweep, {args.protocol} protocol, mean ROC-AUC over {args.seeds} seed(s)\n")
    print(markdown_table(["dataset", *labels], rows))


if __name__ == "__main__":
    main()
