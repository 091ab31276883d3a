"""Time series: our sequence detectors against PyOD on the NAB series and on synthetic sequences.

``python -m benchmarks.nab [--quick] [--defaults] [--window 32] [--epochs 5] [--folds mean,max,point] [--series N]
[--detectors LABEL,...] [--out FILE]``; ``python -m benchmarks.nab --report FILE [FILE ...]`` prints the tables
of saved runs as one (e.g. two processes that each ran some ``--detectors``).

Settings: by default the neural detectors share short training settings (``--epochs``,
``lr=3e-3``, batch 128, small widths; :func:`detectors`) so that everything runs in about
five minutes. ``--defaults`` instead gives every detector its defaults, what a user gets:
ours only the backbone (and the seed), PyOD's ``LSTMAD`` PyOD's defaults with the window
as its look-back (``--epochs`` is then unused).

Protocol (unsupervised, one fit per series): each series is z-scored by the engine,
cut into windows of ``--window`` points with stride 1 (``gaps="interpolate"``: a few
NAB series have missing timestamps), the detector is fitted on all windows of the
series (anomalies included; NAB's detectors see them too) and scores them; window
scores are folded to points by each rule of ``--folds`` (mean, max, point; see
:mod:`pyod_ae_ext.windows`), all from the same fit; "point" only for detectors with
per-feature contributions. The seconds are per detector (fit plus every fold's scoring). PyOD's
IForest and KNN get the same window vectors; PyOD's ``LSTMAD`` (Malhotra et al. 2015,
next-step prediction error) gets the z-scored series itself, with the same window as
look-back.

Alarms: NAB tunes one threshold per detector over the whole corpus. Here each
series' point scores become percentile ranks in [0, 1] and the alarm level
(``rank >= q``) is chosen per detector from ``QUANTILES`` for the best corpus NAB score
(standard profile), which is what NAB's optimiser does with its [0, 1] scores;
window recall, window precision and the NAB score (:mod:`pyod_ae_ext.nab_eval`) are
reported at that level, with the point-level ROC-AUC (points inside labelled windows
as positives) that needs no threshold. A second table gives the corpus NAB score at every
level, i.e. for a fixed share of each series' points flagged, which is what a default
contamination gives a user (``adscore fit --window`` flags 1% by default).

Synthetic: ``N_SYNTHETIC`` series of 3000 points, two sines plus noise, each with
five injected anomalies (a spike, a level shift, a doubled frequency, a flat line, a
noise burst), labelled with a window of the anomaly +-10 points.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from pyod_ae_ext import make_detector
from pyod_ae_ext.nab_eval import corpus_score, evaluate_alarms, load_windows
from pyod_ae_ext.windows import fit_series, parse_times, score_series, series_settings

from .common import RESULTS_DIR, DatasetsMissing, datasets_root, environment

QUANTILES = (0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995)
N_SYNTHETIC = 6
SYNTHETIC_LENGTH = 3000


LSTMAD_SHORT = {"hidden_size": 32, "n_layers": 1, "lr": 3e-3, "batch_size": 128}
"""PyOD LSTMAD's settings in the short run (besides ``epochs``); ``--defaults`` uses PyOD's own."""


def detectors(epochs: int | None, seed: int) -> dict:
    """label -> (registered name, parameters); ``("lstmad", params)`` marks PyOD's LSTMAD (run on the series).

    ``epochs=None`` gives every detector its defaults (``--defaults``).
    """
    if epochs is None:
        neural, sizes, lstmad = {"random_state": seed}, {}, {}
    else:
        neural = {"epochs": epochs, "lr": 3e-3, "batch_size": 128, "random_state": seed}
        sizes = {"vrae": {"hidden_dims": (32,)}, "lstm": {"hidden_dims": (32,)}, "conv1d": {"hidden_dims": (16, 16)}}
        lstmad = {**LSTMAD_SHORT, "epochs": epochs}
    return {
        "vrae (lstm)": ("vrae", {**neural, **sizes.get("vrae", {})}),
        "ae lstm": ("ae", {**neural, "backbone": "lstm", **sizes.get("lstm", {})}),
        "ae conv1d": ("ae", {**neural, "backbone": "conv1d", **sizes.get("conv1d", {})}),
        "toll conv1d": ("toll", {**neural, "backbone": "conv1d", **sizes.get("conv1d", {})}),
        "ae mlp": ("ae", neural),
        "pyod IForest": ("iforest", {"random_state": seed}),
        "pyod KNN": ("knn", {}),
        "pyod LSTMAD": ("lstmad", lstmad),
    }


def lstmad_scores(frame: pd.DataFrame, window: int, params: dict, seed: int) -> np.ndarray:
    import torch
    from pyod.models.ts_lstm import LSTMAD

    values = frame["value"].to_numpy(dtype=np.float64)
    values = (values - values.mean()) / (values.std() or 1.0)
    torch.manual_seed(seed)
    detector = LSTMAD(window_size=window, **params)
    detector.fit(values.reshape(-1, 1))
    return detector.decision_scores_


def point_scores(spec, frame: pd.DataFrame, window: int, seed: int, folds) -> dict:
    """``{fold: one score per point}`` from one fit: every folding rule the detector supports."""
    name, params = spec
    if name == "lstmad":
        return {"own": lstmad_scores(frame, window, params, seed)}
    settings = series_settings(frame, window, stride=1, fold="mean", gaps="interpolate", time_column="timestamp",
                               columns=["value"])
    detector = fit_series(make_detector(name, **params), frame, settings)
    usable = [f for f in folds if f != "point" or hasattr(detector, "feature_contributions")]
    return {fold: score_series(detector, frame, fold=fold) for fold in usable}


def percentile_ranks(scores: np.ndarray) -> np.ndarray:
    order = np.argsort(np.argsort(scores, kind="stable"), kind="stable")
    return (order + 1) / scores.size


def evaluate(series_runs: list) -> dict:
    """Best-quantile corpus NAB score with its recall/precision, the NAB score at every quantile
    (``by_quantile``: what a fixed share of alarm points, e.g. a default contamination, gives),
    and the mean point ROC-AUC."""
    best, by_quantile = None, {}
    for q in QUANTILES:
        results = [evaluate_alarms(times, percentile_ranks(scores) >= q, windows) for times, scores, windows in
                   series_runs]
        total = corpus_score(results)
        by_quantile[str(q)] = total.nab_score
        if best is None or total.nab_score > best[1].nab_score:
            best = (q, total)
    q, total = best
    aucs = []
    for times, scores, windows in series_runs:
        inside = np.zeros(times.size, dtype=bool)
        for start, end in windows:
            inside |= (times >= start) & (times <= end)
        if 0 < inside.sum() < inside.size:
            aucs.append(roc_auc_score(inside, scores))
    return {"quantile": q, "recall": total.recall, "precision": total.precision, "nab_score": total.nab_score,
            "windows": total.windows, "detected": total.detected_windows, "false_alarms": total.false_alarms,
            "point_roc_auc": float(np.mean(aucs)) if aucs else float("nan"), "by_quantile": by_quantile}


def nab_series(root: Path, limit: int | None):
    labels = root / "labels_windows.json"
    names = sorted(json.loads(labels.read_text()))
    for key in names[:limit]:
        frame = pd.read_csv(root / key)
        times, _ = parse_times(frame["timestamp"], "timestamp")
        yield key, frame, times, load_windows(labels, key)


def synthetic_series(seed: int):
    rng = np.random.default_rng(seed)
    n = SYNTHETIC_LENGTH
    t = np.arange(n, dtype=np.float64)
    period = rng.uniform(40, 80)
    values = np.sin(2 * np.pi * t / period) + 0.4 * np.sin(2 * np.pi * t / (period / 3)) + 0.1 * rng.normal(size=n)
    starts = np.sort(rng.choice(np.arange(600, n - 150, 300), size=5, replace=False))
    kinds = rng.permutation(["spike", "shift", "frequency", "flat", "noise"])
    windows = []
    for start, kind in zip(starts, kinds):
        length = 1 if kind == "spike" else 60
        span = slice(start, start + length)
        if kind == "spike":
            values[start] += 4.0
        elif kind == "shift":
            values[span] += 1.5
        elif kind == "frequency":
            values[span] = np.sin(4 * np.pi * t[span] / period) + 0.1 * rng.normal(size=length)
        elif kind == "flat":
            values[span] = values[start]
        else:
            values[span] += 0.8 * rng.normal(size=length)
        windows.append((float(start - 10), float(start + length + 10)))
    frame = pd.DataFrame({"timestamp": t, "value": values})
    return f"synthetic-{seed}", frame, t, windows


def run_corpus(corpus, detector_specs, window, seed, folds, log):
    runs, seconds = {}, {}
    for key, frame, times, windows in corpus:
        for label, spec in detector_specs.items():
            started = time.perf_counter()
            by_fold = point_scores(spec, frame, window, seed, folds)
            seconds[label] = seconds.get(label, 0.0) + time.perf_counter() - started
            for fold, scores in by_fold.items():
                runs.setdefault((label, fold), []).append((times, scores, windows))
        log(f"{key}: {len(frame)} points, done")
    return {f"{label} [{fold}]": {**evaluate(series_runs), "seconds": round(seconds[label], 1)}
            for (label, fold), series_runs in runs.items()}


def markdown(title: str, table: dict) -> str:
    lines = [f"#### {title}", "",
             "| detector [fold] | NAB score (standard) | window recall | window precision | alarms at rank >= | "
             "point ROC-AUC | fit+score s |", "|---|---|---|---|---|---|---|"]
    for label, r in sorted(table.items(), key=lambda item: -item[1]["nab_score"]):
        lines.append(f"| {label} | {r['nab_score']:.1f} | {r['recall']:.2f} ({r['detected']}/{r['windows']}) | "
                     f"{r['precision']:.2f} ({r['false_alarms']} false alarms) | {r['quantile']} | "
                     f"{r['point_roc_auc']:.3f} | {r['seconds']} |")
    return "\n".join(lines)


def alarm_share_markdown(title: str, table: dict) -> str:
    """NAB score by the share of each series' points flagged (1 - quantile): the cost of a fixed alarm share."""
    rows = {label: r["by_quantile"] for label, r in table.items() if "by_quantile" in r}
    if not rows:
        return ""
    quantiles = list(next(iter(rows.values())))
    lines = [f"#### {title}: NAB score by the share of points flagged", "",
             "| detector [fold] | " + " | ".join(f"{100 * (1 - float(q)):.2g}%" for q in quantiles) + " |",
             "|---|" + "---|" * len(quantiles)]
    for label, scores in sorted(rows.items()):
        lines.append(f"| {label} | " + " | ".join(f"{scores[q]:.1f}" for q in quantiles) + " |")
    return "\n".join(lines)


def print_tables(reports: list) -> None:
    """The NAB and synthetic tables of one or more saved runs, as one table each."""
    nab = {label: row for report in reports for label, row in report["nab"].items()}
    synthetic = {label: row for report in reports for label, row in report["synthetic"].items()}
    series = {report["settings"]["series"] for report in reports}
    limit = series.pop() if len(series) == 1 else None
    print(markdown(f"NAB, {'first ' + str(limit) if limit else 'all'} series", nab))
    print()
    n_synthetic = reports[0].get("synthetic_series", N_SYNTHETIC)
    print(markdown(f"Synthetic, {n_synthetic} series x 5 injected anomalies", synthetic))
    for title, table in (("NAB", nab), ("Synthetic", synthetic)):
        shares = alarm_share_markdown(title, table)
        if shares:
            print()
            print(shares)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.nab", description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the short run (default 5)")
    parser.add_argument("--defaults", action="store_true",
                        help="every detector at its defaults (ours: only the backbone; PyOD: PyOD's defaults); "
                             "not with --quick, which keeps its one-epoch smoke settings")
    parser.add_argument("--detectors", help="only these detector labels, comma-separated (default all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", default="mean,max,point",
                        help="folding rules to compare, from one fit per detector (default mean,max,point)")
    parser.add_argument("--series", type=int, help="only the first N NAB series (default all)")
    parser.add_argument("--quick", action="store_true", help="3 NAB series, 2 synthetic, 1 epoch (smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "nab.json")
    parser.add_argument("--report", type=Path, nargs="+", metavar="FILE",
                        help="print the tables of these saved runs as one, and run nothing")
    args = parser.parse_args(argv)
    if args.report:
        print_tables([json.loads(path.read_text()) for path in args.report])
        return 0
    epochs, limit, n_synthetic = (1, 3, 2) if args.quick else (args.epochs, args.series, N_SYNTHETIC)
    if args.defaults and not args.quick:
        epochs = None
    specs = detectors(epochs, args.seed)
    if args.detectors:
        wanted = [label.strip() for label in args.detectors.split(",") if label.strip()]
        unknown = [label for label in wanted if label not in specs]
        if unknown:
            parser.error(f"unknown detector label(s) {unknown}; choose from {list(specs)}")
        specs = {label: specs[label] for label in wanted}

    def log(message):
        print(message, file=sys.stderr, flush=True)

    root = datasets_root() / "nab"
    if not (root / "labels_windows.json").is_file():
        print(f"Error: NAB data not found at {root}; set ADSCORE_DATASETS", file=sys.stderr)
        return 2
    started = time.perf_counter()
    folds = [f.strip() for f in args.folds.split(",") if f.strip()]
    nab = run_corpus(nab_series(root, limit), specs, args.window, args.seed, folds, log)
    synthetic = run_corpus((synthetic_series(s) for s in range(n_synthetic)), specs, args.window, args.seed,
                           folds, log)
    report = {"settings": {"window": args.window, "epochs": "defaults" if epochs is None else epochs,
                           "seed": args.seed, "series": limit, "folds": folds, "detectors": list(specs),
                           "quick": args.quick, "quantiles": QUANTILES},
              "env": environment(), "seconds": round(time.perf_counter() - started, 1),
              "synthetic_series": n_synthetic, "nab": nab, "synthetic": synthetic}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=float))
    print_tables([report])
    print(f"\nwall time {report['seconds']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DatasetsMissing as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(2)
