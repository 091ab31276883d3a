"""``--config FILE.toml``: any option of a command from a file, through click's ``default_map``.

A key is an option's name as on the command line, without dashes in front
(``detector``, ``id-column`` or ``id_column``, ``contamination``, ``combine``, ...);
a multiple option takes a list or one value. Detector parameters go in a ``[params]``
table (``lam = 0.5``) with a sub-table per detector (``[params.toll]``,
``[params.ensemble]``), in the grammar of ``--param``. Options given on the command
line win; ``--param`` values are added after the file's, so they win key by key.
"""
from __future__ import annotations

import difflib

import click

from ..errors import ParameterError
from ..params import to_assignments

_CONFIG_PARAMS = "adscore.config_params"


def config_option(func):
    """Add ``--config`` to a command; it is read before every other option."""
    return click.option(
        "--config", type=click.Path(dir_okay=False), metavar="FILE.toml", is_eager=True, callback=_apply_config,
        help="TOML file setting any option of this command (keys are option names, e.g. detector, "
             "id-column, contamination; detector parameters in [params] / [params.NAME]); flags win.")(func)


def params_with_config(ctx, param, value):
    """``--param`` callback: the config file's parameters first, then the command line's."""
    return (*ctx.meta.get(_CONFIG_PARAMS, ()), *value)


def _apply_config(ctx, param, path):
    if path is None:
        return None
    table = read_toml(path)
    defaults, assignments = {}, []
    for key, value in table.items():
        if key in ("params", "param"):
            assignments += _param_strings(path, key, value)
            continue
        target = _option_for(ctx.command, key, path)
        if target.multiple and not isinstance(value, list):
            value = [value]
        defaults[target.name] = value
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    ctx.meta[_CONFIG_PARAMS] = tuple(assignments)
    return path


def read_toml(path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ParameterError(f"cannot read config {path}: {exc}") from None


def _param_strings(path, key, value) -> list:
    if isinstance(value, dict):
        return to_assignments(value)
    if key == "param" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ParameterError(f"config {path}: `params` must be a table (e.g. [params] lam = 0.5, or "
                         "[params.toll] lam = 0.5)")


def _option_for(command, key, path):
    """The command's parameter that a config key names (``id-column`` -> ``--id-column``)."""
    wanted = key.strip().lower().replace("_", "-")
    names, shown = {}, []
    for candidate in command.params:
        if candidate.name in ("config", "help"):
            continue
        longs = [opt[2:] for opt in getattr(candidate, "opts", []) if opt.startswith("--")]
        shown.append(longs[0] if longs else candidate.name)
        for spelling in {candidate.name.replace("_", "-"), *longs}:
            names[spelling] = candidate
    if wanted in names:
        return names[wanted]
    close = difflib.get_close_matches(wanted, shown, n=2)
    hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
    raise ParameterError(f"config {path}: unknown key(s) {key}{hint}; the keys are this command's options: "
                         f"{', '.join(sorted(shown))}, and a [params] table")
