"""Robust feature scaling (issue 9): candidate floors for the per-feature scale, measured.

The engine standardises every feature with the training mean and standard deviation.
A feature that barely varied in training (a rarely inked MNIST border pixel, a column
``5 +- 1e-9``) then gets a tiny scale, and any later deviation in it is multiplied by
the inverse. A *floor* on the scale limits that. This script compares candidate floors
on the data they would change, with everything else at the defaults a user gets:

``std``
    no floor (the engine before issue 9): ``scale_j = std_j``, constant features 1.
``pool:C``
    ``scale_j = max(std_j, C * median_k std_k)``, the median over the non-constant
    features (constant features get the floor too).
``range:C``
    ``scale_j = max(std_j, C * (max_j - min_j))``: no training value lies more than
    ``1/C`` scales from the mean (constant features keep 1).
``rel:C``
    ``scale_j = max(std_j, C * r * (max_j - min_j))`` with ``r`` the median over the
    non-constant features of ``std_k / (max_k - min_k)``: a floor from the feature's
    own range, relative to how the typical feature fills its range (unit-free).
``fillq:Q``
    ``scale_j = max(std_j, q * (max_j - min_j))`` with ``q`` the ``Q``-quantile over the
    non-constant features of ``std_k / (max_k - min_k)`` (how much of its range the
    typical feature's spread fills): where features fill their ranges alike (Gaussian
    columns) the floor barely bites; where they differ widely (pixels: rarely inked
    border pixels against busy centre ones) it scales sparse features by their range.
``fillqt:Q``
    as ``fillq:Q`` with the range taken between the second smallest and the second
    largest value, so that a single extreme training value does not set it.
``fqd:D``
    ``fillqt:0.9`` with the reference fill divided by ``D``: features filling their
    spread at least ``1/D`` as well as the best-filled tenth keep their std.
``x:C``
    ``scale_j = C * std_j``: a control, the same weights for every feature but inputs
    ``1/C`` times smaller (separates the effect of input magnitude on training).
``...+norm:1``
    then divide every scale by the median over non-constant features of
    ``scale_j / std_j``, so the typical feature keeps its plain z-score and only the
    relative weights change.
``...+const:V``
    constant features get scale ``V`` (e.g. 1, the engine before issue 9) instead of
    the floor.
``pool:C1+range:C2``
    both floors (the larger applies).
``engine``
    whatever the installed engine does (no substitution): the rule as shipped.

Experiments:

``mnist``
    the RDAE digit-4 outlier experiment of :mod:`benchmarks.rdae_mnist` (same rows,
    network and schedule) with ``standardize`` left at its default: F1 of the rows
    ``rdae-l21`` with ``lam="auto"`` flags (``outlier_mask_``), ROC-AUC of its scores.
``adbench``
    the accuracy suite's datasets, protocols and seeded splits
    (:func:`pyod_ae_ext.benchmarking.run_cell`), test ROC-AUC/AP. A cell whose fitted
    scaler (mean and scale) is identical to the ``std`` rule's is not refitted: its
    result is the ``std`` cell's (marked ``same_as``), since fits are deterministic.

``suite RULE accuracy ...``
    the accuracy suite itself (every family) with the scaler replaced by ``RULE``:
    ``python -m benchmarks.robust_scaling suite fillq:0.9 accuracy --out DIR ...``.

``compare BEFORE_DIR AFTER_DIR``
    side-by-side tables of two accuracy-suite results folders (same splits and seeds):
    mean ROC-AUC and AP per family before and after, and the change per dataset.

Run ``python -m benchmarks.robust_scaling mnist|adbench|report [options]``; results are
appended to ``benchmarks/results/robust_scaling/candidates.jsonl`` (a rerun skips
finished cells) and ``report`` prints the markdown tables.
"""
from __future__ import annotations

import argparse
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import numpy as np

from pyod_ae_ext import benchmarking as bench
from pyod_ae_ext import engine

from .common import (RESULTS_DIR, ResultsFile, _load_average, environment, load_dataset, log, markdown_table,
                     read_records, require_datasets)

OUT = RESULTS_DIR / "robust_scaling"
ADBENCH = ("6_cardio", "38_thyroid", "2_annthyroid", "23_mammography", "24_mnist", "25_musk",
           "26_optdigits", "28_pendigits", "31_satimage-2", "30_satellite", "40_vowels",
           "41_Waveform", "29_Pima", "4_breastw", "18_Ionosphere", "47_yeast", "arrhythmia")


# --------------------------------------------------------------------------
# candidate rules


def _plain_stats(X):
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    constant = std <= 1e-12 * np.maximum(1.0, np.abs(mean))
    return mean, std, constant


def make_rule(spec: str):
    """``(X) -> (mean, scale)`` for a rule name (see the module docstring); None for ``engine``."""
    if spec == "engine":
        return None
    parts = [] if spec == "std" else [p.split(":") for p in spec.split("+")]
    for kind, _ in parts:
        if kind not in ("pool", "range", "rel", "x", "norm", "fillq", "fillqt", "fqd", "const"):
            raise SystemExit(f"unknown rule part {kind!r} in {spec!r}")

    def rule(X):
        mean, std, constant = _plain_stats(X)
        floor = np.zeros_like(std)
        for kind, value in parts:
            c = float(value)
            if kind == "pool":
                reference = float(np.median(std[~constant])) if (~constant).any() else 0.0
                floor = np.maximum(floor, c * reference)
            elif kind in ("fillq", "fillqt", "fqd"):
                divisor = 1.0
                if kind == "fqd":
                    divisor, c = c, 0.9
                if kind == "fillq" or X.shape[0] < 4:
                    spread = X.max(axis=0) - X.min(axis=0)
                else:  # second largest minus second smallest: one extreme row does not set it
                    ends = np.partition(X, [1, X.shape[0] - 2], axis=0)
                    spread = ends[-2] - ends[1]
                spread_out = ~constant & (spread > 0)
                fill = std[spread_out] / spread[spread_out]
                if kind != "fillq":  # as the engine: a std above half the spread is one extreme value's
                    fill = fill[fill <= 0.5]
                reference = float(np.quantile(fill, c)) / divisor if fill.size else 0.0
                floor = np.maximum(floor, reference * spread)
            elif kind == "range":
                floor = np.maximum(floor, c * (X.max(axis=0) - X.min(axis=0)))
            else:
                spread = X.max(axis=0) - X.min(axis=0)
                ratio = float(np.median(std[~constant] / spread[~constant])) if (~constant).any() else 0.0
                floor = np.maximum(floor, c * ratio * spread)
        scale = np.maximum(std, floor)
        for kind, value in parts:
            if kind == "x":
                scale = scale * float(value)
            if kind == "norm" and (~constant).any():  # the median feature keeps its z-score
                scale = scale / float(np.median(scale[~constant] / std[~constant]))
        scale[constant] = np.where(floor[constant] > 0, floor[constant], 1.0)
        for kind, value in parts:
            if kind == "const":  # constant features: this scale instead of the floor
                scale[constant] = float(value)
        scale[scale <= 0] = 1.0
        return mean, scale

    return rule


@contextmanager
def using_rule(spec: str):
    rule = make_rule(spec)
    if rule is None:
        yield
        return
    with mock.patch.object(engine, "_standardisation", rule):
        yield


def fitted_scaler(spec: str, X) -> tuple:
    rule = make_rule(spec)
    if rule is None:
        rule = engine._standardisation
    return rule(X)


# --------------------------------------------------------------------------
# experiments


def run_mnist(args, results: ResultsFile) -> None:
    from sklearn.metrics import f1_score, roc_auc_score

    import pyod_ae_ext

    from .rdae_mnist import DEFAULT_DATA, FULL, NETWORK, OUTLIER_FRACTION, QUICK, load_digit4

    config = QUICK if args.quick else FULL
    network = {k: v for k, v in NETWORK.items() if k != "standardize"}  # the default standardize
    for seed in range(args.seeds):
        X, y = load_digit4(DEFAULT_DATA if not args.data_dir else args.data_dir, seed)
        for spec in args.rules:
            cell = {"experiment": "mnist" + ("-quick" if args.quick else ""), "rule": spec,
                    "dataset": "mnist_digit4", "protocol": "rdae-outlier", "detector": "rdae-l21", "seed": seed}
            if results.has(**cell):
                continue
            params = dict(network, lam="auto", outer_iterations=config["outer_iterations"],
                          inner_epochs=config["inner_epochs"], contamination=OUTLIER_FRACTION,
                          random_state=seed, device="cpu")
            started = time.perf_counter()
            with using_rule(spec):
                det = pyod_ae_ext.make_detector("rdae-l21", **params).fit(X)
            record = {"kind": "cell", **cell, "f1": float(f1_score(y, det.outlier_mask_)),
                      "f1_top": float(f1_score(y, det.labels_.astype(bool))),
                      "auc": float(roc_auc_score(y, det.decision_scores_)),
                      "flagged": float(det.outlier_mask_.mean()), "fit_s": time.perf_counter() - started,
                      "scale_min": float(det.scaler_scale_.min()), "scale_max": float(det.scaler_scale_.max())}
            results.append(record)
            log(f"mnist seed {seed} {spec:<22} F1 {record['f1']:.3f} AUC {record['auc']:.3f} "
                f"({record['fit_s']:.0f}s)")


def run_adbench(args, results: ResultsFile) -> None:
    require_datasets()
    choices = [bench.resolve_detector(name, {}, label=name) for name in args.detectors]
    rules = list(dict.fromkeys(["std", *args.rules]))
    for dataset in args.datasets or ADBENCH:
        X, y = load_dataset(dataset)
        X, y = bench.check_labelled(X, y, what=dataset)
        for protocol in args.protocols:
            for seed in range(args.seeds):
                split = bench.split_indices(y, seed, bench.DEFAULT_TEST_SIZE)
                fit_rows = bench.protocol_rows(y, split[0], protocol)
                baseline = fitted_scaler("std", X[fit_rows])
                for spec in rules:
                    changed = None
                    if spec != "std":
                        mean, scale = fitted_scaler(spec, X[fit_rows])
                        same = np.array_equal(mean, baseline[0]) and np.array_equal(scale, baseline[1])
                        changed = int(np.sum(scale != baseline[1]))
                    for choice in choices:
                        cell = {"experiment": "adbench", "rule": spec, "dataset": dataset,
                                "protocol": protocol, "detector": choice.label, "seed": seed}
                        if results.has(**cell):
                            continue
                        if spec != "std" and same:
                            base = next((r for r in results.records if r.get("kind") == "cell"
                                         and not r.get("error") and r["experiment"] == "adbench"
                                         and r["rule"] == "std" and r["dataset"] == dataset
                                         and r["protocol"] == protocol and r["detector"] == choice.label
                                         and r["seed"] == seed), None)
                            if base is not None:
                                results.append({**{k: base[k] for k in ("roc_auc", "ap", "fit_s")},
                                                "kind": "cell", **cell, "same_as": "std", "n_changed": 0})
                                continue
                        with using_rule(spec):
                            record = bench.run_cell(choice, X, y, seed, protocol, split=split)
                        results.append({"kind": "cell", **cell, "roc_auc": record["roc_auc"],
                                        "ap": record["ap"], "fit_s": record["fit_s"], "n_changed": changed})
                        log(f"{dataset} {protocol} seed {seed} {choice.label} {spec:<22} "
                            f"ROC-AUC {record['roc_auc']:.3f} (features rescaled: {changed})")


# --------------------------------------------------------------------------
# report


def _mean_std(values):
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.3f} ± {values.std(ddof=1) if len(values) > 1 else 0.0:.3f}"


def render(records) -> str:
    cells = [r for r in records if r.get("kind") == "cell" and not r.get("error")]
    parts = []
    for experiment in sorted({c["experiment"] for c in cells if c["experiment"].startswith("mnist")}):
        rows = [c for c in cells if c["experiment"] == experiment]
        rules = list(dict.fromkeys(c["rule"] for c in rows))
        table = []
        for rule in rules:
            mine = [c for c in rows if c["rule"] == rule]
            table.append([f"`{rule}`", len(mine), _mean_std([c["f1"] for c in mine]),
                          _mean_std([c["auc"] for c in mine]), _mean_std([c["flagged"] for c in mine]),
                          f"{np.mean([c['fit_s'] for c in mine]):.0f}"])
        parts.append(f"#### RDAE-l2,1 on MNIST digit 4, `standardize` at its default ({experiment})\n\n"
                     + markdown_table(["rule", "seeds", "F1 (S row non-zero)", "ROC-AUC", "flagged",
                                       "fit s"], table) + "\n")
    rows = [c for c in cells if c["experiment"] == "adbench"]
    for protocol in sorted({c["protocol"] for c in rows}):
        for detector in sorted({c["detector"] for c in rows if c["protocol"] == protocol}):
            mine = [c for c in rows if c["protocol"] == protocol and c["detector"] == detector]
            rules = list(dict.fromkeys(c["rule"] for c in mine))
            datasets = [d for d in ADBENCH if any(c["dataset"] == d for c in mine)]
            seeds = sorted({c["seed"] for c in mine})
            table, means = [], {r: [] for r in rules}
            for dataset in datasets:
                line = [dataset]
                for rule in rules:
                    values = [c["roc_auc"] for c in mine if c["dataset"] == dataset and c["rule"] == rule]
                    changed = [c.get("n_changed") for c in mine if c["dataset"] == dataset and c["rule"] == rule]
                    if not values:
                        line.append("-")
                        continue
                    means[rule].append(np.mean(values))
                    mark = "" if rule == "std" or not changed or not changed[0] else f" ({changed[0]})"
                    line.append(f"{np.mean(values):.3f}{mark}")
                table.append(line)
            table.append(["**mean**"] + [f"{np.mean(means[r]):.3f}" if len(means[r]) == len(datasets) else
                                         f"{np.mean(means[r]):.3f} ({len(means[r])}/{len(datasets)})"
                                         for r in rules])
            parts.append(f"#### {detector}, {protocol}, seeds {seeds[0]}..{seeds[-1]}: mean test ROC-AUC per "
                         "rule (in brackets: features whose scale the rule changes, seed 0)\n\n"
                         + markdown_table(["dataset", *[f"`{r}`" for r in rules]], table) + "\n")
    return "\n".join(parts) if parts else "No results yet.\n"


def compare(before_dir: Path, after_dir: Path, labels=("before", "after")) -> str:
    """Side-by-side tables of two accuracy-suite results folders (the same splits and seeds)."""
    def cells(folder):
        records = read_records(Path(folder) / "accuracy.jsonl")
        return {(r["protocol"], r["detector"], r["dataset"], r["seed"]): r for r in records
                if r.get("kind") == "cell" and not r.get("error")}

    old, new = cells(before_dir), cells(after_dir)
    shared = sorted(set(old) & set(new))
    parts = []
    for protocol in sorted({k[0] for k in shared}):
        keys = [k for k in shared if k[0] == protocol]
        detectors = list(dict.fromkeys(k[1] for k in sorted(keys, key=lambda k: k[1])))
        datasets = [d for d in ADBENCH if any(k[2] == d for k in keys)]
        seeds = sorted({k[3] for k in keys})
        rows, deltas_all = [], []
        for detector in detectors:
            mine = [k for k in keys if k[1] == detector]
            per_dataset = {d: ([old[k]["roc_auc"] for k in mine if k[2] == d],
                               [new[k]["roc_auc"] for k in mine if k[2] == d]) for d in datasets}
            b = np.mean([np.mean(v[0]) for v in per_dataset.values()])
            a = np.mean([np.mean(v[1]) for v in per_dataset.values()])
            ap_b = np.mean([np.mean([old[k]["ap"] for k in mine if k[2] == d]) for d in datasets])
            ap_a = np.mean([np.mean([new[k]["ap"] for k in mine if k[2] == d]) for d in datasets])
            # paired over seeds: the standard error of the mean difference over datasets
            diffs = np.array([np.mean(v[1]) - np.mean(v[0]) for v in per_dataset.values()])
            deltas_all.append(diffs)
            better = int(np.sum(diffs > 0.005))
            worse = int(np.sum(diffs < -0.005))
            rows.append([detector, f"{b:.3f}", f"{a:.3f}", f"{a - b:+.3f}",
                         f"{diffs.std(ddof=1) / np.sqrt(len(diffs)):.3f}", f"{better}/{worse}",
                         f"{ap_b:.3f}", f"{ap_a:.3f}", f"{ap_a - ap_b:+.3f}"])
        allb = np.mean([float(r[1]) for r in rows])
        alla = np.mean([float(r[2]) for r in rows])
        rows.append(["**all families**", f"{allb:.3f}", f"{alla:.3f}", f"{alla - allb:+.3f}", "", "", "", "", ""])
        parts.append(f"#### {protocol}: {len(datasets)} datasets, seeds {seeds[0]}..{seeds[-1]}, same splits\n\n"
                     + markdown_table(["detector", f"ROC-AUC {labels[0]}", f"ROC-AUC {labels[1]}", "change",
                                       "s.e. of change", "sets up/down > 0.005", f"AP {labels[0]}",
                                       f"AP {labels[1]}", "change"], rows) + "\n")
        table = []
        for d in datasets:
            line = [d]
            for detector in detectors:
                mine = [k for k in keys if k[1] == detector and k[2] == d]
                delta = np.mean([new[k]["roc_auc"] for k in mine]) - np.mean([old[k]["roc_auc"] for k in mine])
                line.append(f"{delta:+.3f}")
            table.append(line)
        parts.append(f"Change of mean ROC-AUC per dataset ({protocol}, {labels[1]} - {labels[0]}):\n\n"
                     + markdown_table(["dataset", *detectors], table) + "\n")
    return "\n".join(parts)


def run_suite(argv) -> int:
    """``suite RULE ARGS...``: run ``python -m benchmarks ARGS...`` with the engine's scaler replaced by RULE."""
    from .__main__ import main as benchmarks_main

    if len(argv) < 2:
        raise SystemExit("usage: python -m benchmarks.robust_scaling suite RULE accuracy [options]")
    spec, rest = argv[0], argv[1:]
    make_rule(spec)  # check the name early
    sys.argv = ["benchmarks", *rest]  # recorded as the run's command, with the rule below
    log(f"running `python -m benchmarks {' '.join(rest)}` with the scale rule {spec!r}")
    with using_rule(spec):
        return benchmarks_main(rest)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "suite":
        return run_suite(argv[1:])
    if argv and argv[0] == "compare":
        if len(argv) != 3:
            raise SystemExit("usage: python -m benchmarks.robust_scaling compare BEFORE_DIR AFTER_DIR")
        print(compare(Path(argv[1]), Path(argv[2])))
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.robust_scaling", description=__doc__.split("\n")[0])
    parser.add_argument("experiment", choices=("mnist", "adbench", "report", "suite", "compare"))
    parser.add_argument("--rules", nargs="+", default=["std", "engine"], help="candidate rules (see above)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="mnist: the quick schedule of rdae_mnist")
    parser.add_argument("--datasets", nargs="+", help="adbench: dataset names (default: the accuracy suite's 17)")
    parser.add_argument("--detector", dest="detectors", action="append", help="adbench: detector (default ae)")
    parser.add_argument("--protocol", dest="protocols", action="append", choices=bench.PROTOCOLS,
                        help="adbench: protocol (repeatable; default one-class)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--data-dir", type=Path, default=None, help="mnist: the shared datasets folder")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    args.detectors = args.detectors or ["ae"]
    args.protocols = args.protocols or ["one-class"]
    path = args.out / "candidates.jsonl"
    if args.experiment == "report":
        print(render(read_records(path)))
        return 0
    import torch

    torch.set_num_threads(args.threads)
    results = ResultsFile(path, ("experiment", "rule", "dataset", "protocol", "detector", "seed"))
    results.append({"kind": "run", "suite": "robust_scaling",
                    "command": "python -m benchmarks.robust_scaling " + " ".join(argv if argv is not None else sys.argv[1:]),
                    "settings": {"experiment": args.experiment, "rules": args.rules, "seeds": args.seeds,
                                 "detectors": args.detectors, "protocols": args.protocols, "quick": args.quick},
                    "env": environment(), "load_avg": _load_average()})
    (run_mnist if args.experiment == "mnist" else run_adbench)(args, results)
    print(render(read_records(path)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
