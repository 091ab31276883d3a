"""The one grammar for detector parameters on the command line and in config files.

``KEY=VALUE`` sets a parameter of every detector that has it (of the only detector,
when there is one); ``DETECTOR.KEY=VALUE`` sets it for one detector, named as on
``--detector`` (a name, an alias or a PyOD class path; ``ensemble.KEY`` is the
ensemble's own). VALUE is JSON or a Python literal (``0.5``, ``[64,32]``, ``true``,
``None``), else a string. ``adscore fit``, ``adscore benchmark`` and ``--config`` files
all go through :func:`parse_assignments` and :func:`distribute`. Imports neither torch
nor PyOD.
"""
from __future__ import annotations

import ast
import difflib
import json
from dataclasses import dataclass

from .errors import ParameterError

GRAMMAR = "KEY=VALUE or DETECTOR.KEY=VALUE (e.g. -p lam=0.5 or -p toll.lam=0.5)"


def parse_value(text: str):
    """A parameter value: JSON or a Python literal (numbers, true/false, None, lists), else a string."""
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return text


@dataclass(frozen=True)
class Assignment:
    """One ``[DETECTOR.]KEY=VALUE``: ``target`` is None without a prefix."""

    target: str | None
    key: str
    value: object
    text: str


def parse_assignment(text: str) -> Assignment:
    """Split ``[DETECTOR.]KEY=VALUE``; the prefix is everything before the last dot of the left side."""
    left, sep, value = str(text).partition("=")
    left = left.strip()
    if not sep or not left:
        raise ParameterError(f"--param expects {GRAMMAR}, got {text!r}")
    target, dot, key = left.rpartition(".")
    if dot and (not key or not target):
        raise ParameterError(f"--param {text!r}: write {GRAMMAR}")
    if not key.isidentifier():
        raise ParameterError(f"--param {text!r}: {key!r} is not a parameter name; write {GRAMMAR}")
    return Assignment(target or None, key, parse_value(value.strip()), str(text))


def parse_assignments(pairs) -> list:
    return [parse_assignment(pair) for pair in pairs]


def to_assignments(table: dict, prefix: str | None = None) -> list:
    """``[params]`` of a config file (``lam = 0.5``; ``[params.toll]`` sub-tables) as ``--param`` strings."""
    pairs = []
    for key, value in table.items():
        if isinstance(value, dict) and prefix is None:
            pairs.extend(to_assignments(value, prefix=key))
            continue
        try:
            rendered = json.dumps(value)
        except TypeError:
            raise ParameterError(f"config parameter {key!r}: {value!r} is not a number, string, boolean, "
                                 "list or table") from None
        pairs.append(f"{prefix + '.' if prefix else ''}{key}={rendered}")
    return pairs


def distribute(assignments, detectors, accepted, same_detector, own=None) -> dict:
    """Parameters per detector from ``assignments``.

    Parameters
    ----------
    assignments : list of Assignment
    detectors : list of str
        Detector labels as given on the command line.
    accepted : dict
        label -> set of parameter names, or None for a detector that takes any keyword.
    same_detector : callable ``(target, label) -> bool``
        Whether a prefix names that detector (aliases, class paths, case).
    own : str, optional
        A prefix for the caller's own parameters (``"ensemble"``), returned under that key.

    Returns
    -------
    dict : label -> {key: value}, plus ``own`` -> {key: value} when given. A prefixed
    assignment wins over an unprefixed one for the same key.
    """
    result = {label: {} for label in detectors}
    if own is not None:
        result[own] = {}
    prefixed = {label: {} for label in result}
    for item in assignments:
        if item.target is None:
            for label in _takers(item, detectors, accepted):
                result[label][item.key] = item.value
            continue
        label = _target_of(item, detectors, same_detector, own)
        prefixed[label][item.key] = item.value
    for label, params in prefixed.items():
        result[label].update(params)
    return result


def _takers(item, detectors, accepted) -> list:
    if len(detectors) == 1:
        return list(detectors)  # the detector's own check names an unknown key
    takers = [label for label in detectors if accepted[label] is None or item.key in accepted[label]]
    if not takers:
        known = sorted(set().union(*(names for names in accepted.values() if names is not None)))
        close = difflib.get_close_matches(item.key, known, n=3)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ParameterError(f"--param {item.text}: none of the detectors has a parameter {item.key!r}.{hint} "
                             f"Detectors: {', '.join(detectors)}; `adscore params NAME` lists their parameters")
    return takers


def _target_of(item, detectors, same_detector, own) -> str:
    if own is not None and item.target.strip().lower() == own:
        return own
    matches = [label for label in detectors if same_detector(item.target, label)]
    if len(matches) != 1:
        names = ", ".join([*detectors, *([own] if own else [])])
        close = difflib.get_close_matches(item.target, list(detectors), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ParameterError(f"--param {item.text}: {item.target!r} is not one of the --detector values "
                             f"({names}).{hint} Write {GRAMMAR}")
    return matches[0]
