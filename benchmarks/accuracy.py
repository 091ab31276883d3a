"""Accuracy suite: our autoencoder detectors against PyOD's, on ADBench sets and ODDS Arrhythmia.

Protocols (see :mod:`pyod_ae_ext.benchmarking`): ``one-class`` (stratified 70/30 split
per seed, fit on the train part's normal rows, score the test part) and
``unsupervised`` (ADBench's: fit on the whole train part, anomalies included). Raw
features; every detector applies its own preprocessing (ours and PyOD's deep models
standardise with the fitting rows' mean and standard deviation).

Detectors: every registered autoencoder-family detector (``AutoEncoderDetector``
subclasses found at run time) with the defaults a user gets, PyOD's AutoEncoder, VAE,
DeepSVDD and AE1SVM with PyOD's defaults (``verbose=0``), Isolation Forest, ECOD and KNN.
``--quick`` runs two small sets, one seed, both protocols, with a few epochs.
"""
from __future__ import annotations

import time
import warnings

import numpy as np

from pyod_ae_ext import benchmarking as bench

from .common import (ResultsFile, fmt, fmt_seconds, load_dataset, log, markdown_table, read_records,
                     require_datasets, results_path, run_headers)

DATASETS = ("6_cardio", "38_thyroid", "2_annthyroid", "23_mammography", "24_mnist", "25_musk",
            "26_optdigits", "28_pendigits", "31_satimage-2", "30_satellite", "40_vowels",
            "41_Waveform", "29_Pima", "4_breastw", "18_Ionosphere", "47_yeast", "arrhythmia")
QUICK_DATASETS = ("4_breastw", "18_Ionosphere")
SEEDS = 5

# label -> (name or class path, params); our families are added at run time.
BASELINES = {
    "pyod:AutoEncoder": ("pyod.models.auto_encoder:AutoEncoder", {}),
    "pyod:VAE": ("pyod.models.vae:VAE", {}),
    "pyod:DeepSVDD": ("pyod.models.deep_svdd:DeepSVDD", {}),
    "pyod:AE1SVM": ("pyod.models.ae1svm:AE1SVM", {}),
    "iforest": ("iforest", {}),
    "ecod": ("ecod", {}),
    "knn": ("knn", {}),
}
REFERENCE = "pyod:AutoEncoder"
# --quick: few epochs for whichever of these a detector has.
QUICK_PARAMS = {"epochs": 3, "epoch_num": 3, "inner_epochs": 1, "outer_iterations": 2, "warm_up_epochs": 1}


def our_detectors() -> list:
    """Registered autoencoder-family detectors, in registry order."""
    from pyod_ae_ext.engine import AutoEncoderDetector
    from pyod_ae_ext.registry import get_registry

    return [name for name, spec in get_registry().detectors.items() if issubclass(spec.cls, AutoEncoderDetector)]


def detector_choices(quick: bool, only=None) -> list:
    entries = [(name, name, {}) for name in our_detectors()]
    entries += [(label, target, dict(params)) for label, (target, params) in BASELINES.items()]
    if only:
        unknown = sorted(set(only) - {label for label, _, _ in entries})
        if unknown:
            raise SystemExit(f"unknown detector(s) {', '.join(unknown)}; available: "
                             f"{', '.join(label for label, _, _ in entries)}")
        entries = [e for e in entries if e[0] in only]
    choices = []
    for label, target, params in entries:
        plain = bench.resolve_detector(target, params, label=label)
        if quick:
            accepted = plain.accepted()
            params = {**{k: v for k, v in QUICK_PARAMS.items() if k in accepted}, **params}
        choices.append(bench.resolve_detector(target, params, label=label))
    return choices


def run(args) -> int:
    require_datasets()
    quick = args.quick
    datasets = args.datasets or (QUICK_DATASETS if quick else DATASETS)
    seeds = list(range(args.seeds if args.seeds else (1 if quick else SEEDS)))
    protocols = args.protocols or list(bench.PROTOCOLS)
    choices = detector_choices(quick, args.detectors)
    results = ResultsFile(results_path(args.out, "accuracy", quick), ("dataset", "protocol", "detector", "seed"))
    results.start_run("accuracy", {"datasets": list(datasets), "seeds": seeds, "protocols": protocols,
                                   "test_size": bench.DEFAULT_TEST_SIZE, "quick": quick,
                                   "detectors": {c.label: c.describe_params() for c in choices}})
    log(f"accuracy suite -> {results.path}: {len(datasets)} datasets x {len(protocols)} protocols x "
        f"{len(seeds)} seeds x {len(choices)} detectors")
    started = time.perf_counter()
    warnings.simplefilter("ignore")
    warmed = set()
    for dataset in datasets:
        X, y = load_dataset(dataset)
        X, y = bench.check_labelled(X, y, what=dataset)
        log(f"{dataset}: {X.shape[0]} rows x {X.shape[1]} features, {int(y.sum())} anomalies")
        for protocol in protocols:
            for seed in seeds:
                split = bench.split_indices(y, seed, bench.DEFAULT_TEST_SIZE)
                for choice in choices:
                    cell = {"dataset": dataset, "protocol": protocol, "detector": choice.label, "seed": seed}
                    if results.has(**cell):
                        continue
                    record = {"kind": "cell", **cell, "params": choice.describe_params(),
                              "n_rows": int(X.shape[0]), "n_features": int(X.shape[1])}
                    if choice.label not in warmed:
                        warmed.add(choice.label)
                        record["warm_up_s"] = bench.warm_up(choice, X.shape[1])
                    try:
                        record.update(bench.run_cell(choice, X, y, seed, protocol, split=split))
                        log(f"  {dataset} {protocol} seed {seed} {choice.label:<18} ROC-AUC "
                            f"{record['roc_auc']:.3f} AP {record['ap']:.3f} fit {record['fit_s']:.2f}s "
                            f"[{time.perf_counter() - started:.0f}s]")
                    except KeyboardInterrupt:
                        raise
                    except Exception as exc:
                        record["error"] = bench.describe_failure(choice, seed, exc)
                        log(f"  {dataset} {protocol} seed {seed}: {record['error']}")
                    results.append(record)
    print(render(read_records(results.path)))
    return 0


# --------------------------------------------------------------------------
# report


def _cells(records):
    return [r for r in records if r.get("kind") == "cell" and not r.get("error")]


def render(records) -> str:
    cells = _cells(records)
    if not cells:
        return "## Accuracy\n\nNo results yet.\n"
    parts = ["## Accuracy: our autoencoders against PyOD\n", run_headers(records, {"accuracy"})]
    parts.append(
        "Our detectors run with the defaults a user gets (no per-dataset tuning); PyOD's with "
        "PyOD's defaults (`verbose=0`); `random_state` = seed where a detector has one. Mean over "
        "seeds of the test ROC-AUC / average precision per dataset; the best per dataset in bold. "
        "`avg rank`: 1 = best. "
        "Fit seconds are wall-clock on a shared machine (see the environment above).\n")
    settings = [r["settings"] for r in records if r.get("kind") == "run" and r.get("suite") == "accuracy"]
    given = {d: p for s in settings for d, p in s.get("detectors", {}).items() if p}
    if given:
        parts.append("Parameters set explicitly: " + "; ".join(f"{d}: {p}" for d, p in sorted(given.items())) + "\n")
    errors = [r for r in records if r.get("kind") == "cell" and r.get("error")]
    for protocol in bench.PROTOCOLS:
        rows = [c for c in cells if c["protocol"] == protocol]
        if rows:
            parts.append(render_protocol(protocol, rows))
    if errors:
        failed = {}
        for r in errors:
            failed.setdefault((r["detector"], r["error"].split(": ", 1)[-1][:120]), []).append(
                f"{r['dataset']}/{r['protocol']}/{r['seed']}")
        parts.append("Failed cells (not in the tables):\n")
        parts += [f"- {d}: {msg} ({len(where)} cells, e.g. {', '.join(where[:3])})" for (d, msg), where in
                  failed.items()]
        parts.append("")
    return "\n".join(parts)


def _pivot(rows, metric):
    """dataset -> detector -> (mean, std over seeds)."""
    grouped = {}
    for r in rows:
        grouped.setdefault(r["dataset"], {}).setdefault(r["detector"], []).append(r[metric])
    return {ds: {det: bench.mean_std(v) for det, v in dets.items()} for ds, dets in grouped.items()}


def _detector_order(rows):
    order = []
    for r in rows:
        if r["detector"] not in order:
            order.append(r["detector"])
    return order


def render_protocol(protocol, rows) -> str:
    detectors = _detector_order(rows)
    datasets = [d for d in dict.fromkeys(r["dataset"] for r in rows)]
    seeds = sorted({r["seed"] for r in rows})
    out = [f"### Protocol: {bench.describe_protocol(protocol)}\n",
           f"{len(datasets)} datasets, seeds {seeds[0]}..{seeds[-1]}.\n"]
    have = {det: [ds for ds in datasets if any(r["dataset"] == ds and r["detector"] == det for r in rows)]
            for det in detectors}
    if any(len(v) < len(datasets) for v in have.values()):
        out.append("A detector's `mean` is over the datasets where it finished (shown as k/n when not all); "
                   "ranks on each dataset are among the detectors that finished there.\n")

    def over(table, det, index=0):
        values = [table[ds][det][index] for ds in have[det]]
        return float(np.mean(values)) if values else None

    def count(det):
        return "" if len(have[det]) == len(datasets) else f" ({len(have[det])}/{len(datasets)})"

    summary = {}
    for metric, title in (("roc_auc", "ROC-AUC"), ("ap", "Average precision")):
        table = _pivot(rows, metric)
        means = {ds: {det: v[0] for det, v in table[ds].items()} for ds in datasets}
        ranks = bench.average_ranks(means)
        body = []
        for ds in datasets:
            best = max((v for v in means[ds].values() if np.isfinite(v)), default=None)
            body.append([ds] + [_bold(fmt(means[ds].get(det)), means[ds].get(det) == best) for det in detectors])
        mean_over = {det: over(table, det) for det in detectors}
        body.append(["**mean**"] + [fmt(mean_over[det]) + count(det) for det in detectors])
        body.append(["**avg rank**"] + [fmt(ranks.get(det), 2) for det in detectors])
        out.append(f"#### {title} ({protocol})\n")
        out.append(markdown_table(["dataset", *detectors], body))
        out.append("")
        summary[metric] = (mean_over, ranks)
    fit, score, auc = _pivot(rows, "fit_s"), _pivot(rows, "score_s"), _pivot(rows, "roc_auc")
    mean_fit = {det: over(fit, det) for det in detectors}
    mean_score = {det: over(score, det) for det in detectors}
    mean_std = {det: over(auc, det, 1) for det in detectors}
    ref_fit = mean_fit.get(REFERENCE)
    ref_auc = summary["roc_auc"][0].get(REFERENCE)
    body = []
    ordered = sorted(detectors, key=lambda d: summary["roc_auc"][1].get(d, np.inf))
    for det in ordered:
        auc_mean = summary["roc_auc"][0][det]
        ratio = (mean_fit[det] / ref_fit) if ref_fit and mean_fit[det] is not None else None
        beats = "-"
        if ref_auc is not None and auc_mean is not None and det != REFERENCE:
            beats = "yes" if auc_mean >= ref_auc else "no"
        body.append([det, f"{len(have[det])}/{len(datasets)}", fmt(auc_mean), fmt(mean_std[det]),
                     fmt(summary["ap"][0][det]), fmt(summary["roc_auc"][1].get(det), 2),
                     fmt(summary["ap"][1].get(det), 2), fmt_seconds(mean_fit[det]), fmt_seconds(mean_score[det]),
                     fmt(ratio, 3) if ratio is not None else "-", beats])
    out.append(f"#### Summary ({protocol}), by average ROC-AUC rank\n")
    out.append(markdown_table(
        ["detector", "datasets", "mean ROC-AUC", "mean seed std", "mean AP", "avg rank ROC-AUC", "avg rank AP",
         "mean fit s", "mean score s", f"fit time / {REFERENCE}", f"ROC-AUC >= {REFERENCE}"], body))
    out.append("")
    return "\n".join(out)


def _bold(text, flag):
    return f"**{text}**" if flag and text != "-" else text
