"""Members (``n_members``, ``member_subsample``): how many networks per family, on how many rows.

Each family at ``n_members`` 1 (one network, today's default) and K members trained
together, on every row and on seeded sub-samples, side by side with KNN, Isolation
Forest, ECOD and PyOD's AutoEncoder on the same seeded splits of the accuracy suite's
17 sets, in both protocols. Writes one JSON line per cell and prints, per protocol,
each detector's mean ROC-AUC, mean average precision, mean rank (by ROC-AUC within a
data set, 1 = best) and fit seconds (markdown).

    python -m benchmarks.members --seeds 1 --out benchmarks/results/members.jsonl
"""
from __future__ import annotations

import argparse
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from pyod_ae_ext import benchmarking as bench

from .accuracy import DATASETS
from .common import add_param_option, markdown_table, param_label, parsed_params, require_datasets, run_grid

BASELINES = (("knn", "knn"), ("iforest", "iforest"), ("ecod", "ecod"),
             ("pyod:AutoEncoder", "pyod.models.auto_encoder:AutoEncoder"))
FAMILIES = ("ae", "toll")
# label suffix -> member parameters
SETTINGS = {
    "K=1": {"n_members": 1},
    "K=5": {"n_members": 5, "member_subsample": None},
    "K=5 sub=0.5": {"n_members": 5, "member_subsample": 0.5},
    "K=5 sub=256": {"n_members": 5, "member_subsample": 256},
    "K=10 sub=256": {"n_members": 10, "member_subsample": 256},
    "K=5 sub=512": {"n_members": 5, "member_subsample": 512},
    "K=10 sub=512": {"n_members": 10, "member_subsample": 512},
    "K=5 sub=1024": {"n_members": 5, "member_subsample": 1024},
    "K=10 sub=0.5": {"n_members": 10, "member_subsample": 0.5},
    "K=10 sub=0.25": {"n_members": 10, "member_subsample": 0.25},
    "K=20 sub=256": {"n_members": 20, "member_subsample": 256},
    "K=20 sub=512": {"n_members": 20, "member_subsample": 512},
}


def choices(families, settings, params=None):
    """The baselines, then every family at every setting (with ``params`` on top, named in the label)."""
    params = params or {}
    out = [bench.resolve_detector(target, {}, label=label) for label, target in BASELINES]
    for family in families:
        for suffix in settings:
            out.append(bench.resolve_detector(family, {**SETTINGS[suffix], **params},
                                              label=f"{family} {suffix}{param_label(params)}"))
    return out


def run(args) -> int:
    require_datasets()
    warnings.simplefilter("ignore")
    detectors = choices(args.families, args.settings, parsed_params(args.param))
    print(render(run_grid(detectors, args.datasets or DATASETS, args.protocols, args.seeds, Path(args.out))))
    return 0


def render(records) -> str:
    by_protocol = defaultdict(list)
    for r in records:
        by_protocol[r["protocol"]].append(r)
    parts = []
    for protocol, rs in by_protocol.items():
        detectors = sorted({r["detector"] for r in rs})
        cells = defaultdict(list)
        for r in rs:
            cells[(r["dataset"], r["detector"])].append(r)
        complete = sorted(d for d in {r["dataset"] for r in rs} if all((d, det) in cells for det in detectors))
        ranks = defaultdict(list)
        for dataset in complete:
            aucs = [np.mean([c["roc_auc"] for c in cells[(dataset, det)]]) for det in detectors]
            for det, rank in zip(detectors, rankdata([-a for a in aucs])):
                ranks[det].append(rank)
        rows = []
        for det in detectors:
            own = [c for d in complete for c in cells[(d, det)]]
            rows.append([det, f"{len(complete)}", f"{100 * np.mean([c['roc_auc'] for c in own]):.2f}",
                         f"{100 * np.mean([c['ap'] for c in own]):.2f}", f"{np.mean(ranks[det]):.2f}",
                         f"{np.mean([c['fit_s'] for c in own]):.2f}"])
        rows.sort(key=lambda row: -float(row[2]))
        parts.append(f"#### {protocol}\n\n" + markdown_table(
            ["detector", "datasets", "mean ROC-AUC %", "mean AP %", "mean rank", "fit s"], rows))
    return "\n\n".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--families", nargs="*", default=list(FAMILIES))
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--protocols", nargs="*", default=list(bench.PROTOCOLS))
    parser.add_argument("--datasets", nargs="*")
    add_param_option(parser, "a parameter of every family, on top of each setting (repeatable; values as "
                             "Python literals)")
    parser.add_argument("--out", default="benchmarks/results/members.jsonl")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
