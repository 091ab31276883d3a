"""How much latent-space kNN score each family's default gets (``latent_knn_weight``).

Every autoencoder family at ``latent_knn_weight`` 0 (the paper's score), 0.5 and 1
(and, with ``--latent-detectors``, with PyOD detectors on the codes instead of the kNN
distance: ``latent_detector``),
side by side with KNN, Isolation Forest, ECOD and PyOD's AutoEncoder on the same
seeded splits of the accuracy suite's 17 sets, in both protocols. Everything else is
the family's default. Writes one JSON line per cell and prints the mean ROC-AUC and
average precision per detector and protocol (markdown).

    python -m benchmarks.latent_weight --seeds 1 --out benchmarks/results/latent_weight.jsonl
    python -m benchmarks.latent_weight --seeds 2 --families ae --weights 0.5 \
        --latent-detectors none iforest lof knn --out benchmarks/results/latent_detector.jsonl
"""
from __future__ import annotations

import argparse
import warnings
from collections import defaultdict
from pathlib import Path

from pyod_ae_ext import benchmarking as bench

from .accuracy import DATASETS, our_detectors
from .common import markdown_table, require_datasets, run_grid

WEIGHTS = (0.0, 0.5, 1.0)
BASELINES = (("knn", "knn"), ("iforest", "iforest"), ("ecod", "ecod"),
             ("pyod:AutoEncoder", "pyod.models.auto_encoder:AutoEncoder"))


def choices(families, weights, latent_detectors=(None,)):
    out = [bench.resolve_detector(target, {}, label=label) for label, target in BASELINES]
    for family in families:
        for weight in weights:
            for detector in latent_detectors:
                params = {"latent_knn_weight": weight, **({} if detector is None else {"latent_detector": detector})}
                label = f"{family} w={weight:g}" + ("" if detector is None else f" on codes: {detector}")
                out.append(bench.resolve_detector(family, params, label=label))
    return out


def run(args) -> int:
    require_datasets()
    warnings.simplefilter("ignore")
    families = args.families or our_detectors()
    latent_detectors = [None if name == "none" else name for name in args.latent_detectors]
    detectors = choices(families, args.weights, latent_detectors)
    print(render(run_grid(detectors, args.datasets or DATASETS, args.protocols, args.seeds, Path(args.out))))
    return 0


def render(records) -> str:
    cells = defaultdict(lambda: defaultdict(list))
    for r in records:
        cells[r["protocol"]][r["detector"]].append(r)
    parts = []
    for protocol, by_detector in cells.items():
        rows = []
        for detector, rs in sorted(by_detector.items(), key=lambda kv: -_mean(kv[1], "roc_auc")):
            rows.append([detector, f"{len({r['dataset'] for r in rs})}", f"{_mean(rs, 'roc_auc'):.2f}",
                         f"{_mean(rs, 'ap'):.2f}"])
        parts.append(f"#### {protocol}\n\n" + markdown_table(["detector", "datasets", "mean ROC-AUC %", "mean AP %"],
                                                             rows))
    return "\n\n".join(parts)


def _mean(records, key) -> float:
    return 100 * sum(r[key] for r in records) / len(records)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--families", nargs="*", help="default: every autoencoder family")
    parser.add_argument("--weights", nargs="*", type=float, default=list(WEIGHTS))
    parser.add_argument("--latent-detectors", nargs="*", default=["none"], metavar="NAME",
                        help="latent_detector values; none is the kNN distance (default: none only)")
    parser.add_argument("--protocols", nargs="*", default=list(bench.PROTOCOLS))
    parser.add_argument("--datasets", nargs="*")
    parser.add_argument("--out", default="benchmarks/results/latent_weight.jsonl")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
