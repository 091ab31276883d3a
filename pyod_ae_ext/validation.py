"""Input and parameter checks, free of torch (a detector's data and parameters are checked
before any heavy import).

:func:`as_feature_matrix` turns arrays and DataFrames into finite 2-D float64 matrices
or raises a :class:`~pyod_ae_ext.errors.DataError` naming the column (and row) at
fault; :func:`check_training_data` and :func:`check_new_data` add what a fit and a
score need; :func:`check_number` and :func:`check_choice` check parameters and raise a
:class:`~pyod_ae_ext.errors.ParameterError`.
"""
from __future__ import annotations

import decimal
import math
import numbers

import numpy as np

from .errors import DataError, ParameterError


def as_feature_matrix(X, n_features=None, feature_names=None, what="X") -> np.ndarray:
    """Return ``X`` as a finite 2-D float64 array, or raise a :class:`DataError` naming the problem.

    Accepted: numeric or boolean numpy arrays; arrays of ``object`` dtype whose every
    cell is a number (converted; PyOD accepts them too); pandas DataFrames whose
    columns are numeric or boolean, numpy or nullable (``Int64``, ``Float64``,
    ``boolean``: accepted when they hold no ``<NA>``), or ``object`` columns holding only
    numbers. Refused with the column (and, where one cell is at fault, the row) named:
    text (``string``/``str``/``object`` with text), categorical, date and complex
    columns; a missing value (``<NA>``, ``None``) anywhere; NaN or infinity.
    """
    columns = None
    if hasattr(X, "columns") and hasattr(X, "to_numpy"):  # pandas DataFrame
        columns = [str(c) for c in X.columns]
        X = _frame_to_array(X, columns, what)
    if hasattr(X, "toarray"):
        raise DataError(f"{what} is a sparse matrix; pass a dense array (X.toarray())")
    try:
        array = np.asarray(X)
    except Exception as exc:
        raise DataError(f"{what} cannot be converted to a numeric array: {exc}") from None
    if array.dtype != object and not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise DataError(f"{what} must be numeric, got an array of dtype {array.dtype}")
    if array.dtype != object and np.issubdtype(array.dtype, np.complexfloating):
        raise DataError(f"{what} must be real-valued, got an array of dtype {array.dtype}")
    if array.ndim == 1:
        raise DataError(f"{what} must be 2-D (rows x features), got a 1-D array; "
                        "use X.reshape(-1, 1) for a single feature")
    if array.ndim != 2:
        raise DataError(f"{what} must be 2-D (rows x features), got {array.ndim} dimensions")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise DataError(f"{what} is empty ({array.shape[0]} rows x {array.shape[1]} features)")
    if n_features is not None and array.shape[1] != n_features:
        raise DataError(f"{what} has {array.shape[1]} features but the detector was fitted on {n_features}")
    names = columns or feature_names
    if array.dtype == object:
        array = _object_cells_to_float(array, names, what)
    array = np.ascontiguousarray(array, dtype=np.float64)
    finite = np.isfinite(array)
    if not finite.all():
        bad_rows, bad_cols = np.nonzero(~finite)
        column = column_label(names, bad_cols[0])
        n_bad_columns = len(np.unique(bad_cols))
        more = f" (and {n_bad_columns - 1} other column(s))" if n_bad_columns > 1 else ""
        raise DataError(
            f"{what} contains {array[bad_rows[0], bad_cols[0]]} in feature {column!r} at row "
            f"{bad_rows[0]}{more}; remove or impute non-finite values first"
        )
    return array


def column_label(names, index) -> str:
    """A column's name when known, else ``column <index>``."""
    return str(names[index]) if names is not None else f"column {index}"


def _is_number(value) -> bool:
    """A real number a float64 can hold: Python, numpy, Decimal and Fraction numbers, booleans."""
    return isinstance(value, (numbers.Real, decimal.Decimal, np.bool_))


def _is_missing(value) -> bool:
    return value is None or type(value).__name__ in ("NAType", "NaTType")


def _describe_cell(value) -> str:
    if _is_missing(value):
        return f"a missing value ({value})"
    return f"the non-numeric value {value!r} ({type(value).__name__})"


def _object_cells_to_float(array: np.ndarray, names, what: str) -> np.ndarray:
    """An ``object`` array whose every cell is a number, as float64; else a DataError naming the first other cell."""
    numeric = np.frompyfunc(_is_number, 1, 1)(array).astype(bool)
    if not numeric.all():
        row, col = np.argwhere(~numeric)[0]
        raise DataError(f"{what} has {_describe_cell(array[row, col])} in feature "
                        f"{column_label(names, col)!r} at row {row}; only numbers can be used")
    return array.astype(np.float64)


def _frame_to_array(frame, columns: list, what: str) -> np.ndarray:
    """A DataFrame's values as float64, refusing text, nullable ``<NA>`` and other non-numbers by column."""
    import pandas as pd

    types = pd.api.types
    non_numeric, object_columns = [], []
    for position, (name, dtype) in enumerate(zip(columns, frame.dtypes)):
        if types.is_bool_dtype(dtype) or (types.is_numeric_dtype(dtype) and not types.is_complex_dtype(dtype)):
            if isinstance(dtype, pd.api.extensions.ExtensionDtype):  # nullable: Int64, Float64, boolean, ...
                missing = np.flatnonzero(np.asarray(frame.iloc[:, position].isna()))
                if missing.size:
                    raise DataError(f"{what} has a missing value (<NA>) in feature {name!r} at row "
                                    f"{missing[0]}{and_more_rows(missing.size)}; remove or impute missing values first")
        elif dtype == object:
            cells = frame.iloc[:, position].to_numpy()
            numeric = np.frompyfunc(_is_number, 1, 1)(cells).astype(bool)
            if numeric.all():
                object_columns.append(position)
            else:
                row = int(np.flatnonzero(~numeric)[0])
                non_numeric.append(f"{name} (object: {_describe_cell(cells[row])} at row {row})")
        else:
            non_numeric.append(f"{name} ({dtype})")
    if non_numeric:
        raise DataError(f"{what} has non-numeric column(s) {', '.join(non_numeric)}; drop or encode them")
    if not object_columns:
        return frame.to_numpy(dtype=np.float64)
    array = np.empty(frame.shape, dtype=np.float64)
    for position in range(frame.shape[1]):
        array[:, position] = frame.iloc[:, position].to_numpy(dtype=np.float64)
    return array


def and_more_rows(count: int) -> str:
    """' (and N other row(s))' after the first of ``count`` rows, or nothing for one row."""
    return f" (and {count - 1} other row(s))" if count > 1 else ""


def check_training_data(detector, X) -> np.ndarray:
    """``X`` as a matrix to fit on; records ``n_features_in_`` and DataFrame column names."""
    feature_names = list(map(str, X.columns)) if hasattr(X, "columns") else None
    X = as_feature_matrix(X)
    if X.shape[0] < 2:
        raise DataError(f"need at least 2 rows to fit, got {X.shape[0]}")
    detector.n_features_in_ = X.shape[1]
    if feature_names is not None:
        detector.feature_names_in_ = np.asarray(feature_names, dtype=object)
    return X


def check_new_data(detector, X) -> np.ndarray:
    """``X`` as a matrix of the features ``detector`` was fitted on (DataFrame columns matched by name)."""
    names = getattr(detector, "feature_names_in_", None)
    if names is not None and hasattr(X, "columns"):
        by_name = {str(c): c for c in X.columns}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise DataError(f"X lacks the feature(s) the detector was fitted on: {', '.join(missing)}")
        X = X[[by_name[n] for n in names]]
    return as_feature_matrix(X, n_features=detector.n_features_in_, feature_names=names)


def check_number(name, value, low=None, high=None, integer=False, low_open=False, allow_none=False):
    """Raise a :class:`ParameterError` unless ``value`` is a number in the given range."""
    if value is None and allow_none:
        return
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or (not integer and not math.isfinite(value)):
        raise ParameterError(f"{name} must be {'an integer' if integer else 'a finite number'}, got {value!r}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ParameterError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and value > high:
        raise ParameterError(f"{name} must be <= {high}, got {value!r}")


def check_choice(name, value, choices):
    if value not in choices:
        raise ParameterError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def check_shape(name, value):
    """``value`` must be None or a non-empty sequence of positive integers (a row's shape)."""
    if value is None:
        return
    if not isinstance(value, (tuple, list)) or not value or not all(
            isinstance(size, numbers.Integral) and not isinstance(size, bool) and size >= 1 for size in value):
        raise ParameterError(f"{name} must be None or a sequence of positive integers such as (1, 28, 28), "
                             f"got {value!r}")
