"""What the suites share: the data folder, datasets, results files and markdown tables."""
from __future__ import annotations

import ast
import json
import math
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
DATASETS_ENV = "ADSCORE_DATASETS"


class DatasetsMissing(RuntimeError):
    """The shared data folder is not where the benchmarks look for it."""


def datasets_root() -> Path:
    """``$ADSCORE_DATASETS`` if set, else ``../shared/datasets`` beside the checkout."""
    env = os.environ.get(DATASETS_ENV)
    if env:
        return Path(env).expanduser()
    return REPO_ROOT.parent / "shared" / "datasets"


def require_datasets() -> Path:
    root = datasets_root()
    if not root.is_dir():
        raise DatasetsMissing(
            f"benchmark data not found at {root}: these suites read the shared ADBench/ODDS/MNIST "
            f"files (adbench/, odds/, mnist/); set {DATASETS_ENV}=/path/to/datasets to point at them")
    return root


def dataset_path(name: str, root: Path | None = None) -> Path:
    """``6_cardio`` -> adbench/6_cardio.npz, ``arrhythmia`` -> odds/..., ``mnist_digit4`` -> mnist/..."""
    root = root or require_datasets()
    for sub in ("adbench", "odds", "mnist", "."):
        path = root / sub / f"{name}.npz"
        if path.is_file():
            return path
    raise DatasetsMissing(f"dataset {name!r} not found under {root} (looked in adbench/, odds/, mnist/)")


def load_dataset(name: str, root: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``X`` as float64 and ``y`` as int (1 = anomaly) of a shared ``.npz`` file."""
    with np.load(dataset_path(name, root), allow_pickle=False) as data:
        X = np.asarray(data["X"], dtype=np.float64)
        y = np.asarray(data["y"]).astype(int).ravel()
    return X, y


# --------------------------------------------------------------------------
# results files: one JSON object per line, appended as each cell finishes


def environment() -> dict:
    import pyod
    import torch

    import pyod_ae_ext

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyod": pyod.__version__,
        "pyod_ae_ext": pyod_ae_ext.__version__,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "commit": _git_commit(),
    }


def _git_commit() -> str | None:
    head = REPO_ROOT / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            return (REPO_ROOT / ".git" / ref[5:]).read_text().strip()[:12]
        return ref[:12]
    except OSError:
        return None


def command_line() -> str:
    return "python -m benchmarks " + " ".join(shlex.quote(a) for a in sys.argv[1:])


class ResultsFile:
    """Append-only JSON-lines results; cells already recorded without error are skipped on rerun."""

    def __init__(self, path: Path, key_fields: tuple):
        self.path = Path(path)
        self.key_fields = key_fields
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records = read_records(self.path)
        self.done = {self.key(r) for r in self.records if r.get("kind") == "cell" and not r.get("error")}

    def key(self, record: dict) -> tuple:
        return tuple(json.dumps(record.get(f), sort_keys=True) for f in self.key_fields)

    def has(self, **fields) -> bool:
        return self.key(fields) in self.done

    def append(self, record: dict) -> None:
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **record}
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.records.append(record)
        if record.get("kind") == "cell" and not record.get("error"):
            self.done.add(self.key(record))

    def start_run(self, suite: str, settings: dict) -> None:
        self.append({"kind": "run", "suite": suite, "command": command_line(), "settings": settings,
                     "env": environment(), "load_avg": _load_average()})


def _load_average():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def add_param_option(parser, help_text: str) -> None:
    """``--param/-p KEY=VALUE`` (repeatable), read by :func:`parsed_params`."""
    parser.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE", help=help_text)


def parsed_params(pairs) -> dict:
    """``["KEY=VALUE", ...]`` as a dict, each value read as a Python literal."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"Error: -p needs KEY=VALUE, got {pair!r}")
        try:
            params[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            raise SystemExit(f"Error: -p {pair!r}: the value is not a Python literal (quote strings: "
                             f"{key.strip()}='text')") from None
    return params


def param_label(params: dict) -> str:
    """`` KEY=VALUE ...`` appended to a detector's label."""
    return "".join(f" {key}={value}" for key, value in params.items())


def read_records(path: Path) -> list:
    """Records of a results file; a truncated last line (an interrupted write) is ignored."""
    records = []
    if not Path(path).is_file():
        return records
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def run_grid(detectors, datasets, protocols, n_seeds: int, path: Path) -> list:
    """Every detector on every data set, protocol and seed, appending one JSON line per cell to ``path``.

    Cells already in ``path`` are skipped, so an interrupted run resumes. Returns every
    record of ``path``.
    """
    from pyod_ae_ext import benchmarking as bench

    done = {(r["dataset"], r["protocol"], r["detector"], r["seed"]) for r in read_records(path)}
    with open(path, "a") as out:
        for protocol in protocols:
            for dataset in datasets:
                X, y = load_dataset(dataset)
                todo = [c for c in detectors
                        if any((dataset, protocol, c.label, s) not in done for s in range(n_seeds))]
                if not todo:
                    continue
                started = time.perf_counter()
                out.writelines(json.dumps({**record, "dataset": dataset}) + "\n" for record in bench.run_benchmark(todo, X, y, list(range(n_seeds)), protocol=protocol))
                out.flush()
                log(f"{protocol} {dataset}: {len(todo)} detectors in {time.perf_counter() - started:.0f}s")
    return read_records(path)


def results_path(out_dir, suite: str, quick: bool) -> Path:
    return Path(out_dir) / f"{suite}{'-quick' if quick else ''}.jsonl"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# markdown


def fmt(value, digits=3, pct=False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if pct:
        return f"{100 * value:.1f}"
    return f"{value:.{digits}f}"


def fmt_seconds(value) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 0.1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def markdown_table(header, rows, align=None) -> str:
    align = align or ["l"] + ["r"] * (len(header) - 1)
    marks = {"l": ":--", "r": "--:", "c": ":-:"}
    lines = ["| " + " | ".join(map(str, header)) + " |",
             "|" + "|".join(marks[a] for a in align) + "|"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def run_headers(records, suite_names) -> str:
    """The commands and environments of the runs that wrote ``records``."""
    runs = [r for r in records if r.get("kind") == "run" and r.get("suite") in suite_names]
    if not runs:
        return ""
    lines = ["Produced by:", ""]
    seen = set()
    for run in runs:
        env = run.get("env", {})
        text = (f"- `{run['command']}` ({run.get('time', '?')}; {env.get('cpu', '?')}, "
                f"{env.get('cpu_count', '?')} CPUs, torch {env.get('torch', '?')} with "
                f"{env.get('torch_threads', '?')} threads, pyod {env.get('pyod', '?')}"
                + (f", GPU {env['cuda']}" if env.get("cuda") else "")
                + (f", commit {env['commit']}" if env.get("commit") else "")
                + (f", load average {run['load_avg'][0]}" if run.get("load_avg") else "") + ")")
        if text not in seen:
            seen.add(text)
            lines.append(text)
    return "\n".join(lines) + "\n"
