"""``adscore plugins`` and ``adscore info``: what is installed, what a model file holds."""
from __future__ import annotations

import json

import click

from ._common import sign_key_option, signing_key


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(as_json):
    """List installed plugins and the detectors they provide."""
    from ..registry import get_registry

    registry = get_registry()
    detectors = registry.detectors
    rows = []
    for spec in detectors.values():
        info = registry.plugins.get(spec.plugin)
        rows.append({
            "detector": spec.name,
            "aliases": list(spec.aliases),
            "plugin": spec.plugin,
            "distribution": info.distribution if info else "",
            "version": info.version if info else "",
            "summary": spec.summary,
            "class": f"{spec.cls.__module__}.{spec.cls.__qualname__}",
        })
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for plugin_name, info in sorted(registry.plugins.items()):
        source = f"{info.distribution} {info.version}".strip()
        click.echo(f"{plugin_name}" + (f"  ({source})" if source else ""))
        for row in rows:
            if row["plugin"] == plugin_name:
                alias = f" [{', '.join(row['aliases'])}]" if row["aliases"] else ""
                click.echo(f"  {row['detector']:<14}{alias}  {row['summary']}")


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the full metadata as JSON.")
@sign_key_option
def info(model, as_json, sign_key_file):
    """Show what a model file holds (detector, parameters, features, threshold, versions).

    The file's integrity is checked first, and its signature when a key is set
    (--sign-key-file or $ADSCORE_SIGNING_KEY); nothing in it is run or imported.
    """
    from ..persistence import load_detector, read_metadata

    key = signing_key(sign_key_file)
    meta = read_metadata(model, signing_key=key)
    load_detector(model, signing_key=key)  # every check a load makes: info never vouches for a bad file
    if as_json:
        click.echo(json.dumps(meta, indent=2, sort_keys=True))
        return
    features = meta.get("feature_names") or []
    click.echo(f"detector:   {meta['detector']}")
    click.echo(f"threshold:  {meta['threshold']:.6g}")
    click.echo(f"features:   {len(features)} ({', '.join(features[:8])}{' ...' if len(features) > 8 else ''})")
    click.echo("versions:   " + ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items()))
    windows = meta.get("series_windows")
    if windows:  # checked by the load above
        timing = f", time column {windows['time_column']!r}" if windows["time_column"] else ""
        click.echo(f"series:     windows of {windows['window']} x {', '.join(windows['value_columns'])}, stride "
                   f"{windows['stride']}, fold {windows['fold']}, gaps {windows['gaps']}{timing}")
    if meta.get("signature_verified"):
        signature = "signed, verified with the configured key"
    elif meta.get("signed"):
        signature = "signed, not verified (no key set: --sign-key-file or $ADSCORE_SIGNING_KEY)"
    else:
        signature = "unsigned"
    click.echo(f"signature:  {signature}")
    click.echo(f"sha256:     {meta.get('content_sha256', '')} (detects damage, not deliberate changes)")
    click.echo("parameters:")
    for key, value in sorted(meta.get("params", {}).items()):
        if isinstance(value, dict) and set(value) == {"__tuple__"}:
            value = tuple(value["__tuple__"])
        click.echo(f"  {key} = {value!r}")


