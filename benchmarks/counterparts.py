"""Each autoencoder family against its PyOD counterpart, from the accuracy suite's results.

``python -m benchmarks.counterparts [--results DIR]`` reads ``accuracy.jsonl`` and
compares, per protocol, seed 0 of each pair on the datasets where both finished
(PyOD's slow deep models ran one seed): mean ROC-AUC and mean fit seconds.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .common import RESULTS_DIR, markdown_table, read_records

PAIRS = (("vae", "pyod:VAE"), ("deep-svdd", "pyod:DeepSVDD"), ("deep-ocsvm", "pyod:AE1SVM"),
         ("ae", "pyod:AutoEncoder"), ("toll", "pyod:AutoEncoder"), ("rdae-l21", "pyod:AutoEncoder"),
         ("ksparse-ae", "pyod:AutoEncoder"))


def _by_dataset(records, detector, protocol, seed=0):
    return {r["dataset"]: r for r in records
            if r.get("detector") == detector and r.get("protocol") == protocol and r.get("seed") == seed
            and "roc_auc" in r}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.counterparts", description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    records = read_records(args.results / "accuracy.jsonl")
    rows = []
    for protocol in ("one-class", "unsupervised"):
        for ours, theirs in PAIRS:
            a, b = _by_dataset(records, ours, protocol), _by_dataset(records, theirs, protocol)
            common = sorted(set(a) & set(b))
            if not common:
                continue
            auc_a, auc_b = (np.mean([d[n]["roc_auc"] for n in common]) for d in (a, b))
            fit_a, fit_b = (np.mean([d[n]["fit_s"] for n in common]) for d in (a, b))
            rows.append([protocol, ours, theirs, str(len(common)), f"{auc_a:.3f}", f"{auc_b:.3f}",
                         f"{fit_a:.2f}", f"{fit_b:.2f}", f"{fit_a / fit_b:.3f}"])
    print("Seed 0, datasets where both finished; fit seconds with 1 torch thread.\n")
    print(markdown_table(["protocol", "ours", "PyOD", "datasets", "ours ROC-AUC", "PyOD ROC-AUC", "ours fit s",
                          "PyOD fit s", "fit time ratio"], rows))


if __name__ == "__main__":
    main()
