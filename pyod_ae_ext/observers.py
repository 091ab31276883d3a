"""Watching fits from outside a detector: callbacks added to every training loop in a block.

The command line shows a progress bar for a fit this way, without changing the
detector's parameters or its training loop (:class:`pyod_ae_ext.training.TrainingLoop`
adds the callbacks of :func:`observing` after the detector's own). Imports no torch,
so ensembles of PyOD detectors can report their members without it.
"""
from __future__ import annotations

import contextlib
import contextvars

_observers: contextvars.ContextVar[tuple] = contextvars.ContextVar("adscore_training_observers", default=())


@contextlib.contextmanager
def observing(*callbacks):
    """Run every training loop started in this block (this thread) with ``callbacks`` too.

    ``callbacks`` are :class:`pyod_ae_ext.training.Callback` objects; one may also define
    ``on_member_end(name, member)``, called by :func:`member_fitted`.
    """
    token = _observers.set(_observers.get() + tuple(callbacks))
    try:
        yield
    finally:
        _observers.reset(token)


def active_observers() -> tuple:
    """The callbacks of the enclosing :func:`observing` blocks."""
    return _observers.get()


def member_fitted(name: str, member) -> None:
    """Tell the callbacks of :func:`observing` that the ensemble member ``name`` is fitted."""
    for callback in _observers.get():
        hook = getattr(callback, "on_member_end", None)
        if hook is not None:
            hook(name, member)
