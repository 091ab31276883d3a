"""Which columns of a data file play which role: features, ids, label, ignored.

One set of rules for every command that reads data (``--columns``, ``--exclude``,
``--id-column``, ``--label-column``), and for scoring commands the columns a model
remembers from its fit (``fit_info_``). Imports neither pandas nor torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import DataError, ParameterError


def split_names(values) -> list:
    """Column names from repeated and/or comma-separated option values, in order."""
    names = []
    for value in values or ():
        names.extend(part.strip() for part in str(value).split(",") if part.strip())
    return names


@dataclass
class ScoringColumns:
    """The columns a scoring command uses on one data file.

    ``known_unused`` are columns the model was told to leave out when it was fitted
    (or that ``--exclude`` names now): not features, and no note about ignoring them.
    """

    features: list
    id_columns: list
    label_column: str | None
    known_unused: list = field(default_factory=list)


def resolve_scoring_columns(header, features, fit_info=None, columns=(), exclude=(), id_columns=(),
                    label_column=None, need_label=False) -> ScoringColumns:
    """Resolve the column options of ``score``/``explain``/``evaluate``/``threshold``.

    Flags win; without them the id and label columns the model was fitted with are used
    where ``header`` has them. ``columns`` must name exactly the model's features and
    ``exclude`` none of them (the model's features are fixed at fit time).
    """
    fit_info = fit_info or {}
    header = [str(c) for c in header]
    _check_feature_options(features, split_names(columns), split_names(exclude))
    ids = split_names(id_columns)
    if not ids:
        ids = [c for c in fit_info.get("id_columns", []) if c in header and c not in features]
    label = label_column or _remembered(fit_info.get("label_column"), header, features)
    if need_label and not label:
        raise ParameterError("give the label column with --label-column NAME (0 = normal, 1 = anomaly); "
                             "`adscore fit --label-column NAME` makes a model remember it")
    remembered = [*fit_info.get("exclude", []), *fit_info.get("id_columns", []),
                  *([fit_info["label_column"]] if fit_info.get("label_column") else [])]
    known_unused = [c for c in dict.fromkeys([*remembered, *split_names(exclude)]) if c not in features]
    return ScoringColumns(list(features), ids, label, known_unused)


def _remembered(name, header, features):
    return name if name and name in header and name not in features else None


def _check_feature_options(features, columns, exclude) -> None:
    if columns and set(columns) != set(features):
        missing = [f for f in features if f not in columns]
        unknown = [c for c in columns if c not in features]
        parts = ([f"lacks {', '.join(missing)}"] if missing else []) + (
            [f"adds {', '.join(unknown)}"] if unknown else [])
        raise DataError(f"--columns must name the model's features ({', '.join(features)}); it "
                        f"{' and '.join(parts)}: drop --columns or refit the model")
    excluded_features = [c for c in exclude if c in features]
    if excluded_features:
        raise DataError(f"--exclude names feature(s) the model was fitted on: {', '.join(excluded_features)}; "
                        "a model needs all of its features: refit it without them")


def unused_columns_note(header, used, known_unused=()) -> str | None:
    """The note about columns nobody uses (those the model knows it ignores aside), or None."""
    skip = set(used) | set(known_unused)
    extra = [str(c) for c in header if str(c) not in skip]
    if not extra:
        return None
    return (f"note: ignoring {len(extra)} column(s) the model does not use: {', '.join(extra[:10])}"
            + (" ..." if len(extra) > 10 else ""))
