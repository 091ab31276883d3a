"""``adscore plugins``, ``adscore params`` and ``adscore info``: what is installed, what a
detector takes, what a model file holds."""
from __future__ import annotations


import click

from ._common import complete_detector, echo_json, format_table, json_safe, sign_key_option, signing_key


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(as_json):
    """List installed plugins and the detectors they provide.

    Nothing of the detectors themselves is imported: `adscore params NAME` shows one
    detector's parameters.
    """
    from ..registry import get_registry

    registry = get_registry()
    rows = []
    for spec in registry.detectors.values():
        info = registry.plugins.get(spec.plugin)
        rows.append({
            "detector": spec.name,
            "aliases": list(spec.aliases),
            "plugin": spec.plugin,
            "distribution": info.distribution if info else "",
            "version": info.version if info else "",
            "summary": spec.summary,
            "class": spec.path.replace(":", "."),
        })
    if as_json:
        echo_json({"detectors": rows})
        return
    name_width = max(len(row["detector"]) for row in rows)
    alias_width = max(len(", ".join(row["aliases"])) for row in rows)
    for plugin_name, info in sorted(registry.plugins.items()):
        members = [row for row in rows if row["plugin"] == plugin_name]
        if not members:
            continue
        source = f"{info.distribution} {info.version}".strip()
        click.echo(f"{plugin_name}" + (f"  ({source})" if source else ""))
        for row in members:
            aliases = ", ".join(row["aliases"])
            click.echo(f"  {row['detector']:<{name_width}}  {aliases:<{alias_width}}  {row['summary']}".rstrip())


@click.command()
@click.argument("detector", shell_complete=complete_detector)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def params(detector, as_json):
    """Every parameter of DETECTOR: default, type and meaning.

    DETECTOR is a name or alias from `adscore plugins` (ours, PyOD's baselines,
    third-party plugins) or a PyOD class path such as pyod.models.knn.KNN. The meaning
    is the first sentence of the parameter's entry in the class's numpy docstring.
    Set a parameter with `adscore fit -d DETECTOR -p NAME=VALUE`.

    \b
    Examples:
      adscore params toll
      adscore params pyod.models.lof.LOF --json
    """
    label, path, summary, parameters = describe(detector)
    if as_json:
        echo_json({"detector": label, "class": path.replace(":", "."), "summary": summary,
                   "parameters": [{"name": p.name, "default": json_safe(p.default), "type": p.type,
                                   "required": p.required, "description": p.description} for p in parameters]})
        return
    click.echo(f"{label}: {summary}" if summary else label)
    click.echo(f"class {path.replace(':', '.')}; set with -p NAME=VALUE")
    table = [("parameter", "default", "type", "meaning")]
    table += [(p.name, "(required)" if p.required else repr(p.default), p.type, p.description) for p in parameters]
    click.echo(format_table(table))


def describe(detector):
    """(label, "module:Class", summary, [ParameterDoc]) without importing the class where the source allows."""
    from ..paramdocs import describe_detector
    from ..registry import get_registry, import_pyod_class, is_class_path

    if not is_class_path(detector):
        spec = get_registry().resolve(detector)
        return spec.name, spec.path, spec.summary, describe_detector(spec.target)
    module, sep, name = detector.strip().partition(":")
    if not sep:
        module, _, name = detector.strip().rpartition(".")
    if not module.startswith("pyod."):
        import_pyod_class(detector)  # refuses it, naming the fix
    try:
        return detector.strip(), f"{module}:{name}", "", describe_detector(f"{module}:{name}")
    except (ImportError, AttributeError):
        import_pyod_class(detector)  # says what is wrong with the path
        raise


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the full metadata as JSON.")
@sign_key_option
def info(model, as_json, sign_key_file):
    """Show what a model file holds and how it was fitted.

    Detector, parameters (and what an autoencoder's "auto" ones resolved to: widths,
    members, rows per member), features, the id/excluded/label columns `fit` was given
    (later commands reuse them), training rows, fit date and duration, final training
    loss and whether it was still falling, the threshold and where it came from, the
    content hash, versions.

    The file's integrity is checked first, and its signature when a key is set
    (--sign-key-file or $ADSCORE_SIGNING_KEY); nothing in it is run or imported.
    """
    from ..persistence import load_detector, read_metadata

    key = signing_key(sign_key_file)
    meta = read_metadata(model, signing_key=key)
    detector = load_detector(model, signing_key=key)  # every check a load makes: info never vouches for a bad file
    training = training_summary(detector)
    if as_json:
        echo_json({"model": str(model), **meta, "training": training})
        return
    fit_info = meta.get("fit_info") or {}
    features = meta.get("feature_names") or []
    lines = [
        ("detector", meta["detector"]),
        ("features", f"{len(features)} ({', '.join(features[:8])}{' ...' if len(features) > 8 else ''})"),
        ("id columns", ", ".join(fit_info.get("id_columns", [])) or "-"),
        ("excluded", ", ".join(fit_info.get("exclude", [])) or "-"),
        ("label", fit_info.get("label_column") or "-"),
        ("fitted", _fitted_line(fit_info, training, meta.get("series_windows"))),
        *_series_lines(meta.get("series_windows")),
        *[(f"loss {name}" if name else "loss", text) for name, text in _loss_lines(training)],
        ("threshold", _threshold_line(meta, fit_info)),
        ("signature", _signature_line(meta)),
        ("sha256", f"{meta.get('content_sha256', '')} (detects damage, not deliberate changes)"),
        ("versions", ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items())),
    ]
    width = max(len(label) for label, _ in lines) + 2
    for label, text in lines:
        click.echo(f"{label + ':':<{width}}{text}")
    click.echo("parameters:")
    meanings = _auto_meanings(detector)
    for name, value in sorted(meta.get("params", {}).items()):
        if isinstance(value, dict) and set(value) == {"__tuple__"}:
            value = tuple(value["__tuple__"])
        meaning = f" -> {meanings[name]!r}" if value == "auto" and name in meanings else ""
        click.echo(f"  {name} = {value!r}{meaning}")


def _auto_meanings(detector) -> dict:
    """What the engine's ``"auto"`` parameters resolved to for this detector (its backbone and members rule)."""
    from ..engine import AutoEncoderDetector
    from ..members import resolved_members

    if not isinstance(detector, AutoEncoderDetector):
        return {}
    n_members, subsample = resolved_members(detector)
    return {"hidden_dims": detector.hidden_widths(), "n_members": n_members, "member_subsample": subsample}


def training_summary(detector) -> dict:
    """Rows, and per network the epochs, final loss and whether it was still falling."""
    members = getattr(detector, "members_", None)
    names = getattr(detector, "member_names_", None)  # an ensemble's members; a family's own are summarised
    nets = list(zip(names, members)) if members is not None and names is not None else [("", detector)]
    losses = {name: loss for name, loss in ((name, _loss_of(member)) for name, member in nets) if loss}
    return {"n_rows": int(len(detector.decision_scores_)), "loss": losses}


def _loss_of(detector) -> dict | None:
    """Epochs, final loss and trend of a detector's network; the mean over a family's own networks."""
    members = getattr(detector, "members_", None)
    if members is not None and getattr(detector, "member_names_", None) is None:
        parts = [loss for loss in map(_loss_of, members) if loss]
        if not parts:
            return None
        return {"epochs": max(p["epochs"] for p in parts),
                "final_loss": float(sum(p["final_loss"] for p in parts) / len(parts)),
                "still_falling": any(p["still_falling"] for p in parts), "networks": len(parts)}
    history = (getattr(detector, "history_", None) or {}).get("loss") or []
    if not history:
        return None
    return {"epochs": len(history), "final_loss": float(history[-1]), "still_falling": loss_still_falling(history)}


def loss_still_falling(history, window: int = 5, tolerance: float = 0.01) -> bool:
    """Whether the loss dropped by more than ``tolerance`` (relative) over the last ``window`` epochs."""
    if len(history) < 2:
        return False
    earlier = history[-1 - min(window, len(history) - 1)]
    return (earlier - history[-1]) > tolerance * abs(earlier)


def describe_threshold_source(source, what="rows") -> str:
    """Where a threshold comes from, in words (``what`` names the rows: "points" for a series model)."""
    if not source:
        return "source not recorded"
    method = source["method"]
    if method == "contamination":
        return f"contamination {source['contamination']:g}: that share of training {what} is flagged"
    where = f"labelled {source['data']}" if source.get("data") else "labelled data"
    rows = f", {source['rows']} {what}" if "rows" in source else ""
    if method == "f1":
        return f"max F1 on {where}{rows}"
    return (f"min cost on {where}{rows}: {source.get('cost_false_alarm', 1):g} per false alarm, "
            f"{source.get('cost_missed', 1):g} per missed anomaly")


def _fitted_line(fit_info, training, series_windows=None) -> str:
    if series_windows and "n_rows" in fit_info:
        parts = [f"{training['n_rows']} training windows of a {fit_info['n_rows']}-point series"]
    else:
        parts = [f"{training['n_rows']} training {'windows' if series_windows else 'rows'}"]
    if "fitted_at" in fit_info:
        parts.append(f"on {fit_info['fitted_at']}")
    if "fit_seconds" in fit_info:
        parts.append(f"in {fit_info['fit_seconds']:.2f}s")
    return " ".join(parts)


def _loss_lines(training):
    for name, loss in training["loss"].items():
        trend = "still falling: more epochs may help" if loss["still_falling"] else "levelled off"
        networks = f" (mean of {loss['networks']} networks)" if "networks" in loss else ""
        yield name, f"{loss['final_loss']:.6g}{networks} after {loss['epochs']} epochs ({trend})"


def _threshold_line(meta, fit_info) -> str:
    windows = meta.get("series_windows")
    if windows:  # a series model's alarms are points; its window threshold only ranks windows
        source = describe_threshold_source(fit_info.get("threshold_source"), "points")
        return f"points {windows['point_scale'][1]:.6g} ({source}); windows {meta['threshold']:.6g}"
    return f"{meta['threshold']:.6g} ({describe_threshold_source(fit_info.get('threshold_source'))})"


def _series_lines(windows):
    if windows:  # checked by the load in `info`
        timing = f", time column {windows['time_column']!r}" if windows["time_column"] else ""
        yield ("series", f"windows of {windows['window']} x {', '.join(windows['value_columns'])}, stride "
                         f"{windows['stride']}, fold {windows['fold']}, gaps {windows['gaps']}{timing}")


def _signature_line(meta) -> str:
    if meta.get("signature_verified"):
        return "signed, verified with the configured key"
    if meta.get("signed"):
        return "signed, not verified (no key set: --sign-key-file or $ADSCORE_SIGNING_KEY)"
    return "unsigned"
