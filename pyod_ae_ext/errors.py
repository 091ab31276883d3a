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
