"""Exceptions for problems a user can fix.

The command line prints any :class:`AdscoreError` as a single ``Error: ...`` line
and exits with status 2; everything else is a bug and keeps its traceback.
"""


class AdscoreError(Exception):
    """A problem with the user's input, parameters or files, with a fix in its message."""


class DataError(AdscoreError, ValueError):
    """Input data that cannot be used: wrong shape, non-numeric, NaN/inf, missing columns."""


class ParameterError(AdscoreError, ValueError):
    """An unknown detector parameter or a parameter value out of range."""


class UnknownDetectorError(AdscoreError, KeyError):
    """A detector name that no installed plugin registers."""

    def __str__(self):  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DuplicateDetectorError(AdscoreError, RuntimeError):
    """Two plugins register the same detector name or alias."""


class ModelFileError(AdscoreError, ValueError):
    """A model file that is missing, truncated, tampered with or not an adscore model."""


class TrainingError(AdscoreError, RuntimeError):
    """Training that cannot produce a usable model (e.g. the loss became NaN)."""


class DeviceError(AdscoreError, RuntimeError):
    """A requested torch device that this machine does not have."""


class InconsistentModelError(ModelFileError):
    """A model file that passed its integrity check but does not describe a working detector.

    Raised with the bare problem ("tensor 'x' has shape ..."); the loader prefixes the
    file name and the fix. Plugins may raise it from ``_restore_fitted_state``.
    """


REFIT_ADVICE = "refit and save the model again"

# What a hash-valid but inconsistent model state raises while a detector is rebuilt.
STATE_ERRORS = (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError, ArithmeticError)


def inconsistent(source: str, problem: str) -> ModelFileError:
    """A :class:`ModelFileError` saying what is inconsistent in ``source`` and how to fix it."""
    return ModelFileError(f"{source} is inconsistent: {problem}; {REFIT_ADVICE}")


def describe_exception(exc: BaseException) -> str:
    """A one-line description of an unexpected exception raised while reading a model file."""
    if isinstance(exc, KeyError):
        return f"it lacks the entry {exc.args[0]!r}" if exc.args else "it lacks an entry"
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:300] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
