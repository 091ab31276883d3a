"""Ensemble of toll + iforest + ecod against each of its members on ADBench sets.

Protocol (default one-class, the Toll paper's; ``--protocol unsupervised`` is
ADBench's): for each seed, a stratified 60/40 train/test split of the set; the
ensemble ``Ensemble(("toll", "iforest", "ecod"), random_state=seed)`` with default
parameters is fitted on the normal rows of the train part (one-class) or on the
whole train part (unsupervised), and scores the test part. The members' ROC-AUC are
those of the ensemble's own fitted members (``members_[i].decision_function``), so
ensemble and members come from the same run with the same seeds. Every combination
rule is also evaluated on the same member scores (normalisation fitted on the
members' training scores).

"Best member (oracle)" picks, per data set, the member with the highest mean ROC-AUC
on the test labels, an upper bound no unsupervised user can reach; "best member
overall" is the single member with the highest mean over all sets.

    python -m benchmarks.ensemble_compare                       # 8 sets, seeds 0 1 2
    python -m benchmarks.ensemble_compare --seeds 0 --datasets 6_cardio 38_thyroid

Data are read from ``../shared/datasets/adbench`` beside the checkout (or
``$ADSCORE_DATASETS``); the script exits with a message when the folder is absent.
Prints markdown on stdout, progress on stderr.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split

from .common import DatasetsMissing, load_dataset, require_datasets

DEFAULT_DATASETS = ("4_breastw", "6_cardio", "18_Ionosphere", "29_Pima", "31_satimage-2", "38_thyroid",
                    "40_vowels", "47_yeast")
MEMBERS = ("toll", "iforest", "ecod")
RULES = (("zscore", "mean"), ("zscore", "max"), ("zscore", "median"), ("zscore", "aom"), ("zscore", "moa"),
         ("rank", "mean"), ("minmax", "mean"))


def run(datasets, seeds, protocol):
    from pyod_ae_ext.ensemble import (Ensemble, apply_normalizer, bucket_assignment, combine_scores,
                                      default_n_buckets, fit_normalizer)

    root = require_datasets()
    rows = []
    for name in datasets:
        X, y = load_dataset(name, root)
        for seed in seeds:
            X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.4, stratify=y, random_state=seed)
            fit_rows = X_train[y_train == 0] if protocol == "one-class" else X_train
            ensemble = Ensemble(MEMBERS, random_state=seed)
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ensemble.fit(fit_rows)
            fit_s = time.perf_counter() - started
            train_raw = np.column_stack([m.decision_scores_ for m in ensemble.members_])
            test_raw = np.column_stack([m.decision_function(X_test) for m in ensemble.members_])
            result = dict(dataset=name, seed=seed, fit_s=fit_s)
            for j, member in enumerate(MEMBERS):
                result[member] = roc_auc_score(y_test, test_raw[:, j])
                result[f"ap:{member}"] = average_precision_score(y_test, test_raw[:, j])
            ens_scores = ensemble.decision_function(X_test)
            result["ensemble"] = roc_auc_score(y_test, ens_scores)
            result["ap:ensemble"] = average_precision_score(y_test, ens_scores)
            buckets = bucket_assignment(len(MEMBERS), default_n_buckets(len(MEMBERS)), seed)
            for normalize, combine in RULES:
                state = fit_normalizer(train_raw, normalize)
                combined = combine_scores(apply_normalizer(test_raw, normalize, state), combine, buckets=buckets)
                result[f"{combine}/{normalize}"] = roc_auc_score(y_test, combined)
            rows.append(result)
            print(f"  {name} seed={seed}: " + " ".join(f"{m} {result[m]:.3f}" for m in (*MEMBERS, "ensemble"))
                  + f"  fit {fit_s:.1f}s", file=sys.stderr)
    return rows


def markdown(rows, seeds, protocol) -> str:
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))

    def mean(name, key):
        return float(np.mean([r[key] for r in rows if r["dataset"] == name]))

    lines = [f"Ensemble `Ensemble((\"toll\", \"iforest\", \"ecod\"))` (defaults: zscore normalisation, mean) "
             f"vs its own members, {protocol} protocol, seeds {list(seeds)}; test ROC-AUC, mean over seeds.", "",
             "| dataset | toll | iforest | ecod | best member (oracle) | **ensemble** | ensemble − oracle | fit s |",
             "|---|---|---|---|---|---|---|---|"]
    per_set = {}
    for name in datasets:
        members = {m: mean(name, m) for m in MEMBERS}
        best = max(members, key=members.get)
        ens = mean(name, "ensemble")
        per_set[name] = (members, best, ens)
        lines.append(f"| {name} | " + " | ".join(f"{members[m]:.3f}" for m in MEMBERS)
                     + f" | {members[best]:.3f} ({best}) | **{ens:.3f}** | {ens - members[best]:+.3f} "
                       f"| {mean(name, 'fit_s'):.1f} |")
    member_means = {m: float(np.mean([per_set[n][0][m] for n in datasets])) for m in MEMBERS}
    oracle = float(np.mean([per_set[n][0][per_set[n][1]] for n in datasets]))
    ens_mean = float(np.mean([per_set[n][2] for n in datasets]))
    best_overall = max(member_means, key=member_means.get)
    lines.append("| **mean** | " + " | ".join(f"{member_means[m]:.3f}" for m in MEMBERS)
                 + f" | {oracle:.3f} | **{ens_mean:.3f}** | {ens_mean - oracle:+.3f} | |")
    lines += ["", f"Mean ROC-AUC over {len(datasets)} sets: ensemble {ens_mean:.3f}; best member overall "
                  f"({best_overall}) {member_means[best_overall]:.3f} "
                  f"(ensemble {ens_mean - member_means[best_overall]:+.3f}); "
                  f"per-set oracle best member {oracle:.3f} (ensemble {ens_mean - oracle:+.3f}). "
                  f"Ensemble ≥ oracle best member on "
                  f"{sum(per_set[n][2] >= per_set[n][0][per_set[n][1]] for n in datasets)} of {len(datasets)} sets.",
              "", "Every combination rule on the same member scores (mean ROC-AUC over sets and seeds):", "",
              "| rule | mean ROC-AUC |", "|---|---|"]
    for normalize, combine in RULES:
        key = f"{combine}/{normalize}"
        lines.append(f"| {combine} of {normalize} | {np.mean([mean(n, key) for n in datasets]):.3f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DEFAULT_DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--protocol", choices=["one-class", "unsupervised"], default="one-class")
    args = parser.parse_args(argv)
    try:
        rows = run(args.datasets, args.seeds, args.protocol)
    except DatasetsMissing as exc:
        print(f"skipped: {exc}", file=sys.stderr)
        return
    if rows:
        print(markdown(rows, args.seeds, args.protocol))


if __name__ == "__main__":
    main()
