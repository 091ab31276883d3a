"""Quick one-class comparison: our VAE (its three scores) against PyOD's VAE and Isolation Forest.

Protocol (one-class, "semi-supervised"): for each seed, a stratified train/test split
(60/40) of an ADBench set; every detector is fitted on the *normal* rows of the train
part only and scores the whole test part; ROC-AUC and average precision of the test
scores, and wall-clock fit seconds (torch pinned to ``--threads`` intra-op threads,
default 1, for every detector; PyOD's numba kernels are compiled before timing
starts). Our VAE is fitted once per seed and scored three
ways (``score_method=`` reconstruction_probability, reconstruction_error, wasserstein), so the
three rows share one fit time. Data are read from ``../shared/datasets/adbench`` beside
the checkout (or ``$ADSCORE_DATASETS``); the script exits with a message when the folder
is absent.

    python -m benchmarks.quick_compare_vae                      # defaults
    python -m benchmarks.quick_compare_vae --seeds 0 1 2 --datasets 6_cardio 38_thyroid

Prints a markdown table (one row per dataset and method, then per-method means).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
import warnings

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split

from .common import DatasetsMissing, load_dataset, require_datasets

DEFAULT_DATASETS = ("6_cardio", "38_thyroid", "31_satimage-2", "4_breastw")
VAE_SCORES = ("reconstruction_probability", "reconstruction_error", "wasserstein")


def _quiet(call):
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        return call()


def evaluate(X_normal, X_test, y_test, seed, epochs):
    """Yield (method, test scores, fit seconds) for every method on one split."""
    import torch
    from pyod.models.iforest import IForest
    from pyod.models.vae import VAE as PyodVAE

    from pyod_ae_ext import make_detector

    ours = make_detector("vae", epochs=epochs, random_state=seed)
    started = time.perf_counter()
    _quiet(lambda: ours.fit(X_normal))
    fit_s = time.perf_counter() - started
    for score in VAE_SCORES:
        ours.set_params(score_method=score)
        yield f"vae {score} (ours)", ours.decision_function(X_test), fit_s

    torch.manual_seed(seed)
    np.random.seed(seed)
    theirs = PyodVAE(epoch_num=epochs, random_state=seed, verbose=0)
    started = time.perf_counter()
    _quiet(lambda: theirs.fit(X_normal))
    yield "pyod VAE", _quiet(lambda: theirs.decision_function(X_test)), time.perf_counter() - started

    forest = IForest(random_state=seed)
    started = time.perf_counter()
    forest.fit(X_normal)
    yield "IForest", forest.decision_function(X_test), time.perf_counter() - started


def warm_up():
    """Compile PyOD's numba kernel (its VAE scores with it) so no fit time pays for the JIT."""
    from pyod.utils.stat_models import pairwise_distances_no_broadcast

    pairwise_distances_no_broadcast(np.zeros((2, 2)), np.ones((2, 2)))


def run(datasets, seeds, epochs, threads=1):
    root = require_datasets()
    import torch

    if threads:
        torch.set_num_threads(threads)
    warm_up()
    rows = []
    for name in datasets:
        X, y = load_dataset(name, root)
        for seed in seeds:
            X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.4, stratify=y, random_state=seed)
            X_normal = X_train[y_train == 0]
            for method, scores, fit_s in evaluate(X_normal, X_test, y_test, seed, epochs):
                scores = np.asarray(scores, dtype=np.float64)
                rows.append(dict(dataset=name, method=method, seed=seed, auc=roc_auc_score(y_test, scores),
                                 ap=average_precision_score(y_test, scores), fit_s=fit_s))
                print(f"  {name} seed={seed} {method}: AUC {rows[-1]['auc']:.3f} AP {rows[-1]['ap']:.3f} "
                      f"fit {fit_s:.1f}s", file=sys.stderr)
    return rows


def markdown(rows, seeds, epochs) -> str:
    def agg(subset):
        auc = np.array([r["auc"] for r in subset])
        ap = np.array([r["ap"] for r in subset])
        fit = np.array([r["fit_s"] for r in subset])
        sd = f" ± {auc.std(ddof=1):.3f}" if len(auc) > 1 else ""
        return f"{auc.mean():.3f}{sd} | {ap.mean():.3f} | {fit.mean():.2f}"

    method_names = list(dict.fromkeys(r["method"] for r in rows))
    lines = [f"One-class protocol, seeds {list(seeds)}, {epochs} epochs for both VAEs (mean over seeds; "
             "± = std of ROC-AUC; our three VAE scores share one fit)", "",
             "| dataset | method | ROC-AUC | AP | fit s |", "|---|---|---|---|---|"]
    for name in dict.fromkeys(r["dataset"] for r in rows):
        for method in method_names:
            subset = [r for r in rows if r["dataset"] == name and r["method"] == method]
            if subset:
                lines.append(f"| {name} | {method} | {agg(subset)} |")
    for method in method_names:
        per_set = {}
        for r in rows:
            if r["method"] == method:
                per_set.setdefault(r["dataset"], []).append(r)
        auc, ap, fit = (np.mean([np.mean([r[key] for r in v]) for v in per_set.values()])
                        for key in ("auc", "ap", "fit_s"))
        lines.append(f"| **mean** | {method} | {auc:.3f} | {ap:.3f} | {fit:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DEFAULT_DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=50, help="epochs of our VAE and PyOD's (default 50)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads for every detector (default 1; 0 leaves torch's default)")
    args = parser.parse_args(argv)
    try:
        rows = run(args.datasets, args.seeds, args.epochs, args.threads)
    except DatasetsMissing as exc:
        print(f"skipped: {exc}", file=sys.stderr)
        return
    if rows:
        print(markdown(rows, args.seeds, args.epochs))


if __name__ == "__main__":
    main()
