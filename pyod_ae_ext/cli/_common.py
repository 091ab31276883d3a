"""Helpers shared by the ``adscore`` commands: options, parameters, models, output."""
from __future__ import annotations

import json
import sys

import click

from ..errors import AdscoreError, ParameterError


# Every --json output is an object with this version; keys keep their meaning across commands.
SCHEMA_VERSION = 1


def echo_err(message: str) -> None:
    click.echo(message, err=True)


def echo_json(payload: dict) -> None:
    """Print ``payload`` as the JSON of a command, with ``schema_version`` first."""
    click.echo(json.dumps({"schema_version": SCHEMA_VERSION, **payload}, indent=2, default=json_safe))


def json_safe(value):
    """``value`` as JSON can hold it: tuples as lists, other objects as their repr."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    return repr(value)


def format_table(rows, gap: str = "  ") -> str:
    """Rows of cells as left-aligned columns (the last column is not padded)."""
    rows = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(gap.join([*(cell.ljust(width) for cell, width in zip(row, widths)), row[-1]]).rstrip()
                     for row in rows)


def complete_detector(ctx, param, incomplete):
    """Shell completion for --detector: registered names and aliases (nothing of the detectors is imported)."""
    from click.shell_completion import CompletionItem

    from ..registry import get_registry

    registry = get_registry()
    items = []
    for spec in registry.detectors.values():
        for name in (spec.name, *spec.aliases):
            if name.startswith(incomplete.lower()):
                items.append(CompletionItem(name, help=spec.summary))
    return items



def canonical_detector(text):
    """The registered name (or PyOD class) that ``text`` names on --detector, or None."""
    from ..registry import find_detector

    try:
        found = find_detector(text)
    except AdscoreError:
        return None
    return found.registered or found.cls


def same_detector(target, label) -> bool:
    """Whether a --param prefix names the detector given as ``label`` (alias, class path, case)."""
    if target.strip().lower() == label.strip().lower():
        return True
    canonical = canonical_detector(target)
    return canonical is not None and canonical == canonical_detector(label)


def build_detector(name, params, seed=None, device=None, contamination=None, default_contamination=None):
    """(registered name, detector) for a single --detector; --device/--contamination must apply to it.

    ``default_contamination`` applies where neither --contamination nor ``params`` set one.
    """
    from ..registry import build_detector as build, constructor_parameters, find_detector

    found = find_detector(name)
    accepted = constructor_parameters(found.cls)
    for key, value in (("device", device), ("contamination", contamination)):
        if value is not None and key not in accepted:
            raise ParameterError(f"detector {found.label!r} has no {key!r} parameter: drop --{key}")
    settings = {"random_state": seed, "device": device,
                "contamination": contamination if contamination is not None else default_contamination}
    return found.registered or found.label, build(name, params, defaults=settings)


def fit_detector(name, detector, X):
    try:
        detector.fit(X)
    except AdscoreError:
        raise
    except (ValueError, TypeError) as exc:  # PyOD/sklearn parameter validation
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ParameterError(f"detector {name!r} could not be fitted: {message}") from exc
    return detector


# The same three options, with the same meaning, on every command that reads data.
# A model remembers them from `fit`; on scoring commands they override what it remembers.
_data_options = [
    click.option("--columns", multiple=True, metavar="A,B,...",
                 help="Feature columns (repeat or comma-separate); default: every column not excluded. "
                      "Scoring commands take the model's features; --columns must then name them."),
    click.option("--exclude", multiple=True, metavar="A,B,...",
                 help="Columns that are not features (remembered by `fit`: no note when scoring)."),
    click.option("--id-column", "id_columns", multiple=True, metavar="NAME",
                 help="Identifier column(s): never features, copied to outputs (remembered by `fit`)."),
]


def data_options(func):
    for option in reversed(_data_options):
        func = option(func)
    return func


sign_key_option = click.option(
    "--sign-key-file", type=click.Path(dir_okay=False), metavar="FILE",
    help="Shared secret for HMAC-signed model files (default: $ADSCORE_SIGNING_KEY). "
         "When a key is set, models are signed on save and unsigned or re-signed files are refused.")


def signing_key(key_file):
    """The key from --sign-key-file, or None so that persistence falls back to $ADSCORE_SIGNING_KEY."""
    if key_file is None:
        return None
    from ..persistence import read_signing_key_file

    return read_signing_key_file(key_file)


device_option = click.option(
    "--device", metavar="DEVICE",
    help="Run the model's networks on auto, cpu, cuda or cuda:N (default: the device it was fitted with; "
         "--device cpu scores a model fitted on a GPU on a machine without one).")


def load_model(model, key_file=None, device=None):
    """Load a model file named on the command line (onto ``device`` if given), checking a signature if a key is set."""
    from ..persistence import load_detector

    return load_detector(model, signing_key=signing_key(key_file), device=device)


def model_features(detector):
    names = getattr(detector, "feature_names_in_", None)
    if names is None:
        raise AdscoreError("the model has no feature names; fit it with `adscore fit`")
    return [str(n) for n in names]


def registered_name(detector) -> str:
    """The detector's registered name (its class name when it is not registered)."""
    from ..registry import get_registry

    return get_registry().name_of(detector) or type(detector).__name__


def model_columns(detector, header, columns=(), exclude=(), id_columns=(), label_column=None,
                  need_label=False):
    """The columns a scoring command uses on data with ``header``: flags, else what the model remembers."""
    from ..columns import resolve_scoring_columns

    return resolve_scoring_columns(header, model_features(detector), getattr(detector, "fit_info_", None),
                                   columns, exclude, id_columns, label_column, need_label)


def output_format(output, fmt=None) -> str:
    """The table format for ``output``: ``fmt`` if given, else from the file extension, else CSV."""
    if fmt is None:
        suffix = str(output).lower().rsplit(".", 1)[-1] if output != "-" else ""
        fmt = {"json": "json", "parquet": "parquet", "pq": "parquet"}.get(suffix, "csv")
    if fmt == "parquet" and output == "-":
        raise ParameterError("Parquet output needs a file: use -o FILE.parquet")
    return fmt


def write_stdout(payload: bytes) -> None:
    try:
        sys.stdout.buffer.write(payload)
        sys.stdout.flush()
    except BrokenPipeError:
        raise  # the reader stopped early (`| head`): click exits quietly
    except OSError as exc:
        raise AdscoreError(f"cannot write to standard output: {exc.strerror or exc}") from None


