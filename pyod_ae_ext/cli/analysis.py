"""``adscore explain``, ``adscore threshold`` and ``adscore evaluate``.

The logic lives in :mod:`pyod_ae_ext.analysis`.
"""
from __future__ import annotations

from pathlib import Path

import click

from . import _schema as schema
from ._common import (data_options, device_option, echo_err, echo_json, format_table, load_model, model_columns,
                      registered_name, sign_key_option, signing_key)
from ._config import config_option
from ..errors import ParameterError

_model_option = click.option("-m", "--model", required=True, type=click.Path(dir_okay=False),
                             help="Model file from `adscore fit`.")


def model_and_labelled_data(label_help: str):
    """DATA, --config, -m/--model, --label-column (with ``label_help``) and the column options.

    The arguments every command that scores labelled data with a saved model starts with.
    """
    stack = (click.argument("data"), config_option, _model_option,
             click.option("--label-column", metavar="NAME", help=label_help), data_options)

    def decorate(command):
        for decorator in reversed(stack):
            command = decorator(command)
        return command
    return decorate


_plot_option = click.option("--plot", type=click.Path(dir_okay=False), metavar="FILE.png",
                            help='Write a PNG report (needs matplotlib: pip install "pyod-ae-ext[plot]").')


def _load(detector, data, columns=(), exclude=(), id_columns=(), label_column=None, need_label=False,
          image_shape=None):
    """``(detector, DATA's rows)`` for a loaded table model: table features by name, or images (an .npz's
    label array is the label column). Series models (``fit --window``) have their own paths.

    Id and label columns come from the flags, else from what the model remembers of its fit.
    """
    from ..backbones_image import model_image_shape
    from ..data import read_frame, read_scoring_table
    from ..images import array_names, is_image_source, parse_image_shape

    shape = model_image_shape(detector)
    if image_shape is not None:
        given = parse_image_shape(image_shape)
        if shape is not None and given != shape:
            raise ParameterError(f"--image-shape {image_shape} differs from the model's image shape "
                                 f"{','.join(map(str, shape))}; drop --image-shape")
        shape = given
    if is_image_source(data):
        # an image source has no columns; a remembered label is the .npz array of that name
        chosen = model_columns(detector, array_names(data), (), (), (), label_column, need_label)
        table = read_scoring_table(data, chosen.features, id_columns, label_column=chosen.label_column,
                                   image_shape=shape, columns=columns, exclude=exclude)
        return detector, table
    frame = read_frame(data)
    chosen = model_columns(detector, frame.columns, columns, exclude, id_columns, label_column, need_label)
    table = read_scoring_table(data, chosen.features, chosen.id_columns, label_column=chosen.label_column,
                               note=echo_err, image_shape=shape, known_unused=chosen.known_unused, frame=frame)
    return detector, table


_SUMMARY_LINES = 15


def _percent(share):
    return f"{100 * share:5.1f}%"


@click.command()
@click.argument("data")
@config_option
@_model_option
@click.option("--top", default=20, show_default=True, type=click.IntRange(min=1),
              help="How many of the highest-scoring rows to explain.")
@click.option("--features", "n_features", default=5, show_default=True, type=click.IntRange(min=1),
              help="Most contributing features shown per row.")
@data_options
@click.option("--label-column", metavar="NAME", help="0/1 label column: adds ROC and PR curves to --plot.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_plot_option
@click.option("--image-shape", metavar="C,H,W",
              help="The rows are images of this shape (C,H,W or HxW): --plot shows the top images. Models with "
                   "an image backbone, image files and image arrays need no --image-shape.")
@device_option
@sign_key_option
def explain(data, config, model, top, n_features, columns, exclude, id_columns, label_column, as_json, plot,
            image_shape, device, sign_key_file):
    """Explain the highest-scoring rows of DATA: which features carry their scores.

    For each of the top rows: its score, whether the model's threshold flags it and
    the features with the largest contributions and their share of the row's score
    (squared reconstruction error per feature; Toll's latent penalty appears as
    <latent>). Then a per-feature summary over the flagged rows. An ensemble is
    explained by the mean feature shares of its reconstruction-based members.
    Rows are numbered from 0 in file order.

    \b
    Examples:
      adscore explain -m toll.adscore --id-column id data.csv
      adscore explain -m toll.adscore --top 5 --features 3 --json data.csv
      adscore explain -m toll.adscore --plot why.png data.csv
      adscore explain -m conv.adscore --plot why.png images.npz   # input, reconstruction, error map

    For images (a model with an image backbone, image data, or --image-shape), --plot
    shows the top images beside their reconstructions and per-pixel error maps.

    A series model (`fit --window`) explains the top-scoring time points of the
    series: each value column's share of the point's own reconstruction terms (the
    time column and ids identify the points); --plot draws the series, its point
    scores and alarms over time.
    """
    from ..analysis import explain as explain_rows, plot_explanation, require_matplotlib
    from ..outputs import check_output_path

    if plot:
        check_output_path(plot, inputs=[data, model, config, sign_key_file], option="--plot")
        require_matplotlib()
    detector = load_model(model, sign_key_file, device)
    if getattr(detector, "series_windows_", None) is not None:
        from .series import explain_series_file

        if image_shape or columns or exclude or label_column:
            raise ParameterError("a series model is explained point by point over the value columns it was "
                                 "fitted on (and the label column given to `fit`): drop --image-shape, --columns, "
                                 "--exclude and --label-column")
        result = explain_series_file(detector, data, id_columns, top, n_features, plot,
                                     title=f"{Path(model).name} on {Path(data).name}")
        result.pop("_heat"), result.pop("_scores")
        _show_explanation(result, model, data, as_json)
        if plot:
            echo_err(f"wrote {plot}")
        return
    detector, table = _load(detector, data, columns, exclude, id_columns, label_column, image_shape=image_shape)
    result = explain_rows(detector, table.X, table.feature_names, top=top, n_features=n_features,
                          ids=table.ids)
    heat, scores = result.pop("_heat"), result.pop("_scores")
    if plot:
        heat["title"] = f"per-feature {'shares' if result['unit'] == 'share' else 'errors'}, top rows"
        labels = table.labels if table.labels is not None and 0 < table.labels.sum() < len(table.labels) else None
        plot_explanation(plot, detector, table.X, scores, result["threshold"], image_shape=table.image_shape,
                         ids=table.ids, labels=labels, heat=heat, title=f"{result['detector']} on {Path(data).name}")
    _show_explanation(result, model, data, as_json)
    if plot:
        echo_err(f"wrote {plot}")


def _show_explanation(result, model, data, as_json):
    if as_json:
        echo_json(schema.explanation(result, model, data))
    else:
        _print_explanation(result)


def _print_explanation(result):
    unit = result["unit"]
    click.echo(f"{result['detector']}: {result['n_flagged']} of {result['n_rows']} rows flagged "
               f"(threshold {result['threshold']:.6g}); {result['source']}")
    click.echo(f"top {len(result['rows'])} rows by score, with each feature's share of the row's "
               f"{'score' if unit == 'contribution' else 'attribution'}:")
    id_names = list(result["rows"][0].get("id", {})) if result["rows"] else []
    table = [["row", *id_names, "score", "flagged", "top features"]]
    for row in result["rows"]:
        parts = "  ".join(f"{f['feature']} {_percent(f['share']).strip()}" for f in row["features"])
        table.append([row["row"], *(row["id"][name] for name in id_names), f"{row['score']:.6g}",
                      "yes" if row["flagged"] else "no", parts])
    click.echo(_indented(format_table(table)))
    click.echo(f"per-feature summary over the {result['summary_over']}:")
    shown = result["summary"][:_SUMMARY_LINES]
    summary = [["feature", "mean share", "top feature in"]]
    summary += [[entry["feature"], _percent(entry["mean_share"]).strip(), f"{entry['top_in_rows']} rows"]
                for entry in shown]
    click.echo(_indented(format_table(summary)))
    if len(result["summary"]) > len(shown):
        click.echo(f"  ... {len(result['summary']) - len(shown)} more (all of them with --json)")


def _indented(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


@click.command()
@model_and_labelled_data("0/1 column: 1 marks an anomaly [default: the one given to `adscore fit`].")
@click.option("--objective", type=click.Choice(["f1", "cost"]),
              help="Maximise F1, or minimise the cost of errors [default: f1; cost when costs are given].")
@click.option("--cost-false-alarm", type=float, metavar="A", help="Cost of one false alarm (default 1).")
@click.option("--cost-missed", type=float, metavar="B", help="Cost of one missed anomaly (default 1).")
@click.option("--tolerance", default=0, show_default=True, type=click.IntRange(min=0), metavar="N",
              help="Ordered data: an alarm up to N rows before an anomaly counts as a hit.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), metavar="NEW_MODEL",
              help="Save a copy of the model with the chosen threshold here.")
@click.option("--in-place", is_flag=True, help="Rewrite MODEL itself (atomically) with the chosen threshold.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@sign_key_option
def threshold(data, config, model, label_column, columns, exclude, id_columns, objective, cost_false_alarm,
              cost_missed, tolerance, output, in_place, as_json, sign_key_file):
    """Choose the model's alarm threshold from labelled validation DATA.

    Every distinct score is tried as a cut point (a row is flagged when its score
    exceeds the threshold), so the optimum on DATA is exact; ties go to the higher
    threshold. The old and the new threshold are printed with their precision,
    recall and F1. Nothing is written unless asked: -o NEW_MODEL saves a copy with
    the new threshold, --in-place rewrites MODEL atomically.

    A series model (`fit --window`) gets its point threshold chosen from one 0/1
    label per time point; with --tolerance N an alarm up to N points before an
    anomalous point counts as a hit.

    \b
    Examples:
      adscore threshold -m toll.adscore --label-column label valid.csv           # show, change nothing
      adscore threshold -m toll.adscore --label-column label valid.csv -o tuned.adscore
      adscore threshold -m toll.adscore --label-column label --cost-false-alarm 1 --cost-missed 20 \\
          --in-place valid.csv
      adscore threshold -m toll.adscore --label-column y --objective cost --tolerance 5 sensor.csv
      adscore threshold -m vrae.adscore --label-column anomaly --tolerance 10 series.csv -o tuned.adscore
    """
    import numpy as np

    from ..analysis import best_threshold, evaluate_threshold
    from ..outputs import check_output_path
    from ..persistence import save_detector, set_threshold

    if output and in_place:
        raise ParameterError("choose one of -o NEW_MODEL and --in-place")
    if output == "-":
        raise ParameterError("a model is a binary file, not a stream: give -o NEW_MODEL.adscore")
    target = model if in_place else output
    if output:
        check_output_path(output, inputs=[data, model, config, sign_key_file])
    elif in_place:
        check_output_path(model, inputs=[data, config, sign_key_file], option="--in-place")
    costs_given = cost_false_alarm is not None or cost_missed is not None
    if objective == "f1" and costs_given:
        raise ParameterError("--cost-false-alarm/--cost-missed apply to --objective cost, not f1")
    objective = objective or ("cost" if costs_given else "f1")
    a = 1.0 if cost_false_alarm is None else cost_false_alarm
    b = 1.0 if cost_missed is None else cost_missed
    detector = load_model(model, sign_key_file)
    series = getattr(detector, "series_windows_", None) is not None
    if series:
        scores, labels, current = _series_points(detector, data, label_column, columns, exclude)
    else:
        detector, table = _load(detector, data, columns, exclude, id_columns, label_column, need_label=True)
        scores, labels, current = detector.decision_function(table.X), table.labels, detector.threshold_
    previous = evaluate_threshold(scores, labels, current, objective, a, b, tolerance)
    choice = best_threshold(scores, labels, objective, a, b, tolerance)
    if series:  # a point is an alarm at or above the point threshold: the same points as score > cut
        from ..windows import set_point_threshold

        previous.threshold = detector.series_windows_.point_scale[1]
        choice.threshold = float(np.nextafter(choice.threshold, np.inf))
        if target:
            set_point_threshold(detector, choice.threshold)
    elif target:
        set_threshold(detector, choice.threshold)
    if target:
        detector.fit_info_ = {**(getattr(detector, "fit_info_", None) or {}),
                              "threshold_source": _threshold_source(objective, a, b, tolerance, data, len(scores))}
        save_detector(detector, target, signing_key=signing_key(sign_key_file))
    if as_json:
        echo_json({"model": str(model), "data": str(data), "detector": registered_name(detector),
                   "n_rows": int(len(scores)), "chosen": schema.threshold_choice(choice.as_dict()),
                   "previous": schema.threshold_choice(previous.as_dict()), "cost_false_alarm": a,
                   "cost_missed": b, "written": str(target) if target else None})
        return
    what = "F1" if objective == "f1" else f"cost ({a:g} per false alarm + {b:g} per missed anomaly)"
    rows = "points" if series else "rows"
    tol = f", tolerance {tolerance} {rows}" if tolerance else ""
    click.echo(f"optimised {what} on {len(scores)} labelled {rows} ({choice.n_anomalies} anomalies{tol})")
    for label, c in (("old", previous), ("new", choice)):
        value = f"F1 {c.f1:.4f}" if objective == "f1" else f"cost {c.cost:g}"
        click.echo(f"{label} threshold {c.threshold:.6g}: {value}; {c.alarms} alarms, {c.false_alarms} false, "
                   f"{c.missed} missed; precision {c.precision:.3f}, recall {c.recall:.3f}, F1 {c.f1:.3f}")
    if target:
        click.echo(f"wrote threshold {choice.threshold:.6g} to {target}")
    else:
        click.echo("model unchanged: add -o NEW_MODEL or --in-place to save the new threshold")


def _series_points(detector, data, label_column, columns, exclude):
    """`threshold` of a series model: (point scores, labels, the point threshold as a `score > cut` cut)."""
    from ..windows import point_cut, score_series
    from .series import labelled_points

    if columns or exclude:
        raise ParameterError("a series model reads the value columns it was fitted on: drop --columns and --exclude")
    frame, labels, _ = labelled_points(detector, data, label_column)
    return score_series(detector, frame), labels, point_cut(detector.series_windows_)


def _threshold_source(objective, cost_false_alarm, cost_missed, tolerance, data, n_rows) -> dict:
    """Where a threshold chosen by `threshold` comes from, as ``fit_info_`` records it."""
    source = {"method": objective, "data": "standard input" if data == "-" else Path(data).name,
              "rows": n_rows, "tolerance": tolerance}
    if objective == "cost":
        source.update(cost_false_alarm=cost_false_alarm, cost_missed=cost_missed)
    return source


def _evaluate_series(detector, model, data, label_column, windows_file, columns, exclude, plot, time_column,
                     probation, as_json):
    """`evaluate` of a series model against labelled windows (``windows_file``) or a 0/1 label column (the
    flag's, else the one given to `fit`)."""
    from .series import evaluate_series_file, evaluate_series_labels, print_series_evaluation

    if getattr(detector, "series_windows_", None) is None:
        raise ParameterError("--windows evaluates a series model: fit it with --time-column and --window")
    if columns or exclude:
        raise ParameterError("a series model reads the value columns it was fitted on: drop --columns and --exclude")
    title = f"{Path(model).name} on {Path(data).name}"
    if windows_file is not None:
        metrics = evaluate_series_file(detector, data, windows_file, time_column, probation, plot, title=title)
    else:
        metrics = evaluate_series_labels(detector, data, label_column, time_column, probation, plot, title=title)
    if as_json:
        echo_json({"model": str(model), "data": str(data), "detector": registered_name(detector), **metrics})
    else:
        print_series_evaluation(metrics)
    if plot:
        echo_err(f"wrote {plot}")


@click.command()
@model_and_labelled_data("0/1 column: 1 marks an anomaly [default: the one given to `adscore fit`].")
@click.option("--windows", "windows_file", type=click.Path(dir_okay=False), metavar="LABELS.json",
              help="Series model: labelled anomaly windows, [[start, end], ...] or NAB's {file: [[start, end]]}; "
                   "gives NAB-style window metrics instead of --label-column.")
@click.option("--time-column", metavar="NAME", help="Series model: the time column (default: the model's).")
@click.option("--probation", type=click.FloatRange(0, 1, max_open=True), default=0.15, show_default=True,
              help="Series model: leading fraction of the series whose alarms and windows are not scored "
                   "(NAB's probationary period).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_plot_option
@device_option
@sign_key_option
def evaluate(data, config, model, label_column, columns, exclude, id_columns, windows_file, time_column, probation,
             as_json, plot, device, sign_key_file):
    """Measure a model against labelled DATA: ROC-AUC, average precision, and
    precision, recall and F1 at the model's threshold.

    A series model (`fit --window`) is measured per time point and per labelled
    window. Its alarms (points scored at or above its point threshold) are measured
    against labelled time windows the NAB way: an alarm inside a window counts once,
    one outside is a false alarm; window recall and precision, and the NAB
    standard-profile score (100 = every window found at its start, 0 = no alarm).
    The windows come from --windows LABELS.json, or from a 0/1 label column (each run
    of consecutive 1s is one window), which also gives the point ROC-AUC, average
    precision and precision/recall/F1 of the alarms. --plot then draws the series,
    its point scores and alarms over time, the labelled points shaded.

    \b
    Examples:
      adscore evaluate -m toll.adscore --label-column label test.csv
      adscore evaluate -m toll.adscore --label-column label --json --plot report.png test.csv
      adscore evaluate -m vrae.adscore --time-column ts --windows labels.json series.csv
      adscore evaluate -m vrae.adscore --label-column anomaly series.csv
    """
    import numpy as np

    from ..analysis import contributions, evaluate as evaluate_scores, plot_report, require_matplotlib, row_labels
    from ..errors import AdscoreError
    from ..outputs import check_output_path

    if windows_file is not None and label_column is not None:
        raise ParameterError("--windows measures alarms against labelled windows: drop --label-column")
    if plot:
        check_output_path(plot, inputs=[data, model, config, sign_key_file], option="--plot")
        require_matplotlib()
    detector = load_model(model, sign_key_file, device)
    if windows_file is not None or getattr(detector, "series_windows_", None) is not None:
        _evaluate_series(detector, model, data, label_column, windows_file, columns, exclude, plot, time_column,
                         probation, as_json)
        return
    detector, table = _load(detector, data, columns, exclude, id_columns, label_column, need_label=True)
    scores = detector.decision_function(table.X)
    metrics = evaluate_scores(scores, table.labels, detector.threshold_)
    if plot:
        heat = None
        try:
            top = np.argsort(-scores, kind="stable")[:20]
            attribution = contributions(detector, table.X[top], table.feature_names)
            heat = {"values": attribution.values, "columns": attribution.columns, "unit": attribution.unit,
                    **row_labels(top, table.ids),
                    "title": f"per-feature {'shares' if attribution.unit == 'share' else 'errors'}, top rows"}
        except AdscoreError:
            pass  # detectors without per-feature contributions: no heat map
        plot_report(plot, scores, detector.threshold_, labels=table.labels, heat=heat,
                    title=f"{Path(model).name} on {Path(data).name}")
    if as_json:
        echo_json({"model": str(model), "data": str(data), "detector": registered_name(detector), **metrics})
    else:
        click.echo(f"{metrics['n_rows']} rows, {metrics['n_anomalies']} labelled anomalies")
        click.echo(f"ROC-AUC            {metrics['roc_auc']:.4f}")
        click.echo(f"average precision  {metrics['average_precision']:.4f}")
        click.echo(f"at threshold {metrics['threshold']:.6g}: {metrics['n_flagged']} flagged, "
                   f"precision {metrics['precision']:.4f}, recall {metrics['recall']:.4f}, F1 {metrics['f1']:.4f}")
    if plot:
        echo_err(f"wrote {plot}")
