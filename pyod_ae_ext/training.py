"""The training loop of the autoencoder engine, and the callbacks that shape it.

:class:`TrainingLoop` runs minibatch epochs over an in-memory tensor: shuffle with the
detector's seeded generator, slice batches, one optimiser step per batch, record the
epoch's mean loss. Everything else a method needs is a :class:`Callback`:

- :class:`EarlyStopping` (validation loss, patience, best weights restored),
- :class:`ProgressReporter` (one line per epoch on stderr with ``verbose=True``),
- family-specific steps, e.g. RDAE's alternating projection (swaps the training data
  every few epochs), Deep SVDD's radius solve, the k-sparse support schedule, or work
  after training (AE-1SVM's exact rho, the VAE's decoder variance).

A detector family returns its callbacks from
:meth:`~pyod_ae_ext.engine.AutoEncoderDetector.training_callbacks`; it never copies
the loop. Code that runs a fit (the command line's progress bar) adds callbacks to
every loop started in a block with :func:`~pyod_ae_ext.observers.observing`, without
changing the detector.

Example: a callback that halves the learning rate every 20 epochs::

    class StepDecay(Callback):
        def on_epoch_end(self, loop, epoch, logs):
            if (epoch + 1) % 20 == 0:
                loop.optimizer.lr /= 2
"""
from __future__ import annotations

import contextlib
import math
import sys
import time

import torch

from .errors import TrainingError
from .observers import active_observers


class Callback:
    """Hooks into :class:`TrainingLoop`; override the ones you need.

    ``epoch`` counts from 0 within one :meth:`TrainingLoop.run`. ``logs`` holds the
    epoch's ``"loss"`` (mean training loss) and, once :class:`EarlyStopping` or another
    callback has computed it, ``"val_loss"``. Setting ``loop.stop_training = True``
    ends the run after the current epoch (``loop.stop_reason`` says why).
    """

    batch_safe = False
    """Whether members (``n_members > 1``) may still train as one stacked computation with this callback.

    Callbacks acting only in :meth:`on_train_begin` / :meth:`on_train_end` never stop
    that. One acting between epochs may declare ``batch_safe = True`` when it keeps the
    shape of ``loop.train`` (it may replace the rows), leaves ``loop.optimizer`` alone,
    changes the network only through its weights or through attributes that every
    member sets alike, and does not change what the family's loss reads from the
    detector. In stacked training it is then called for each member with that member's
    loop and network, holding its current weights.
    """

    def on_train_begin(self, loop: TrainingLoop) -> None:
        """Before the first epoch."""

    def on_epoch_begin(self, loop: TrainingLoop, epoch: int) -> None:
        """Before an epoch's shuffle (e.g. to change the network or the data)."""

    def on_epoch_end(self, loop: TrainingLoop, epoch: int, logs: dict) -> None:
        """After an epoch's last step."""

    def on_train_end(self, loop: TrainingLoop) -> None:
        """After the last epoch (also after an early stop).

        Runs in reverse order of the callbacks, so the engine's :class:`EarlyStopping`
        (added after a family's callbacks) has restored the best weights before a
        family's post-training step sees the network.
        """


class TrainingLoop:
    """Minibatch training of ``net`` on the rows of ``train``.

    Parameters
    ----------
    detector : AutoEncoderDetector
        Supplies the batch size, the per-batch loss (:meth:`batch_loss`), the optimiser
        and the history (``history_``) the epochs are recorded in.
    net : torch.nn.Module
        The network to train (usually ``detector.net_``).
    train : torch.Tensor
        Training rows, already standardised and on the device. Callbacks may replace
        ``loop.train`` between epochs (same number of rows or not).
    validation : torch.Tensor or None
        Held-out rows, for callbacks such as :class:`EarlyStopping`.
    loss : callable ``(net, batch) -> scalar tensor``, optional
        Defaults to ``detector.batch_loss``.
    optimizer : optional
        Defaults to ``detector.make_optimizer(net)``, made when :meth:`run` starts, after
        the ``on_train_begin`` callbacks (which may pre-train parts of ``net`` with an
        optimiser of their own); pass one to continue training with its state.
    generator : torch.Generator, optional
        Shuffling generator; defaults to a fresh one seeded from the detector.
    callbacks : sequence of Callback
    """

    def __init__(self, detector, net, train, validation=None, *, loss=None, optimizer=None, generator=None,
                 callbacks=()):
        self.detector = detector
        self.net = net
        self.train = train
        self.validation = validation
        self.loss = loss if loss is not None else detector.batch_loss
        self.optimizer = optimizer
        self.generator = generator if generator is not None else detector.random_generator()
        self.callbacks = [*callbacks, *active_observers()]
        self.history = detector.history_
        self.stop_training = False
        self.stop_reason = None
        self.epochs = 0

    def run(self, epochs: int) -> TrainingLoop:
        """Train for up to ``epochs`` epochs (fewer when a callback stops the run)."""
        self.epochs = epochs
        self.stop_training, self.stop_reason = False, None
        for callback in self.callbacks:
            callback.on_train_begin(self)
        if self.optimizer is None:
            self.optimizer = self.detector.make_optimizer(self.net)
        for epoch in range(epochs):
            for callback in self.callbacks:
                callback.on_epoch_begin(self, epoch)
            started = time.perf_counter()
            loss = self._run_epoch()
            self._check_finite(loss)
            self.history["loss"].append(loss)
            logs = {"loss": loss, "val_loss": None, "seconds": time.perf_counter() - started}
            for callback in self.callbacks:
                callback.on_epoch_end(self, epoch, logs)
            if self.stop_training:
                break
        for callback in reversed(self.callbacks):  # teardown in reverse: best weights back before post-steps
            callback.on_train_end(self)
        return self

    def validation_loss(self) -> float:
        """Mean per-row loss on ``validation`` (network in eval mode, no gradients)."""
        return self.detector.evaluate_loss(self.net, self.validation)

    def _run_epoch(self) -> float:
        net, optimizer, train = self.net, self.optimizer, self.train
        n_rows = train.shape[0]
        batch_size = min(self.detector.batch_size, n_rows)
        min_batch = 2 if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules()) else 1
        net.train()
        shuffled = train[torch.randperm(n_rows, generator=self.generator).to(train.device)]
        autocast = getattr(self.detector, "autocast", contextlib.nullcontext)
        batch_losses = []
        for start in range(0, n_rows, batch_size):
            batch = shuffled[start:start + batch_size]
            if batch.shape[0] < min_batch:
                continue
            with autocast():  # the forward pass only: gradients flow back in the weights' own precision
                loss = self.loss(net, batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            batch_losses.append(loss.detach())
        return torch.stack(batch_losses).mean().item()

    def _check_finite(self, loss: float) -> None:
        if not math.isfinite(loss):
            lr = getattr(self.optimizer, "lr", None)
            raise TrainingError(
                f"training loss became {loss} at epoch {len(self.history['loss']) + 1}; lower the learning "
                f"rate{f' (lr={lr})' if lr is not None else ''} or check the data for extreme values"
            )


class EarlyStopping(Callback):
    """Stop when the validation loss has not improved for ``patience`` epochs; restore the best weights.

    Parameters
    ----------
    patience : int
    start_epoch : int, default 0
        Epochs before this one are not compared nor kept (they are evaluated and
        recorded in ``history_["val_loss"]`` unless ``evaluate_before_start=False``),
        e.g. while another callback's warm-up changes the objective.
    min_delta : float, default 1e-7
        Relative improvement that counts.
    evaluate_before_start : bool, default True
        Whether epochs before ``start_epoch`` are evaluated at all (False saves the
        validation passes when nothing is recorded for them).
    """

    batch_safe = True  # members train stacked only without validation rows, where it does nothing

    def __init__(self, patience: int, start_epoch: int = 0, min_delta: float = 1e-7,
                 evaluate_before_start: bool = True):
        self.patience = patience
        self.start_epoch = start_epoch
        self.min_delta = min_delta
        self.evaluate_before_start = evaluate_before_start

    def on_train_begin(self, loop):
        self.best_loss, self.best_state, self.stale = None, None, 0

    def on_epoch_end(self, loop, epoch, logs):
        if loop.validation is None or (epoch < self.start_epoch and not self.evaluate_before_start):
            return
        val_loss = loop.validation_loss()
        logs["val_loss"] = val_loss
        loop.history["val_loss"].append(val_loss)
        if epoch < self.start_epoch:
            return
        if self.best_state is None or val_loss < self.best_loss - self.min_delta * abs(self.best_loss):
            self.best_loss, self.stale = val_loss, 0
            self.best_state = {k: v.detach().clone() for k, v in loop.net.state_dict().items()}
            return
        self.stale += 1
        if self.stale >= self.patience:
            loop.stop_training = True
            loop.stop_reason = f"early stop: no validation improvement for {self.patience} epochs"

    def on_train_end(self, loop):
        if self.best_state is not None:
            loop.net.load_state_dict(self.best_state)


class ProgressReporter(Callback):
    """One line per epoch on stderr: epoch, training loss, validation loss, seconds."""

    def __init__(self, stream=None, label: str = ""):
        self.stream = stream
        self.label = label

    def on_epoch_end(self, loop, epoch, logs):
        parts = [f"{self.label}epoch {epoch + 1}/{loop.epochs}", f"loss {logs['loss']:.6g}"]
        if logs.get("val_loss") is not None:
            parts.append(f"val_loss {logs['val_loss']:.6g}")
        parts.append(f"{logs['seconds']:.2f}s")
        print("  ".join(parts), file=self.stream or sys.stderr)
        if loop.stop_training and loop.stop_reason:
            print(loop.stop_reason, file=self.stream or sys.stderr)
