"""Toll one-class per MNIST digit with the convolutional backbone, beside the MLP and PyOD.

Protocol (the Toll paper's one-class image protocol, on ``mnist/mnist_digit{K}.npz``:
every image of digit K as normal, ~1,000 other digits as anomalies): per seed a
stratified 70/30 train/test split (:func:`pyod_ae_ext.benchmarking.split_indices`), fit
on the train part's images of digit K, score the test part; ROC-AUC and average
precision. Raw pixels (0-255) are given to every detector, which scales them as it does
for users.

``--split paper`` gives the paper's sizes instead: the paper fits on MNIST's training
images of the digit (60,000 of MNIST's 70,000 images are training images, ~6,000 per
digit) and scores MNIST's test set. Per seed, a random 6/7 of the digit's images
(:data:`PAPER_FIT_SHARE`) is fitted on, and the other 1/7 (about MNIST's test images of
the digit) is scored with every other-digit image (~1,000; the paper scores ~9,000,
which changes the class balance but not what ROC-AUC measures).

Detectors, in the same run on the same splits:

* ``toll`` with ``backbone="conv"`` and otherwise its defaults (``hidden_dims="auto"``:
  channels (32, 64, 128), ``latent_dim=8``, 50 epochs, batch 128, global pixel scaling,
  the latent-space kNN term on the encoder's unit-length features with weight 0.8,
  ``latent_space="auto"``). Both scores of the one fitted model are reported: the
  default score (``decision_function``) and the paper's own score
  (``family_score``: reconstruction error + lam * ||E(x)||^2, no kNN term).
* ``toll`` with the default MLP backbone and defaults (per-feature scaling with the
  scale floor), likewise with both scores.
* PyOD's ``KNN`` and ``IForest`` with PyOD's defaults.

The paper (Ghafourian et al. 2024) reports 98.4 mean ROC-AUC over the ten digits with
its own, much larger convolutional network (``backbone="toll-mnist"`` here) trained on
a GPU; that network is too slow for this CPU benchmark (see
:mod:`pyod_ae_ext.backbones_image`).

Run ``python -m benchmarks.mnist_conv [--digits 0 1 ...] [--seeds N] [--quick]
[--threads N] [--fit-fraction F] [--split {70-30,paper}] [--json PATH]``; progress goes to stderr, the markdown report to stdout.
``--speed`` instead times one default conv Toll fit on ``SPEED_ROWS`` (6,000) images of
digit 1 with 1 and with 2 torch threads (wall and CPU seconds; the issue's target: under
2 minutes on 2 cores). Skips with a message (exit status 0) when the shared data folder
is absent.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import pyod_ae_ext
from pyod_ae_ext import benchmarking as bench

from .common import DatasetsMissing, add_param_option, dataset_path, environment, log, parsed_params

PAPER_AUC = 98.4
CONV = {"backbone": "conv"}
QUICK = {"digits": (0, 1), "rows": 1500, "epochs": 2}
SPEED_ROWS = 6000
PAPER_FIT_SHARE = 6 / 7  # MNIST: 60,000 training and 10,000 test images
SPLITS = ("70-30", "paper")


def _load(digit: int, rows: int | None, seed: int):
    with np.load(dataset_path(f"mnist_digit{digit}"), allow_pickle=False) as data:
        X, y = data["X"].astype(np.float64), np.asarray(data["y"]).astype(int)
    if rows is not None and rows < len(y):  # --quick: a stratified subset
        keep, _ = bench.split_indices(y, seed, test_size=1 - rows / len(y))
        X, y = X[keep], y[keep]
    return X, y


def _toll_cells(label, params, X_fit, X_test, y_test, seed, latent_weights=()):
    """Fit one Toll; its default score and the paper's score (no kNN term) as two cells.

    With ``latent_weights``, one more cell per weight w: the same fit's score
    ``(1 - w) * z_own + w * z_knn`` (what ``latent_knn_weight=w`` gives; one network only).
    """
    detector = pyod_ae_ext.make_detector("toll", random_state=seed, **params)
    scores, fit_s, score_s = bench.timed_fit_and_score(detector, X_fit, X_test)
    started = time.perf_counter()
    own = detector.family_score(X_test)
    own_s = time.perf_counter() - started
    cells = [{"detector": label, **bench.score_metrics(y_test, scores), "fit_s": fit_s, "score_s": score_s},
             {"detector": f"{label}, paper's score", **bench.score_metrics(y_test, own), "fit_s": fit_s,
              "score_s": own_s}]
    if latent_weights:
        own_mean, own_std, _, _ = detector.latent_standardisers_
        w = detector.resolved_latent_weight()
        z_own = (own - own_mean) / own_std
        z_knn = (scores - (1 - w) * z_own) / w
        cells += [{"detector": f"{label}, latent weight {v:g}", "fit_s": fit_s, "score_s": score_s,
                   **bench.score_metrics(y_test, (1 - v) * z_own + v * z_knn)} for v in latent_weights]
    return cells


def _pyod_cell(name, X_fit, X_test, y_test, seed):
    detector = pyod_ae_ext.make_detector(name, **({"random_state": seed} if name == "iforest" else {}))
    scores, fit_s, score_s = bench.timed_fit_and_score(detector, X_fit, X_test)
    return {"detector": name, **bench.score_metrics(y_test, scores), "fit_s": fit_s, "score_s": score_s}


def paper_split(y, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, test rows) in the paper's sizes: a random :data:`PAPER_FIT_SHARE` of the normal images to fit;
    the other normal images and every anomaly to score."""
    normal = np.random.default_rng(seed).permutation(np.flatnonzero(y == 0))
    n_fit = round(PAPER_FIT_SHARE * len(normal))
    return np.sort(normal[:n_fit]), np.sort(np.concatenate([normal[n_fit:], np.flatnonzero(y != 0)]))


def run_digit(digit, seed, rows=None, epochs=None, conv_params=None, conv_only=False, latent_weights=(),
              fit_fraction=1.0, split="70-30"):
    X, y = _load(digit, rows, seed)
    if split == "paper":
        fit_rows, test = paper_split(y, seed)
    else:
        train, test = bench.split_indices(y, seed)
        fit_rows = bench.protocol_rows(y, train, "one-class")
    if fit_fraction < 1.0:  # a learning-curve point: fewer training images, the same test part
        keep = np.random.default_rng(seed).permutation(len(fit_rows))[:round(fit_fraction * len(fit_rows))]
        fit_rows = np.sort(fit_rows[keep])
    X_fit, X_test, y_test = X[fit_rows], X[test], y[test]
    extra = {} if epochs is None else {"epochs": epochs}
    label = "toll conv" + "".join(f", {k}={v}" for k, v in (conv_params or {}).items())
    cells = _toll_cells(label, {**CONV, **extra, **(conv_params or {})}, X_fit, X_test, y_test, seed,
                        latent_weights)
    if not conv_only:
        cells += [*_toll_cells("toll mlp", extra, X_fit, X_test, y_test, seed),
                  _pyod_cell("knn", X_fit, X_test, y_test, seed),
                  _pyod_cell("iforest", X_fit, X_test, y_test, seed)]
    for cell in cells:
        cell.update(digit=digit, seed=seed, n_fit=int(len(fit_rows)), n_test=int(len(test)))
        log(f"digit {digit} seed {seed} {cell['detector']:<26} ROC-AUC {100 * cell['roc_auc']:.1f}  "
            f"AP {100 * cell['ap']:.1f}  fit {cell['fit_s']:.1f}s  score {cell['score_s']:.2f}s")
    return cells


def time_fits(threads=(1, 2)) -> str:
    """Wall and CPU seconds of a default conv Toll fit on SPEED_ROWS images of digit 1, per thread count."""
    import torch

    X, y = _load(1, None, 0)
    X = X[y == 0][:SPEED_ROWS]
    lines = [f"conv Toll, defaults ({pyod_ae_ext.make_detector('toll').epochs} epochs), {len(X)} images of 28x28:"]
    for count in threads:
        torch.set_num_threads(count)
        detector = pyod_ae_ext.make_detector("toll", random_state=0, **CONV)
        wall, cpu = time.perf_counter(), time.process_time()
        detector.fit(X)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        lines.append(f"- {count} thread(s): fit {wall:.1f} s wall, {cpu:.1f} s CPU "
                     f"({wall / detector.n_epochs_:.2f} s per epoch, with scoring the training images)")
        log(lines[-1])
    return "\n".join(lines)


def report(cells, settings) -> str:
    detectors = list(dict.fromkeys(c["detector"] for c in cells))
    digits = sorted({c["digit"] for c in cells})

    def mean(detector, key, digit=None):
        values = [c[key] for c in cells if c["detector"] == detector and (digit is None or c["digit"] == digit)]
        return float(np.mean(values)) if values else float("nan")

    lines = [f"### Toll one-class on MNIST digits, conv vs MLP backbone (ROC-AUC, %; {settings['seeds']} seed(s))",
             "", f"`{settings['command']}` ({settings['cpu']}, torch {settings['torch']}, "
                 f"{settings['torch_threads']} threads). Fit on ~{int(mean(detectors[0], 'n_fit'))} images per digit "
                 f"({settings.get('split', '70-30')} split).",
             "", "| digit | " + " | ".join(detectors) + " |", "|:--|" + "--:|" * len(detectors)]
    for digit in digits:
        lines.append(f"| {digit} | " + " | ".join(f"{100 * mean(d, 'roc_auc', digit):.1f}" for d in detectors) + " |")
    lines.append("| **mean** | " + " | ".join(f"**{100 * mean(d, 'roc_auc'):.1f}**" for d in detectors) + " |")
    lines.append("| mean AP | " + " | ".join(f"{100 * mean(d, 'ap'):.1f}" for d in detectors) + " |")
    lines.append("| fit s per digit | " + " | ".join(f"{mean(d, 'fit_s'):.1f}" for d in detectors) + " |")
    lines.append("| score s per digit | " + " | ".join(f"{mean(d, 'score_s'):.2f}" for d in detectors) + " |")
    lines += ["", f"Paper (Ghafourian et al. 2024, its own conv network on a GPU): {PAPER_AUC} mean ROC-AUC."]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mnist_conv", description=__doc__.split("\n")[0])
    parser.add_argument("--digits", type=int, nargs="+", default=list(range(10)), choices=range(10))
    parser.add_argument("--seeds", type=int, default=1, help="number of seeds (default 1)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds FIRST..FIRST+N-1 (default 0)")
    add_param_option(parser, "a parameter of the conv Toll (repeatable; values as Python literals)")
    parser.add_argument("--latent-weights", type=float, nargs="+", default=[], metavar="W",
                        help="also score each conv fit with these latent kNN weights (from the same fit)")
    parser.add_argument("--conv-only", action="store_true", help="only the conv Toll (no MLP, KNN, IForest)")
    parser.add_argument("--fit-fraction", type=float, default=1.0, metavar="F",
                        help="fit on a random fraction F of the train part's images of the digit, scoring the same "
                             "test part (a learning-curve point; default 1)")
    parser.add_argument("--split", choices=SPLITS, default="70-30",
                        help="70-30: stratified 70/30 split, fit on the train part's digit images (default); paper: "
                             "the paper's sizes, fit on 6/7 of the digit's images (~6,000), score the other 1/7 "
                             "and every other-digit image")
    parser.add_argument("--quick", action="store_true", help="digits 0 and 1, 1,500 rows, 2 epochs")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", type=Path, help="also write every cell here")
    parser.add_argument("--speed", action="store_true", help="only time fits on 6,000 images (1 and 2 threads)")
    args = parser.parse_args(argv)
    if not 0 < args.fit_fraction <= 1:
        parser.error(f"--fit-fraction must be in (0, 1], got {args.fit_fraction}")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        dataset_path("mnist_digit0")
    except DatasetsMissing as exc:
        log(f"skipped: {exc}")
        return 0
    if args.speed:
        print(time_fits())
        return 0
    digits = QUICK["digits"] if args.quick else args.digits
    conv_params = parsed_params(args.param)
    cells = []
    for digit in digits:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            cells += run_digit(digit, seed, QUICK["rows"] if args.quick else None,
                               QUICK["epochs"] if args.quick else None, conv_params, args.conv_only,
                               args.latent_weights, args.fit_fraction, args.split)
    env = environment()
    settings = {"seeds": args.seeds, "command": "python -m benchmarks.mnist_conv " + " ".join(sys.argv[1:] if argv
                                                                                             is None else argv),
                "cpu": env.get("cpu"), "torch": env.get("torch"), "torch_threads": torch.get_num_threads(),
                "fit_fraction": args.fit_fraction, "split": args.split}
    if args.json:
        args.json.write_text(json.dumps({"settings": settings, "cells": cells}, indent=1))
    print(report(cells, settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
