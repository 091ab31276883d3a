"""Progress on stderr: a tqdm bar with ETA on a terminal, nothing in a pipe or with --quiet.

-v adds one line per epoch (loss, validation loss, seconds) in a pipe too. A fit is
watched through :func:`pyod_ae_ext.observers.observing`: the engine's training loop
calls :class:`FitProgress` like any other callback; an ensemble reports each member.
"""
from __future__ import annotations

import sys

import click

from ..observers import observing


def on_terminal(stream=None) -> bool:
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def _bar(total, desc, unit, stream, position=0, leave=True):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=stream, position=position, leave=leave,
                dynamic_ncols=True, bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {unit} "
                                               "[{elapsed}<{remaining}{postfix}]")


class FitProgress:
    """Training-loop callback (see :class:`pyod_ae_ext.training.Callback`) drawing the progress of a fit.

    Parameters
    ----------
    show_bar : bool
        Draw tqdm bars (a terminal, not --quiet).
    per_epoch : bool
        Print a line per epoch (-v).
    members : list of str, optional
        An ensemble's member names: one overall bar over the members.
    stream : file, default sys.stderr
    """

    def __init__(self, show_bar: bool, per_epoch: bool, members=None, stream=None):
        self.show_bar, self.per_epoch = show_bar, per_epoch
        self.stream = stream or sys.stderr
        self.members_bar = None
        if show_bar and members:
            self.members_bar = _bar(len(members), "members", "fitted", self.stream)
        self.epochs_bar, self.label = None, ""

    # -- the training loop's callback protocol

    def on_train_begin(self, loop):
        self.label = _name_of(loop.detector)
        if self.show_bar:
            self.epochs_bar = _bar(loop.epochs, self.label, "epochs", self.stream,
                                   position=1 if self.members_bar else 0, leave=self.members_bar is None)

    def on_epoch_begin(self, loop, epoch):
        pass

    def on_epoch_end(self, loop, epoch, logs):
        if self.epochs_bar is not None:
            self.epochs_bar.set_postfix_str(f"loss {logs['loss']:.4g}", refresh=False)
            self.epochs_bar.update(1)
        if self.per_epoch:
            parts = [f"{self.label} epoch {epoch + 1}/{loop.epochs}", f"loss {logs['loss']:.6g}"]
            if logs.get("val_loss") is not None:
                parts.append(f"val_loss {logs['val_loss']:.6g}")
            parts.append(f"{logs['seconds']:.2f}s")
            self.write("  ".join(parts))
            if loop.stop_training and loop.stop_reason:
                self.write(f"{self.label}: {loop.stop_reason}")

    def on_train_end(self, loop):
        if self.epochs_bar is not None:
            self.epochs_bar.close()
            self.epochs_bar = None

    # -- ensembles

    def on_member_end(self, name, member):
        if self.members_bar is not None:
            self.members_bar.set_postfix_str(name, refresh=False)
            self.members_bar.update(1)
        elif self.per_epoch:
            self.write(f"member {name} fitted")

    def write(self, text: str) -> None:
        if self.show_bar:
            from tqdm import tqdm

            tqdm.write(text, file=self.stream)
        else:
            click.echo(text, err=True)

    def close(self):
        for bar in (self.epochs_bar, self.members_bar):
            if bar is not None:
                bar.close()


def _name_of(detector) -> str:
    from ..registry import get_registry

    return get_registry().name_of(detector) or type(detector).__name__


class watched_fit:
    """``with watched_fit(quiet, verbose, members):`` shows a fit's progress as the options ask."""

    def __init__(self, quiet: bool, verbose: bool, members=None, stream=None):
        show_bar = not quiet and on_terminal(stream)
        self.progress = FitProgress(show_bar, verbose and not quiet, members, stream)
        self._observing = observing(self.progress)

    def __enter__(self):
        self._observing.__enter__()
        return self.progress

    def __exit__(self, *exc):
        self.progress.close()
        return self._observing.__exit__(*exc)


class RunProgress:
    """A bar over a known number of runs (benchmark cells), with one line per run unless quiet."""

    def __init__(self, total: int, quiet: bool, unit: str = "runs", stream=None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.bar = _bar(total, "benchmark", unit, self.stream) if not quiet and on_terminal(self.stream) else None

    def __call__(self, line: str) -> None:
        if self.bar is not None:
            self.bar.update(1)
        if self.quiet:
            return
        if self.bar is not None:
            from tqdm import tqdm

            tqdm.write(line, file=self.stream)
        else:
            click.echo(line, err=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
