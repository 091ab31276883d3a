"""``python -m benchmarks accuracy|papers|speed|report``: the benchmark suites (see benchmarks/README.md)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import RESULTS_DIR, DatasetsMissing, read_records, results_path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark suites of pyod-ae-ext. Results are appended, one JSON line per finished "
                    "cell, to RESULTS_DIR/<suite>[-quick].jsonl; a rerun skips finished cells.")
    sub = parser.add_subparsers(dest="suite", required=True)

    def common(p, datasets_help):
        p.add_argument("--quick", action="store_true",
                       help="smoke run: two small datasets, one seed, few epochs (well under a minute)")
        p.add_argument("--seeds", type=int, help="number of seeds (0..N-1); default: the suite's")
        p.add_argument("--datasets", nargs="+", metavar="NAME", help=datasets_help)
        p.add_argument("--out", type=Path, default=RESULTS_DIR, help=f"results folder (default {RESULTS_DIR})")

    p = sub.add_parser("accuracy", help="ROC-AUC/AP of our autoencoders vs PyOD on ADBench + Arrhythmia")
    common(p, "dataset names (e.g. 6_cardio arrhythmia); default: the issue's 17")
    p.add_argument("--protocol", dest="protocols", action="append", choices=("one-class", "unsupervised"),
                   help="only this protocol (repeatable); default both")
    p.add_argument("--detector", dest="detectors", action="append", metavar="LABEL",
                   help="only this detector label (repeatable), e.g. toll or pyod:AutoEncoder")
    p = sub.add_parser("papers", help="Toll on Arrhythmia (F1@15%%) and Toll/AE one-class on MNIST digits")
    common(p, "MNIST digits to run (e.g. 0 4 9); default all ten")
    p.add_argument("--experiment", dest="experiments", action="append", choices=("arrhythmia", "mnist"),
                   help="only this experiment (repeatable)")
    p = sub.add_parser("speed", help="our ae vs PyOD AutoEncoder; throughput vs the matmul limit")
    p.add_argument("--quick", action="store_true", help="small sizes (2k and 4k rows, 1 epoch)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help=f"results folder (default {RESULTS_DIR})")
    p.add_argument("--skip-pyod-1m", action="store_true", help="leave out PyOD at 1M rows (the slowest cell)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per measurement (default 3600)")
    p.add_argument("--test", dest="tests", action="append", choices=("fit", "matmul", "flops"),
                   help="only these measurements (repeatable)")
    p.add_argument("--rows", type=int, action="append", metavar="N",
                   help="only the fit measurements at N rows (repeatable; 10000, 100000, 1000000)")
    for name in ("accuracy", "papers", "speed"):
        sub.choices[name].add_argument(
            "--threads", type=int, metavar="N",
            help="torch intra-op threads for every detector (default: torch's, one per core); on a "
                 "loaded machine extra threads wait on each other, so pin 1 to compare fairly")
    p = sub.add_parser("report", help="render RESULTS-ready markdown from the results files")
    p.add_argument("--results", "--out", dest="out", type=Path, default=RESULTS_DIR,
                   help=f"results folder (default {RESULTS_DIR})")
    p.add_argument("--quick", action="store_true", help="report the --quick results files instead")
    p.add_argument("-o", "--output", type=Path, help="write the markdown here instead of stdout")
    return parser


def report(args) -> int:
    from . import accuracy, papers, speed

    sections = []
    for suite, render in (("accuracy", accuracy.render), ("papers", None), ("speed", speed.render)):
        path = results_path(args.out, suite, args.quick)
        if suite == "papers" and not path.is_file() and (Path(args.out) / "rdae_mnist.md").is_file():
            sections.append(papers.render([], args.out))
            continue
        if not path.is_file():
            sections.append(f"## {suite.capitalize()}\n\nNo results file `{path}` yet: run "
                            f"`python -m benchmarks {suite}{' --quick' if args.quick else ''}`.\n")
            continue
        records = read_records(path)
        sections.append(papers.render(records, args.out) if suite == "papers" else render(records))
    text = "\n".join(sections)
    if args.output:
        args.output.write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        print(text)
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.suite == "report":
        return report(args)
    if getattr(args, "seeds", None) is not None and args.seeds < 1:
        print("--seeds must be at least 1", file=sys.stderr)
        return 2
    if args.threads is not None:
        if args.threads < 1:
            print("--threads must be at least 1", file=sys.stderr)
            return 2
        import os

        import torch

        torch.set_num_threads(args.threads)
        os.environ["ADSCORE_BENCH_THREADS"] = str(args.threads)  # for the speed suite's child processes
    from . import accuracy, papers, speed

    runner = {"accuracy": accuracy.run, "papers": papers.run, "speed": speed.run}[args.suite]
    try:
        return runner(args)
    except DatasetsMissing as exc:
        print(f"skipped: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished cells are kept in the results file; rerun the same command to "
              "continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
