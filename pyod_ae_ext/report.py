"""A self-contained HTML report on a fitted detector and the data it scored.

:func:`build_report` returns one HTML page that needs nothing else to be opened or
shared: plots are embedded as base64 PNG images, the style sheet is inline, and there
is no JavaScript and no external URL. Every string that comes from the user (file
names, column names, ids, parameter values, model metadata) is HTML-escaped.

The page holds what was fitted on what (detector, parameters, training rows and
features, fit information from the model file's metadata), the score distribution
with the threshold, the top-scoring rows with the features that carry their scores
(:func:`pyod_ae_ext.analysis.explain`), and, when labels are given, ROC-AUC, average
precision, precision/recall/F1 at the threshold and the ROC and precision-recall
curves. Matplotlib is needed (the ``plot`` extra); torch is not imported here.
"""
from __future__ import annotations

import base64
import html
import json
from datetime import datetime, timezone

import numpy as np

from .errors import AdscoreError

# metadata entries shown in their own rows (or not at all); any other entry, such as
# fit information added by newer versions, is listed as it is
_KNOWN_METADATA = {"format", "format_version", "detector", "params", "feature_names", "threshold", "versions",
                   "state", "content_sha256", "signed", "signature_verified", "signature"}
_LOSS_WINDOW = 5
_STILL_FALLING = 0.01


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def build_report(detector, X, feature_names, ids=None, labels=None, metadata=None, *, data_name="data",
                 model_name="model", top=20, n_features=5) -> str:
    """The HTML report (a str) on ``detector`` scoring ``X``.

    Parameters
    ----------
    detector : fitted detector
        Any adscore/PyOD detector; per-feature explanations need one that provides
        ``feature_contributions`` (or an ensemble with such a member).
    X : array of shape (n_rows, n_features)
        The rows to score and report on.
    feature_names : list of str
        Names of the columns of ``X``.
    ids : pandas.DataFrame, optional
        Identifier columns, one row per row of ``X``, shown with the top rows.
    labels : array of 0/1, optional
        True labels (1 = anomaly); with both classes present the report adds metrics
        and ROC and precision-recall curves.
    metadata : dict, optional
        The model file's metadata (:func:`pyod_ae_ext.persistence.read_metadata`).
    data_name, model_name : str
        How the data and the model are named in the report.
    top : int
        How many of the highest-scoring rows to list.
    n_features : int
        Most contributing features shown per row.

    Returns
    -------
    str
        A complete HTML document.
    """
    from .analysis import _detector_name, require_matplotlib

    require_matplotlib("the HTML report")
    X = np.asarray(X, dtype=np.float64)
    metadata = metadata or {}
    detector_name = metadata.get("detector") or _detector_name(detector)
    explanation, scores, why_unexplained = _explain(detector, X, feature_names, ids, top, n_features)
    threshold = float(detector.threshold_)
    labels = None if labels is None else np.asarray(labels).astype(int)
    metrics, why_no_metrics = _metrics(scores, labels, threshold)
    sections = [
        _summary(scores, threshold, metrics),
        _model_section(detector, detector_name, model_name, feature_names, metadata),
        _scores_section(scores, threshold, labels),
        _top_section(explanation, scores, threshold, ids, labels, top, why_unexplained),
        _metrics_section(metrics, scores, labels, threshold, why_no_metrics),
    ]
    return _document(detector_name, data_name, model_name, f"{len(scores)} rows scored", sections)


def build_series_report(detector, frame, ids=None, labels=None, metadata=None, *, data_name="data",
                        model_name="model", top=20, n_features=5) -> str:
    """The HTML report (a str) on a series model (``fit --window``) scoring the series ``frame``.

    As :func:`build_report`, point by point: a point is flagged when its score reaches
    the model's point threshold, the top points come with the value columns that carry
    their scores (:func:`pyod_ae_ext.windows.point_contributions`), and a figure shows
    the series, its point scores and alarms over time. ``labels`` (0/1 per point) add
    the point metrics and the NAB-style metrics of the labelled windows (each run of
    labelled points), as ``adscore evaluate`` gives them.
    """
    from .analysis import Contributions, _detector_name, explain_scores, require_matplotlib
    from .series_plots import model_series_figure
    from .windows import point_contributions, point_cut

    require_matplotlib("the HTML report")
    metadata = metadata or {}
    settings = detector.series_windows_
    detector_name = metadata.get("detector") or _detector_name(detector)
    scores, terms = point_contributions(detector, frame)
    # the sections flag score > threshold; a series model's alarms are score >= its point threshold
    threshold = point_cut(settings)
    source = f"{detector_name}: each point's own reconstruction terms per value column"
    explanation = explain_scores(detector_name, scores, Contributions.of(terms, settings.value_columns, source),
                                 threshold, top, n_features, ids)
    explanation.pop("_scores")
    labels = None if labels is None else np.asarray(labels).astype(int)
    metrics, why_no_metrics = _metrics(scores, labels, threshold, what="points")
    figure = _figure_html(model_series_figure(detector, frame, scores, terms, labels),
                          "the series, its point scores and alarms over time",
                          "Alarm points in red; the dashed line is the point threshold"
                          + ("; labelled anomalies shaded." if labels is not None else "."))
    series = ('<section><h2 id="series">The series over time</h2>'
              f"<p>{_e(_series_text(settings))}</p>{figure}</section>")
    sections = [
        _summary(scores, threshold, metrics, what="points"),
        _model_section(detector, detector_name, model_name, list(detector.feature_names_in_), metadata),
        series,
        _scores_section(scores, threshold, labels, what="points"),
        _top_section(explanation, scores, threshold, ids, labels, top, None, what="points"),
        _metrics_section(metrics, scores, labels, threshold, why_no_metrics,
                         _window_rows(detector, frame, scores, labels) if metrics is not None else (), what="points"),
    ]
    return _document(detector_name, data_name, model_name, f"{len(scores)} points scored", sections)


def _series_text(settings) -> str:
    fold = {"point": "the mean of its own reconstruction terms in", "mean": "the mean of the scores of",
            "max": "the largest score of"}[settings.fold]
    return (f"Windows of {settings.window} points every {settings.stride} over the value column(s) "
            f"{', '.join(settings.value_columns)}; each point scores {fold} the windows that cover it.")


def _window_rows(detector, frame, scores, labels) -> list:
    """NAB-style metrics of the alarms against the labelled windows (runs of labelled points), as table rows."""
    from .nab_eval import evaluate_alarms, windows_from_labels
    from .windows import point_labels, series_times

    times = series_times(frame, detector.series_windows_.time_column)[0]
    alarms = point_labels(detector, scores).astype(bool)
    result = evaluate_alarms(times, alarms, windows_from_labels(times, labels))
    return [("labelled windows", f"{result.windows} scored (after NAB's 15% probation), "
                                 f"{result.detected_windows} with an alarm"),
            ("window recall / precision", f"{result.recall:.4f} / {result.precision:.4f} "
                                          f"({result.false_alarms} false alarm points)"),
            ("NAB score", f"{result.nab_score:.2f} (standard profile; 100 = every window found at its start)")]


def _document(detector_name, data_name, model_name, scored, sections) -> str:
    from . import __version__

    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return _page(f"{detector_name} on {data_name}", f"Model {model_name}, data {data_name}, {scored}", sections,
                 f"Generated by adscore {__version__} (pyod-ae-ext) on {generated}.")


# --------------------------------------------------------------------------
# computations


def _explain(detector, X, feature_names, ids, top, n_features):
    """``(explanation or None, scores, why there is no explanation)``."""
    from .analysis import explain

    try:
        result = explain(detector, X, feature_names, top=top, n_features=n_features, ids=ids)
    except AdscoreError as exc:
        return None, np.asarray(detector.decision_function(X), dtype=np.float64), str(exc)
    return result, result.pop("_scores"), None


def _metrics(scores, labels, threshold, what="rows"):
    """``(metrics or None, why there are none)``."""
    from .analysis import evaluate

    if labels is None:
        return None, "No label column was given, so the report has no accuracy metrics."
    if labels.min() == labels.max():
        kind = "anomalies (1)" if labels.min() == 1 else f"normal {what} (0)"
        return None, (f"The labels hold only {kind}; ROC-AUC, average precision and the curves need both "
                      f"normal {what} and anomalies.")
    return evaluate(scores, labels, threshold), None


def _loss_trend(loss):
    """A sentence on the last training loss and whether it was still falling."""
    if len(loss) <= _LOSS_WINDOW:
        return f"{loss[-1]:.4g}"
    before = loss[-_LOSS_WINDOW - 1]
    drop = (before - loss[-1]) / abs(before) if before else 0.0
    if drop > _STILL_FALLING:
        return (f"{loss[-1]:.4g}, still falling ({drop:.1%} lower than {_LOSS_WINDOW} epochs earlier; "
                "more epochs may help)")
    return f"{loss[-1]:.4g}, levelled off (changed {abs(drop):.1%} over the last {_LOSS_WINDOW} epochs)"


# --------------------------------------------------------------------------
# figures


def _figure_html(figure, alt, caption=None) -> str:
    from .plots import png_bytes

    data = base64.b64encode(png_bytes(figure, dpi=110)).decode("ascii")
    text = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}">{text}</figure>'


def _histogram_figure(scores, threshold, labels, what="rows"):
    """``(figure, (xscale, yscale))``."""
    from . import plots

    figure = plots.new_figure(9.0, 3.8)
    scales = plots.score_histogram(figure.add_subplot(1, 1, 1), scores, threshold, labels, what)
    return figure, scales


def _curves_figure(scores, labels, threshold):
    from . import plots

    figure = plots.new_figure(10.0, 4.2)
    plots.roc_panel(figure.add_subplot(1, 2, 1), scores, labels, threshold)
    plots.pr_panel(figure.add_subplot(1, 2, 2), scores, labels, threshold)
    return figure


def _heat_figure(heat):
    from . import plots

    longest = min(plots.MAX_LABEL_CHARS, max(len(str(c)) for c in heat["columns"]))
    figure = plots.new_figure(10.0, 2.6 + 0.22 * len(heat["rows"]) + 0.06 * longest)
    plots.heat_panel(figure, figure.add_subplot(1, 1, 1), heat)
    return figure


def _loss_figure(history):
    from . import plots

    figure = plots.new_figure(5.0, 2.6)
    plots.loss_panel(figure.add_subplot(1, 1, 1), history)
    return figure


# --------------------------------------------------------------------------
# sections


def _summary(scores, threshold, metrics, what="rows") -> str:
    flagged = int((scores > threshold).sum())
    cards = [(f"{what} scored", f"{len(scores):,}"),
             (f"{what} flagged", f"{flagged:,} ({flagged / len(scores):.1%})"),
             ("threshold", f"{threshold:.4g}")]
    if metrics is not None:
        cards += [("ROC-AUC", f"{metrics['roc_auc']:.3f}"), ("average precision", f"{metrics['average_precision']:.3f}")]
    items = "".join(f'<div class="card"><div class="value">{_e(v)}</div><div class="label">{_e(k)}</div></div>'
                    for k, v in cards)
    return f'<section class="cards">{items}</section>'


def _model_section(detector, detector_name, model_name, feature_names, metadata) -> str:
    facts = [("detector", detector_name), ("model file", model_name)]
    training_scores = getattr(detector, "decision_scores_", None)
    if training_scores is not None:
        rows = "windows" if getattr(detector, "series_windows_", None) is not None else "rows"
        facts.append((f"training {rows}", f"{len(training_scores):,}"))
    sample = getattr(detector, "fit_sample_", None)
    if isinstance(sample, dict) and {"rows", "of"} <= set(sample):
        facts.append(("training sample", f"{sample['rows']:,} of {sample['of']:,} rows, seed {sample.get('seed')}"))
    facts.append(("features", f"{len(feature_names)}"))
    history = getattr(detector, "history_", None) or {}
    members = getattr(detector, "members_", None)
    loss_caption = "training loss by epoch"
    if members:
        sizes = sorted(set(getattr(detector, "member_sample_sizes_", None) or []))
        rows = f", {' to '.join(f'{s:,}' for s in sizes[::max(1, len(sizes) - 1)])} rows each" if sizes else ""
        facts.append(("networks", f"{len(members)} members{rows} (scores standardised and averaged)"))
        history = getattr(members[0], "history_", None) or {}
        loss_caption = f"training loss by epoch, member 1 of {len(members)}"
    loss = list(history.get("loss") or [])
    if loss:
        facts += [("epochs trained", str(len(loss))), ("final training loss", _loss_trend(loss))]
    series = getattr(detector, "series_windows_", None)
    if series is not None:
        facts.append(("threshold", f"points {series.point_scale[1]:.6g} (points scoring at or above it are "
                                   f"alarms); windows {float(detector.threshold_):.6g}"))
    else:
        facts.append(("threshold", f"{float(detector.threshold_):.6g} (rows scoring above it are flagged)"))
    facts += [(key, _format_value(value)) for key, value in sorted(metadata.items()) if key not in _KNOWN_METADATA]
    facts += _file_facts(metadata)
    loss_figure = _figure_html(_loss_figure(history), loss_caption) if len(loss) > 1 else ""
    parts = [f'<h2 id="model">Model</h2><div class="side-by-side">{_key_value_table(facts)}{loss_figure}</div>',
             f"<details><summary>the {len(feature_names)} features</summary><p class=\"features\">"
             f"{', '.join(_e(name) for name in feature_names)}</p></details>"]
    params = metadata.get("params") if metadata.get("params") is not None else _detector_params(detector)
    if params:
        entries = "".join(f'<div><span class="key">{_e(k)}</span> <code>{_e(_format_value(v))}</code></div>'
                          for k, v in sorted(params.items()))
        parts.append(f'<h3>Parameters</h3><div class="params">{entries}</div>')
    return "<section>" + "".join(parts) + "</section>"


def _file_facts(metadata) -> list:
    facts = []
    if metadata.get("versions"):
        facts.append(("versions", ", ".join(f"{k} {v}" for k, v in sorted(metadata["versions"].items()))))
    if metadata.get("content_sha256"):
        facts.append(("content SHA-256", metadata["content_sha256"]))
    if "signed" in metadata:
        facts.append(("signature", "signed, verified" if metadata.get("signature_verified")
                      else "signed, not verified (no key set)" if metadata["signed"] else "unsigned"))
    return facts


def _detector_params(detector) -> dict:
    try:
        return detector.get_params(deep=False)
    except AttributeError:
        return {}


def _format_value(value) -> str:
    if isinstance(value, dict) and set(value) == {"__tuple__"}:
        return repr(tuple(value["__tuple__"]))
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return repr(value) if isinstance(value, str) else str(value)


def _key_value_table(rows, css_class="facts") -> str:
    body = "".join(f"<tr><th scope=\"row\">{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<table class="{css_class}">{body}</table>'


def _scores_section(scores, threshold, labels, what="rows") -> str:
    flagged = int((scores > threshold).sum())
    figure, (xscale, yscale) = _histogram_figure(scores, threshold, labels, what)
    notes = []
    if xscale != "linear":
        notes.append("The scores are heavy-tailed (some lie far beyond the 1st-99th percentile range), so the "
                     f"score axis is {'logarithmic' if xscale == 'log' else 'symmetric-logarithmic'}.")
    if yscale == "log":
        notes.append(f"Counts are on a logarithmic scale so that single {what} in the tail stay visible.")
    text = (f"<p>Higher scores are more anomalous. The model's threshold, {threshold:.4g}, flags the "
            f"{flagged:,} of {len(scores):,} {what} that score above it (dashed line). {' '.join(notes)}</p>")
    figure = _figure_html(figure, "histogram of the anomaly scores")
    return f'<section><h2 id="scores">Score distribution</h2>{text}{figure}</section>'


def _top_section(explanation, scores, threshold, ids, labels, top, why_unexplained, what="rows") -> str:
    order = np.argsort(-scores, kind="stable")[:top]
    head = f'<h2 id="top">Top {len(order)} anomalies</h2>'
    if explanation is None:
        note = f'<p class="note">No per-feature explanation: {_e(why_unexplained)}.</p>'
        return f"<section>{head}{note}{_rows_table(order, scores, threshold, ids, labels, None, None)}</section>"
    unit = explanation["unit"]
    intro = (f"<p>{what.capitalize()} ranked by score, with the columns that carry most of each one's score and "
             f"their share of it ({_e(explanation['source'])}).</p>")
    features = {row["row"]: row["features"] for row in explanation["rows"]}
    table = _rows_table(order, scores, threshold, ids, labels, features, unit)
    heat = explanation["_heat"]
    heat["title"] = f"per-feature {'shares' if unit == 'share' else 'contributions'}, top {len(order)} {what}"
    figure = _figure_html(_heat_figure(heat), "heat map of per-feature contributions of the top rows")
    summary = _feature_summary(explanation)
    return f"<section>{head}{intro}{table}{figure}{summary}</section>"


def _rows_table(order, scores, threshold, ids, labels, features, unit) -> str:
    id_columns = [] if ids is None else [str(c) for c in ids.columns]
    header = ["rank", "row", *id_columns, "score", "flagged"] + (["label"] if labels is not None else [])
    if features is not None:
        header.append(f"top features (share of the {'score' if unit == 'contribution' else 'attribution'})")
    lines = []
    for rank, i in enumerate(order, start=1):
        cells = [f'<td class="num">{rank}</td>', f'<td class="num">{int(i)}</td>']
        cells += [f"<td>{_e(_plain(v))}</td>" for v in ([] if ids is None else ids.iloc[int(i)].tolist())]
        cells.append(f'<td class="num">{scores[i]:.4g}</td>')
        cells.append('<td><span class="flag">flagged</span></td>' if scores[i] > threshold else "<td>no</td>")
        if labels is not None:
            cells.append('<td><span class="flag">anomaly</span></td>' if labels[i] == 1 else "<td>normal</td>")
        if features is not None:
            cells.append(f'<td class="features">{_feature_bars(features[int(i)])}</td>')
        lines.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f'<th scope="col">{_e(h)}</th>' for h in header)
    return f'<table class="rows"><thead><tr>{head}</tr></thead><tbody>{"".join(lines)}</tbody></table>'


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _feature_bars(features) -> str:
    items = []
    for entry in features:
        width = min(100.0, 100.0 * abs(entry["share"]))
        items.append(f'<span class="feature"><span class="name">{_e(entry["feature"])}</span>'
                     f'<span class="bar"><span style="width:{width:.1f}%"></span></span>'
                     f'<span class="share">{100 * entry["share"]:.0f}%</span></span>')
    return "".join(items)


def _feature_summary(explanation) -> str:
    rows = explanation["summary"][:15]
    body = "".join(f'<tr><td>{_e(r["feature"])}</td><td class="num">{100 * r["mean_share"]:.1f}%</td>'
                   f'<td class="num">{r["top_in_rows"]}</td></tr>' for r in rows)
    more = len(explanation["summary"]) - len(rows)
    tail = f'<p class="note">{more} more columns contribute less.</p>' if more > 0 else ""
    return (f"<h3>Which features carry the scores</h3><p>Over the {_e(explanation['summary_over'])} "
            f"({explanation['n_flagged']:,} flagged of {explanation['n_rows']:,}):</p>"
            '<table class="summary"><thead><tr><th scope="col">feature</th><th scope="col">mean share</th>'
            f'<th scope="col">top feature in rows</th></tr></thead><tbody>{body}</tbody></table>{tail}')


def _metrics_section(metrics, scores, labels, threshold, why_no_metrics, extra_rows=(), what="rows") -> str:
    head = '<h2 id="metrics">Metrics against the labels</h2>'
    if metrics is None:
        return f'<section>{head}<p class="note">{_e(why_no_metrics)}</p></section>'
    rows = [("labelled anomalies", f"{metrics['n_anomalies']:,} of {metrics['n_rows']:,} {what}"),
            ("ROC-AUC", f"{metrics['roc_auc']:.4f}"),
            ("average precision", f"{metrics['average_precision']:.4f} (random ranking: "
                                  f"{metrics['n_anomalies'] / metrics['n_rows']:.4f})"),
            (f"at threshold {threshold:.4g}", f"{metrics['n_flagged']:,} flagged, {metrics['false_alarms']:,} "
                                              f"false alarms, {metrics['missed']:,} anomalies missed"),
            ("precision", f"{metrics['precision']:.4f}"), ("recall", f"{metrics['recall']:.4f}"),
            ("F1", f"{metrics['f1']:.4f}"), *extra_rows]
    figure = _figure_html(_curves_figure(scores, labels, threshold), "ROC and precision-recall curves",
                          "The dot marks the model's threshold.")
    return f"<section>{head}{_key_value_table(rows)}{figure}</section>"


# --------------------------------------------------------------------------
# page

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1f2328;
       margin: 0; background: #f6f7f9; line-height: 1.45; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 32px 40px; background: #fff; }
h1 { font-size: 1.7em; margin: 0.2em 0 0.1em; }
h2 { font-size: 1.3em; margin-top: 1.8em; padding-bottom: 0.2em; border-bottom: 1px solid #d8dee4; }
h3 { font-size: 1.05em; margin-top: 1.4em; }
.subtitle, .note, footer { color: #59636e; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 18px 0 6px; }
.card { border: 1px solid #d8dee4; border-radius: 8px; padding: 10px 16px; min-width: 130px; }
.card .value { font-size: 1.35em; font-weight: 600; }
.card .label { color: #59636e; font-size: 0.85em; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 0.92em; }
th, td { padding: 5px 10px; border-bottom: 1px solid #e6e9ed; text-align: left; vertical-align: top; }
thead th { background: #f0f2f5; border-bottom: 2px solid #d8dee4; }
table.facts th { font-weight: 600; white-space: nowrap; color: #3d444d; }
table.rows tbody tr:nth-child(even), table.summary tbody tr:nth-child(even) { background: #fafbfc; }
td { overflow-wrap: break-word; }
table.rows td { white-space: nowrap; }
table.rows td.features { white-space: normal; }
.side-by-side { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.side-by-side figure { margin-top: 8px; flex: 1 1 330px; max-width: 520px; }
.params { columns: 3 220px; column-gap: 28px; font-size: 0.9em; }
.params div { break-inside: avoid; padding: 2px 0; border-bottom: 1px solid #eef0f3; }
.params .key { font-weight: 600; color: #3d444d; }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 0.95em; overflow-wrap: anywhere; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.flag { background: #ffebe9; color: #a40e26; border-radius: 4px; padding: 1px 6px; font-size: 0.9em; }
.feature { display: inline-flex; align-items: center; gap: 4px; margin: 1px 12px 1px 0; white-space: nowrap; }
.feature .bar { display: inline-block; width: 48px; height: 8px; background: #e6e9ed; border-radius: 2px; }
.feature .bar span { display: block; height: 100%; background: #0969da; border-radius: 2px; }
.feature .share { color: #59636e; font-variant-numeric: tabular-nums; }
.features { font-size: 0.9em; color: #3d444d; }
figure { margin: 12px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eef0f3; }
figcaption { color: #59636e; font-size: 0.88em; }
footer { margin-top: 2.5em; font-size: 0.85em; border-top: 1px solid #d8dee4; padding-top: 8px; }
"""


def _page(title, subtitle, sections, footer) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>Anomaly report: {_e(title)}</title><style>{_STYLE}</style></head><body><main>"
            f"<h1>Anomaly report: {_e(title)}</h1><p class=\"subtitle\">{_e(subtitle)}</p>"
            + "".join(sections)
            + f"<footer>{_e(footer)}</footer></main></body></html>\n")
