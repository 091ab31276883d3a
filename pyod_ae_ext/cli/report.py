"""``adscore report``: one self-contained HTML page on a model and the data it scores.

The page is built by :func:`pyod_ae_ext.report.build_report`.
"""
from __future__ import annotations

from pathlib import Path

import click

from ._common import device_option, echo_err, load_model, sign_key_option, signing_key, write_stdout
from .analysis import _load, model_and_labelled_data


@click.command()
@model_and_labelled_data("0/1 column (1 = anomaly): adds metrics, ROC and PR curves [default: the one given to `fit`].")
@click.option("--top", default=20, show_default=True, type=click.IntRange(min=1),
              help="How many of the highest-scoring rows to list.")
@click.option("--features", "n_features", default=5, show_default=True, type=click.IntRange(min=1),
              help="Most contributing features shown per row.")
@click.option("-o", "--output", required=True, metavar="FILE.html", help="Where to write the report; - for stdout.")
@device_option
@sign_key_option
def report(data, config, model, label_column, columns, exclude, id_columns, top, n_features, output,
           device, sign_key_file):
    """Write a self-contained HTML report on MODEL scoring DATA.

    One file to open in a browser or send to someone: what was fitted on what
    (detector, parameters, training rows and features, fit information), the score
    distribution with the threshold, the top anomalies with the features that carry
    their scores, and, with --label-column, ROC-AUC, average precision,
    precision/recall/F1 at the threshold and the ROC and precision-recall curves.
    Plots are embedded; the page has no scripts and loads nothing from the network.
    Needs matplotlib (pip install "pyod-ae-ext[plot]").

    \b
    The id and label columns given to `adscore fit` are used unless --id-column or
    --label-column name others.

    A series model (`fit --window`) is reported point by point: the series, its
    point scores and alarms over time, the top points with the value columns that
    carry their scores, and with labels per point the point and NAB window metrics.

    \b
    Examples:
      adscore report -m toll.adscore example.csv -o report.html
      adscore report -m toll.adscore --id-column id --label-column label example.csv -o report.html
      adscore report -m toll.adscore new.csv -o - > report.html
    """
    from ..analysis import require_matplotlib
    from ..outputs import check_output_path, write_output
    from ..persistence import read_metadata
    from ..report import build_report

    check_output_path(output, inputs=[data, model, config, sign_key_file])
    require_matplotlib("adscore report")
    metadata = read_metadata(model, signing_key=signing_key(sign_key_file))
    detector = load_model(model, sign_key_file, device)
    names = {"data_name": "standard input" if data == "-" else Path(data).name, "model_name": Path(model).name,
             "top": top, "n_features": n_features}
    if getattr(detector, "series_windows_", None) is not None:
        from .series import series_report

        page = series_report(detector, data, label_column, columns, exclude, id_columns, metadata, **names)
    else:
        detector, table = _load(detector, data, columns, exclude, id_columns, label_column)
        page = build_report(detector, table.X, table.feature_names, ids=table.ids, labels=table.labels,
                            metadata=metadata, **names)
    payload = page.encode("utf-8")
    if output == "-":
        write_stdout(payload)
        return
    write_output(output, payload)
    echo_err(f"wrote {output}")
