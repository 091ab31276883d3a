"""``adscore benchmark``: compare detectors on the user's own labelled data."""
from __future__ import annotations

import json

import click

from .. import benchmarking as bench
from ._common import data_options, echo_err, parse_value
from ..errors import ParameterError


def parse_detector_params(pairs, detectors) -> dict:
    """``--param`` values: ``DETECTOR.KEY=VALUE`` for one detector, ``KEY=VALUE`` for every one that takes it.

    Returns detector (as given on the command line) -> {key: value} for the prefixed
    ones, and under ``None`` the unprefixed ones.
    """
    by_detector: dict = {None: {}}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParameterError(f"--param expects DETECTOR.KEY=VALUE or KEY=VALUE, got {pair!r} "
                                 "(e.g. --param toll.lam=0.5)")
        target, dot, name = key.rpartition(".")
        if not dot:
            by_detector[None][key] = parse_value(value.strip())
            continue
        match = _match_detector(target, detectors)
        if match is None or not name:
            raise ParameterError(f"--param {pair!r}: {target!r} is not one of the --detector values "
                                 f"({', '.join(detectors)}); write DETECTOR.KEY=VALUE")
        by_detector.setdefault(match, {})[name] = parse_value(value.strip())
    return by_detector


def _match_detector(target, detectors):
    if target in detectors:
        return target
    lowered = target.strip().lower()
    for detector in detectors:
        if detector.lower() == lowered:
            return detector
    if bench.is_class_path(target):
        return None
    # an alias or canonical name for a registered detector given differently on --detector
    from ..registry import get_registry

    registry = get_registry()
    try:
        canonical = registry.resolve(target).name
    except Exception:
        return None
    for detector in detectors:
        if not bench.is_class_path(detector):
            try:
                if registry.resolve(detector).name == canonical:
                    return detector
            except Exception:
                continue
    return None


def build_choices(detectors, pairs) -> list:
    if not detectors:
        raise ParameterError("choose detectors with --detector NAME (repeatable; `adscore plugins` lists "
                             "them, and PyOD classes work by path, e.g. pyod.models.auto_encoder:AutoEncoder)")
    seen = set()
    for name in detectors:
        if name in seen:
            raise ParameterError(f"--detector {name} is given twice")
        seen.add(name)
    params = parse_detector_params(pairs, detectors)
    shared = params.pop(None)
    choices = []
    for name in detectors:
        plain = bench.resolve_detector(name)
        own = {key: value for key, value in shared.items() if key in plain.accepted()}
        own.update(params.get(name, {}))
        choices.append(bench.resolve_detector(name, own))
    for key in shared:
        if not any(key in c.accepted() for c in choices):
            raise ParameterError(f"--param {key}=...: none of the detectors has a parameter {key!r}")
    labels = [c.label for c in choices]
    duplicated = sorted({label for label in labels if labels.count(label) > 1})
    if duplicated:
        raise ParameterError(f"detector(s) {', '.join(duplicated)} given twice (once by an alias)")
    return choices


@click.command()
@click.argument("data")
@click.option("--label-column", "-y", required=True, metavar="NAME",
              help="Column holding the true labels: 1 = anomaly, 0 = normal.")
@click.option("--detector", "-d", "detectors", multiple=True, metavar="NAME",
              help="Detector to compare: a registered name (`adscore plugins`) or a PyOD class path "
                   "such as pyod.models.auto_encoder:AutoEncoder. Repeatable.")
@click.option("--param", "-p", "params", multiple=True, metavar="[DETECTOR.]KEY=VALUE",
              help="Parameter for one detector (toll.lam=0.5) or, without a prefix, for every "
                   "detector that has it (epochs=20). Repeatable.")
@click.option("--protocol", type=click.Choice(bench.PROTOCOLS), default="one-class", show_default=True,
              help="one-class: fit on the train part's normal rows; unsupervised: fit on the whole train part.")
@click.option("--seeds", type=click.IntRange(min=1), default=5, show_default=True,
              help="Number of seeds (0..N-1): each gives its own split, initialisation and shuffling.")
@click.option("--test-size", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=bench.DEFAULT_TEST_SIZE, show_default=True, help="Fraction of rows in the test part.")
@data_options
@click.option("--json", "as_json", is_flag=True, help="Print every run and the summary as JSON.")
def benchmark(data, label_column, detectors, params, protocol, seeds, test_size, columns, exclude,
              id_columns, as_json):
    """Compare detectors on labelled DATA: ROC-AUC, average precision, fit and score time.

    Each seed makes a stratified train/test split of DATA; every detector is fitted on the
    train part (only its normal rows with --protocol one-class) and scores the test
    part. The table shows mean ± standard deviation over the seeds, ranked by ROC-AUC.

    \b
    Examples:
      adscore benchmark data.csv -y label -d toll -d ae -d iforest
      adscore benchmark data.csv -y label --id-column id -d toll -p toll.lam=0.5 \\
          -d pyod.models.auto_encoder:AutoEncoder --seeds 3 --json
      adscore benchmark data.csv -y label -d ae -d ecod --protocol unsupervised -p epochs=20
    """
    from ..data import read_frame, select_training_table

    choices = build_choices(detectors, params)
    table = select_training_table(read_frame(data), columns, exclude, id_columns, label_column=label_column)
    X, y = bench.check_labelled(table.X, table.labels, what=f"data {data}")
    bench.split_indices(y, 0, test_size)  # a clear error before any fitting
    n_anom = int(y.sum())
    echo_err(f"benchmark on {data}: {X.shape[0]} rows x {X.shape[1]} features, {n_anom} labelled "
             f"anomalies ({n_anom / len(y):.1%}); {bench.describe_protocol(protocol, test_size)}; "
             f"seeds 0..{seeds - 1}")

    def progress(record):
        echo_err(f"  seed {record['seed']}  {record['detector']:<24} ROC-AUC {record['roc_auc']:.3f}  "
                 f"AP {record['ap']:.3f}  fit {record['fit_s']:.2f}s  score {record['score_s']:.3f}s")

    records = bench.run_benchmark(choices, X, y, range(seeds), protocol, test_size, progress=progress)
    summary = bench.summarise(records, order=[c.label for c in choices])
    if as_json:
        params_of = {c.label: c.describe_params() for c in choices}
        for row in summary:
            row["params"] = params_of[row["detector"]]
        payload = {
            "data": data, "n_rows": int(X.shape[0]), "n_features": int(X.shape[1]),
            "n_anomalies": n_anom, "protocol": protocol, "test_size": test_size,
            "seeds": list(range(seeds)), "summary": summary, "runs": records,
        }
        click.echo(json.dumps(payload, indent=2))
        return
    click.echo(bench.format_summary(summary))
