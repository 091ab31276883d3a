"""The vocabulary of ``--json`` outputs (schema_version 1; the README documents it).

The same thing has the same key in every command: ``anomaly_score`` and ``is_anomaly``
as in ``adscore score``'s columns, ``average_precision`` (never ``ap``), ``n_flagged``
(never ``alarms``), ``fit_seconds``/``score_seconds``. The Python functions behind the
commands keep their own names; these views rename them for the command line.
"""
from __future__ import annotations

_RENAMES = {"ap": "average_precision", "fit_s": "fit_seconds", "score_s": "score_seconds", "alarms": "n_flagged",
            "score": "anomaly_score", "flagged": "is_anomaly"}


def renamed(record: dict) -> dict:
    """``record`` with its keys (and their ``_mean``/``_std`` forms) in the shared vocabulary."""
    out = {}
    for key, value in record.items():
        base, suffix = key, ""
        for ending in ("_mean", "_std"):
            if key.endswith(ending) and key[:-len(ending)] in _RENAMES:
                base, suffix = key[:-len(ending)], ending
        out[_RENAMES.get(base, base) + suffix] = value
    return out


def explanation(result: dict, model, data) -> dict:
    return {"model": str(model), "data": str(data), **{k: v for k, v in result.items() if k != "rows"},
            "rows": [renamed(row) for row in result["rows"]]}


def threshold_choice(choice: dict) -> dict:
    return renamed(choice)


def benchmark_rows(rows) -> list:
    return [renamed(row) for row in rows]
