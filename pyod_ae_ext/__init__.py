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


def save(detector, path, signing_key=None) -> None:
    """Save a fitted detector to ``path`` in the safe model format (JSON + tensors, no pickle).

    ``signing_key`` (bytes or str, at least 16 bytes) signs the file with HMAC-SHA256;
    by default ``$ADSCORE_SIGNING_KEY`` is used when set, else the file is not signed.
    """
    from .persistence import save_detector

    save_detector(detector, path, signing_key=signing_key)


def load(path, signing_key=None, device=None):
    """Load a detector saved by :func:`save` (never unpickles).

    With a ``signing_key`` (or ``$ADSCORE_SIGNING_KEY``) the file must carry a valid
    signature for it; without one, signed and unsigned files load alike. ``device``
    ("cpu", "cuda", "cuda:N", "auto") places its networks there instead of on the
    device they were saved with. Raises a :class:`~pyod_ae_ext.errors.ModelFileError`
    for any file it refuses.
    """
    from .persistence import load_detector

    return load_detector(path, signing_key=signing_key, device=device)
