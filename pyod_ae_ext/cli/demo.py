"""``adscore example`` and ``adscore demo``: the embedded example data set."""
from __future__ import annotations

import time
from importlib import resources

import click

from ._common import build_detector, complete_detector, echo_err, fit_detector, write_stdout


EXAMPLE_FILE = "breast_cancer.csv"


def example_bytes() -> bytes:
    return resources.files("pyod_ae_ext").joinpath("data", EXAMPLE_FILE).read_bytes()


@click.command()
@click.option("-o", "--output", default="-", show_default=True, help="Where to write the CSV; - for stdout.")
def example(output):
    """Write the embedded example data set (CSV).

    369 breast-tissue samples from scikit-learn's copy of the Wisconsin diagnostic
    data: every benign case plus 12 malignant ones (label = 1), 30 numeric features,
    an `id` and a `label` column.
    """
    from ..outputs import check_output_path, write_output

    check_output_path(output)
    payload = example_bytes()
    if output == "-":
        write_stdout(payload)
    else:
        write_output(output, payload)
        echo_err(f"wrote {output}")


@click.command()
@click.option("--detector", "-d", default="toll", show_default=True, shell_complete=complete_detector,
              help="Detector to demonstrate.")
@click.option("--top", default=10, show_default=True, help="How many top anomalies to show.")
@click.option("--compare", "baselines", default="", metavar="NAME,NAME",
              help="Also fit these detectors (e.g. knn,iforest) on the same rows and show their ROC-AUC.")
def demo(detector, top, baselines):
    """Fit a detector on the embedded example and show the top anomalies.

    Equivalent to `adscore example`, `adscore fit` and `adscore score --top` in one go,
    with the ROC-AUC against the example's labels. `--compare knn,iforest` fits other
    detectors, each with its defaults, on the same rows and prints their ROC-AUC beside
    it (PyOD's KNN works in raw units, where this example's large `area` features
    dominate; see benchmarks/RESULTS.md, "The demo data").
    """
    compared = [name.strip() for name in baselines.split(",") if name.strip()]
    import io

    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from ..data import select_training_table

    frame = pd.read_csv(io.BytesIO(example_bytes()))
    table = select_training_table(frame, id_columns=["id"], label_column="label")
    name, model = build_detector(detector, {}, seed=0)
    others = [build_detector(other, {}, seed=0) for other in compared]  # bad names fail before any fit
    echo_err(f"fitting {name} on the embedded example ({table.X.shape[0]} rows x {table.X.shape[1]} "
             f"features, {int(table.labels.sum())} labelled anomalies) ...")
    started = time.perf_counter()
    fit_detector(name, model, table.X)
    seconds = time.perf_counter() - started
    scores = model.decision_scores_
    order = np.argsort(-scores, kind="stable")[:top]
    shown = pd.DataFrame({"id": table.ids["id"].to_numpy()[order], "anomaly_score": scores[order],
                          "is_anomaly": model.labels_[order], "true_label": table.labels[order]})
    click.echo(f"top {len(order)} anomalies by {name} score (fit {seconds:.2f}s):")
    click.echo(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    hits = int(table.labels[order].sum())
    click.echo(f"{hits} of the top {len(order)} are labelled anomalies; "
               f"ROC-AUC {roc_auc_score(table.labels, scores):.3f}")
    for other_name, other in others:
        fit_detector(other_name, other, table.X)
        click.echo(f"{other_name}: ROC-AUC {roc_auc_score(table.labels, other.decision_scores_):.3f}")


