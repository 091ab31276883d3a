"""Check :func:`pyod_ae_ext.nab_eval.evaluate_alarms` against NAB's own scorer on random cases.

``python -m benchmarks.nab_scorer_check PATH/TO/NAB [--cases 300]``

``PATH/TO/NAB`` is a checkout of github.com/numenta/NAB; its ``nab/sweeper.py``
(pure Python, standard library only) is loaded from there. Each case draws a series
of 30-3000 points with irregular integer timestamps, 0-3 labelled windows, random
alarms and a probation of 0 or 15%, and compares NAB's raw standard-profile score
(``Sweeper.scoreDataSet`` at threshold 1 on 0/1 scores) with ours.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

from pyod_ae_ext.nab_eval import STANDARD_PROFILE, evaluate_alarms

_COSTS = {"tpWeight": STANDARD_PROFILE.true_positive, "fpWeight": STANDARD_PROFILE.false_positive,
          "fnWeight": STANDARD_PROFILE.false_negative}


def load_sweeper(nab_root: Path):
    spec = importlib.util.spec_from_file_location("nab_sweeper", nab_root / "nab" / "sweeper.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Sweeper


def random_case(rng):
    n = int(rng.integers(30, 3000))
    times = np.cumsum(rng.integers(1, 4, size=n))
    k = int(rng.integers(0, 4))
    cuts = np.sort(rng.choice(np.arange(1, n - 1), size=2 * k, replace=False))
    windows = [(int(times[cuts[2 * i]]), int(times[cuts[2 * i + 1]])) for i in range(k)]
    alarms = rng.random(n) < rng.choice([0.001, 0.01, 0.05])
    return times, alarms, windows, float(rng.choice([0.0, 0.15]))


def nab_raw_score(sweeper_cls, times, alarms, windows, probation) -> float:
    sweeper = sweeper_cls(probationPercent=probation, costMatrix=_COSTS)
    args = (list(times), list(alarms.astype(float)), [list(w) for w in windows], "case")
    _, row = sweeper.scoreDataSet(*args, 1.0)
    if row is None:  # no alarm at all: NAB's row for a threshold above every score
        _, row = sweeper.scoreDataSet(*args, 1.1)
    return row.score


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.nab_scorer_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("nab_root", type=Path, help="a checkout of github.com/numenta/NAB")
    parser.add_argument("--cases", type=int, default=300)
    args = parser.parse_args(argv)
    if not (args.nab_root / "nab" / "sweeper.py").is_file():
        print(f"Error: {args.nab_root}/nab/sweeper.py not found; give a checkout of numenta/NAB", file=sys.stderr)
        return 2
    sweeper_cls = load_sweeper(args.nab_root)
    rng = np.random.default_rng(1)
    worst = 0.0
    for _ in range(args.cases):
        times, alarms, windows, probation = random_case(rng)
        ours = evaluate_alarms(times, alarms, windows, STANDARD_PROFILE, probation).raw_score
        worst = max(worst, abs(ours - nab_raw_score(sweeper_cls, times, alarms, windows, probation)))
    print(f"{args.cases} random cases: largest difference from NAB's sweeper.py {worst:.3g}")
    return 0 if worst < 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())
