"""``adscore benchmark``: compare detectors on the user's own labelled data."""
from __future__ import annotations

import click

from .. import benchmarking as bench
from ..params import distribute, parse_assignments
from ..registry import accepts_any_keyword
from . import _schema as schema
from ._common import complete_detector, data_options, echo_err, echo_json, same_detector
from ._config import config_option, params_with_config
from ._progress import RunProgress
from ..errors import ParameterError


def build_choices(detectors, pairs) -> list:
    if not detectors:
        raise ParameterError("choose detectors with --detector NAME (repeatable; `adscore plugins` lists "
                             "them, and PyOD classes work by path, e.g. pyod.models.auto_encoder:AutoEncoder)")
    seen = set()
    for name in detectors:
        if name in seen:
            raise ParameterError(f"--detector {name} is given twice")
        seen.add(name)
    plain = {name: bench.resolve_detector(name) for name in detectors}
    accepted = {name: None if accepts_any_keyword(choice.cls) else set(choice.accepted())
                for name, choice in plain.items()}
    params = distribute(parse_assignments(pairs), list(detectors), accepted, same_detector)
    choices = [bench.resolve_detector(name, params[name]) for name in detectors]
    labels = [c.label for c in choices]
    duplicated = sorted({label for label in labels if labels.count(label) > 1})
    if duplicated:
        raise ParameterError(f"detector(s) {', '.join(duplicated)} given twice (once by an alias)")
    return choices


@click.command()
@click.argument("data")
@config_option
@click.option("--label-column", "-y", required=True, metavar="NAME",
              help="Column holding the true labels: 1 = anomaly, 0 = normal.")
@click.option("--detector", "-d", "detectors", multiple=True, metavar="NAME", shell_complete=complete_detector,
              help="Detector to compare: a registered name (`adscore plugins`) or a PyOD class path "
                   "such as pyod.models.auto_encoder:AutoEncoder. Repeatable.")
@click.option("--param", "-p", "params", multiple=True, metavar="[DETECTOR.]KEY=VALUE", callback=params_with_config,
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
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no per-run lines on stderr.")
def benchmark(data, config, label_column, detectors, params, protocol, seeds, test_size, columns, exclude,
              id_columns, as_json, quiet):
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
    if not quiet:
        echo_err(f"benchmark on {data}: {X.shape[0]} rows x {X.shape[1]} features, {n_anom} labelled "
                 f"anomalies ({n_anom / len(y):.1%}); {bench.describe_protocol(protocol, test_size)}; "
                 f"seeds 0..{seeds - 1}")
    width = max(len(c.label) for c in choices)
    runs = RunProgress(len(choices) * seeds, quiet)

    def progress(record):
        runs(f"  seed {record['seed']}  {record['detector']:<{width}}  ROC-AUC {record['roc_auc']:.3f}  "
             f"AP {record['ap']:.3f}  fit {record['fit_s']:7.2f}s  score {record['score_s']:7.3f}s")

    try:
        records = bench.run_benchmark(choices, X, y, range(seeds), protocol, test_size, progress=progress)
    finally:
        runs.close()
    summary = bench.summarise(records, order=[c.label for c in choices])
    if as_json:
        params_of = {c.label: c.describe_params() for c in choices}
        for row in summary:
            row["params"] = params_of[row["detector"]]
        echo_json({
            "data": data, "n_rows": int(X.shape[0]), "n_features": int(X.shape[1]),
            "n_anomalies": n_anom, "protocol": protocol, "test_size": test_size,
            "seeds": list(range(seeds)), "summary": schema.benchmark_rows(summary),
            "runs": schema.benchmark_rows(records),
        })
        return
    click.echo(bench.format_summary(summary))
