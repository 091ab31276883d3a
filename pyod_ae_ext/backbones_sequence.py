"""Sequence backbones: recurrent (``"lstm"``, ``"gru"``) and 1-D convolutional (``"conv1d"``) layers.

A row is a sequence of ``T`` time steps with ``F`` channels, laid out time-major:
``[x(t0, c0), x(t0, c1), ..., x(t1, c0), ...]`` (the flat form of a (T, F) array, as
:mod:`pyod_ae_ext.windows` builds windows). ``input_shape=(T, F)`` says so; with
``input_shape=None`` every column is one time step of a single channel,
``(n_features, 1)`` (a table whose rows are univariate sequences, e.g. heartbeats).
The encoder reshapes the flat row to (T, F) and the decoder returns flat rows again,
so the family's loss, score and per-feature contributions are per time step and channel.

``"lstm"``, ``"gru"`` (the sequence-to-sequence autoencoder of Srivastava et al. 2015,
"Unsupervised learning of video representations using LSTMs", and the recurrent
encoder/decoder of Fabius & van Amersfoort 2015, "Variational recurrent
auto-encoders", ICLR workshop, section 2.2)
    Encoder: stacked recurrent layers of widths ``hidden_dims`` read the sequence; a
    linear layer maps the last layer's final hidden state to the code. Decoder: the
    code sets the first recurrent layer's initial hidden state, ``h_0 = tanh(W z + b)``
    (Fabius & van Amersfoort, eq. 6), and is also repeated as its input at each of the
    ``T`` steps; recurrent layers of widths ``reversed(hidden_dims)`` follow, and a
    linear head maps every step's hidden state to that step's ``F`` outputs (times the
    family's ``n_outputs``). The weights are shared over time, so the network's size
    does not depend on ``T``. ``activation`` is not used (the cells have their own
    sigmoid and tanh gates); ``dropout`` applies between stacked layers;
    ``batch_norm=True`` is refused.
``"conv1d"``
    Encoder: 1-D convolutions over time (kernel 5, stride 2, "same" padding, so each
    layer halves the length, rounding up) with ``hidden_dims`` channels, each followed
    by [BatchNorm], ``activation``, [Dropout]; a linear layer maps the flattened
    feature map to the code. Decoder: a linear layer and ``activation`` back to the
    last feature map, then transposed convolutions mirroring the encoder (the output
    padding restores each exact length), the last one linear with ``n_outputs x F``
    channels.

Families: every family whose network the seam builds works with all three, except
that Deep SVDD (``bias=False``) is refused by ``"lstm"`` and ``"gru"``: an LSTM or GRU
cell is made of sigmoid and tanh gates, bounded activations with a non-zero supremum,
which let the network reach a constant map and the hypersphere collapse (Ruff et al.
2018, Prop. 3), whether or not the cell has biases. ``"conv1d"`` builds a Deep SVDD
network without any additive constant (no biases, non-affine BatchNorm). k-sparse with
``tied=True`` needs ``"mlp"`` (a transposed weight matrix as decoder).
"""
from __future__ import annotations

import torch
from torch import nn

from .errors import ParameterError
from .nets import ACTIVATIONS

CONV_KERNEL = 5
_CONV_STRIDE = 2
_CONV_PADDING = CONV_KERNEL // 2


def sequence_shape(detector, n_features: int) -> tuple[int, int]:
    """``(T, F)`` of a row: ``input_shape``, or ``(n_features, 1)`` when it is None.

    Raises ParameterError when ``input_shape`` is not two positive integers whose product is ``n_features``.
    """
    shape = detector.input_shape
    if shape is None:
        return n_features, 1
    if len(shape) != 2:
        raise ParameterError(f"backbone={detector.backbone!r} reads sequences: input_shape must be "
                             f"(time_steps, channels), got {tuple(shape)!r}")
    steps, channels = int(shape[0]), int(shape[1])
    if steps * channels != n_features:
        raise ParameterError(f"input_shape={tuple(shape)!r} holds {steps * channels} values per row but the data "
                             f"has {n_features} features; a row must be time_steps x channels values, time-major")
    return steps, channels


class AsSequence(nn.Module):
    """(rows, T * F) -> (rows, T, F)."""

    def __init__(self, steps: int, channels: int):
        super().__init__()
        self.steps, self.channels = steps, channels

    def forward(self, x):
        return x.reshape(x.shape[0], self.steps, self.channels)


class FlattenSequence(nn.Module):
    """(rows, T, n_outputs * F) -> (rows, n_outputs * T * F): block k holds output k of every (step, channel)."""

    def __init__(self, steps: int, channels: int, n_outputs: int):
        super().__init__()
        self.steps, self.channels, self.n_outputs = steps, channels, n_outputs

    def forward(self, y):
        rows = y.shape[0]
        blocks = y.reshape(rows, self.steps, self.n_outputs, self.channels).transpose(1, 2)
        return blocks.reshape(rows, -1)


class RecurrentStack(nn.Module):
    """Single-layer LSTMs or GRUs of the given widths, one after the other; returns every step's output.

    ``initial`` (rows, widths[1]) or None: the first layer's initial hidden state.
    """

    def __init__(self, cell: str, widths, dropout: float = 0.0):
        super().__init__()
        kind = nn.LSTM if cell == "lstm" else nn.GRU
        self.cell = cell
        self.layers = nn.ModuleList(kind(w_in, w_out, batch_first=True) for w_in, w_out in zip(widths[:-1], widths[1:]))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None

    def forward(self, x, initial=None):
        for i, layer in enumerate(self.layers):
            if i and self.dropout is not None:
                x = self.dropout(x)
            state = None
            if i == 0 and initial is not None:
                h0 = initial.unsqueeze(0).contiguous()
                state = (h0, torch.zeros_like(h0)) if self.cell == "lstm" else h0
            x, _ = layer(x, state)
        return x


class RecurrentEncoder(nn.Module):
    """(rows, T, F) -> the last layer's hidden state after the last step, (rows, widths[-1])."""

    def __init__(self, cell: str, widths, dropout: float):
        super().__init__()
        self.stack = RecurrentStack(cell, widths, dropout)

    def forward(self, x):
        return self.stack(x)[:, -1]


class RecurrentDecoder(nn.Module):
    """(rows, code) -> (rows, T, widths[-1]): the code sets h_0 = tanh(W z + b) and is the input at every step."""

    def __init__(self, cell: str, in_dim: int, widths, steps: int, dropout: float):
        super().__init__()
        self.steps = steps
        self.initial = nn.Linear(in_dim, widths[1])
        self.stack = RecurrentStack(cell, widths, dropout)

    def forward(self, z):
        inputs = z.unsqueeze(1).expand(z.shape[0], self.steps, z.shape[1])
        return self.stack(inputs, initial=torch.tanh(self.initial(z)))


class RecurrentBackbone:
    """Stacked LSTM or GRU layers (see the module docstring)."""

    trains_batched = False  # torch.func.vmap has no batching rule for LSTM/GRU: members train one by one

    def __init__(self, cell: str):
        self.name = self.cell = cell

    def check(self, detector, n_features: int) -> None:
        sequence_shape(detector, n_features)
        if not detector.hidden_widths():
            raise ParameterError(f"backbone={self.cell!r} needs at least one recurrent layer, got "
                                 f"hidden_dims={detector.hidden_dims!r}; set hidden_dims, e.g. (32,)")
        if detector.batch_norm:
            raise ParameterError(f"batch_norm=True is not available with backbone={self.cell!r} (recurrent layers "
                                 "have no per-layer batch statistics); set batch_norm=False or use 'conv1d'")

    def _refuse_bias_free(self, bias: bool) -> None:
        if not bias:
            raise ParameterError(
                f"backbone={self.cell!r} cannot give this family the bias-free, unbounded network it needs: "
                f"{self.cell.upper()} cells are built of sigmoid and tanh gates, bounded activations that let the "
                "network collapse to a constant map (Ruff et al. 2018, Prop. 3); use backbone='conv1d' or 'mlp'")

    def encoder(self, detector, n_features: int, out_dim: int, bias: bool = True) -> nn.Sequential:
        self._refuse_bias_free(bias)
        self.check(detector, n_features)
        steps, channels = sequence_shape(detector, n_features)
        widths = [channels, *detector.hidden_widths()]
        return nn.Sequential(AsSequence(steps, channels), RecurrentEncoder(self.cell, widths, detector.dropout),
                             nn.Linear(widths[-1], out_dim))

    def decoder(self, detector, in_dim: int, n_features: int, n_outputs: int = 1,
                bias: bool = True) -> nn.Sequential:
        self._refuse_bias_free(bias)
        steps, channels = sequence_shape(detector, n_features)
        widths = [in_dim, *reversed(detector.hidden_widths())]
        return nn.Sequential(RecurrentDecoder(self.cell, in_dim, widths, steps, detector.dropout),
                             nn.Linear(widths[-1], n_outputs * channels),
                             FlattenSequence(steps, channels, n_outputs))


def conv_lengths(steps: int, n_layers: int) -> list[int]:
    """Sequence length before and after each stride-2 convolution: ``L_{i+1} = ceil(L_i / 2)``."""
    lengths = [steps]
    for _ in range(n_layers):
        lengths.append((lengths[-1] + 2 * _CONV_PADDING - CONV_KERNEL) // _CONV_STRIDE + 1)
    return lengths


class ChannelsFirst(nn.Module):
    """(rows, T * F) -> (rows, F, T), the layout of ``nn.Conv1d``."""

    def __init__(self, steps: int, channels: int):
        super().__init__()
        self.steps, self.channels = steps, channels

    def forward(self, x):
        return x.reshape(x.shape[0], self.steps, self.channels).transpose(1, 2)


class FlattenChannels(nn.Module):
    """(rows, n_outputs * F, T) -> (rows, n_outputs * T * F) in blocks, each time-major."""

    def __init__(self, steps: int, channels: int, n_outputs: int):
        super().__init__()
        self.steps, self.channels, self.n_outputs = steps, channels, n_outputs

    def forward(self, y):
        rows = y.shape[0]
        return y.reshape(rows, self.n_outputs, self.channels, self.steps).transpose(2, 3).reshape(rows, -1)


class Conv1dBackbone:
    """1-D convolutions over time (see the module docstring)."""

    name = "conv1d"

    def check(self, detector, n_features: int) -> None:
        sequence_shape(detector, n_features)

    def _block(self, detector, layer, width: int, bias: bool) -> list[nn.Module]:
        block = [layer]
        if detector.batch_norm:
            block.append(nn.BatchNorm1d(width, affine=bias))
        block.append(ACTIVATIONS[detector.activation]())
        if detector.dropout > 0:
            block.append(nn.Dropout(detector.dropout))
        return block

    def encoder(self, detector, n_features: int, out_dim: int, bias: bool = True) -> nn.Sequential:
        steps, channels = sequence_shape(detector, n_features)
        widths = [channels, *detector.hidden_widths()]
        lengths = conv_lengths(steps, len(widths) - 1)
        layers: list[nn.Module] = [ChannelsFirst(steps, channels)]
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            conv = nn.Conv1d(w_in, w_out, CONV_KERNEL, stride=_CONV_STRIDE, padding=_CONV_PADDING, bias=bias)
            layers += self._block(detector, conv, w_out, bias)
        layers += [nn.Flatten(), nn.Linear(widths[-1] * lengths[-1], out_dim, bias=bias)]
        return nn.Sequential(*layers)

    def decoder(self, detector, in_dim: int, n_features: int, n_outputs: int = 1,
                bias: bool = True) -> nn.Sequential:
        steps, channels = sequence_shape(detector, n_features)
        widths = [n_outputs * channels, *detector.hidden_widths()]
        lengths = conv_lengths(steps, len(widths) - 1)
        layers: list[nn.Module] = [nn.Linear(in_dim, widths[-1] * lengths[-1], bias=bias),
                                   ACTIVATIONS[detector.activation](),
                                   nn.Unflatten(1, (widths[-1], lengths[-1]))]
        for i in range(len(widths) - 1, 0, -1):
            produced = (lengths[i] - 1) * _CONV_STRIDE - 2 * _CONV_PADDING + CONV_KERNEL
            deconv = nn.ConvTranspose1d(widths[i], widths[i - 1], CONV_KERNEL, stride=_CONV_STRIDE,
                                        padding=_CONV_PADDING, output_padding=lengths[i - 1] - produced, bias=bias)
            layers += [deconv] if i == 1 else self._block(detector, deconv, widths[i - 1], bias)
        layers.append(FlattenChannels(steps, channels, n_outputs))
        return nn.Sequential(*layers)


SEQUENCE_BACKBONES = (RecurrentBackbone("lstm"), RecurrentBackbone("gru"), Conv1dBackbone())
