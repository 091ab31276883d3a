"""pyod-ae-ext: autoencoder-based anomaly detectors for PyOD, and the ``adscore`` command.

>>> import pyod_ae_ext
>>> detector = pyod_ae_ext.make_detector("toll", random_state=0)   # doctest: +SKIP
>>> detector.fit(X_train).decision_function(X_test)                  # doctest: +SKIP
"""
from importlib.metadata import PackageNotFoundError, version as _version

from .errors import AdscoreError
from .hookspecs import hookimpl

try:
    __version__ = _version("pyod-ae-ext")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "AdscoreError",
    "available_detectors",
    "hookimpl",
    "load",
    "make_detector",
    "save",
]


def available_detectors() -> list[str]:
    """Names of every registered detector (ours, PyOD's baselines and third-party plugins)."""
    from .registry import get_registry

    return list(get_registry().detectors)


def make_detector(name: str, **params):
    """Create the detector registered as ``name`` (or an alias) with ``params``.

    Returns an ordinary, unfitted PyOD detector. An unknown name or parameter raises an
    :class:`AdscoreError` listing what exists.
    """
    from .registry import get_registry

    return get_registry().make(name, **params)


def save(detector, path) -> None:
    """Save a fitted detector to ``path`` in the safe model format (JSON + tensors, no pickle)."""
    from .persistence import save_detector

    save_detector(detector, path)


def load(path):
    """Load a detector saved by :func:`save` (never unpickles)."""
    from .persistence import load_detector

    return load_detector(path)
