"""Backbones: the layers an autoencoder family's encoder and decoder are made of.

A family writes its math once on flat rows, ``x`` of shape (rows, n_features), and asks
the engine for its encoder and decoder (:meth:`AutoEncoderDetector.make_encoder`,
:meth:`AutoEncoderDetector.make_decoder`). The detector's ``backbone`` parameter picks
which layers those are, so every family gains a backbone without a copy of its math:

- ``"mlp"`` (default): fully connected layers through ``hidden_dims``.
- ``"lstm"``, ``"gru"``, ``"conv1d"``: sequence layers, :mod:`pyod_ae_ext.backbones_sequence`.
- ``"conv"``, ``"toll-mnist"``: convolutional image backbones
  (:mod:`pyod_ae_ext.backbones_image`).

A backbone that works on structured rows (an image, a sequence) reshapes the flat row
to ``input_shape`` inside its encoder and flattens its decoder's output again, so
losses, scores and per-feature contributions stay per flat feature (per pixel, per
time step and channel).

Contract of a backbone (an object registered in :data:`BACKBONES`):

``check(detector, n_features)``
    Raise :class:`~pyod_ae_ext.errors.ParameterError` when the detector's parameters
    do not fit this backbone and data width (e.g. ``input_shape`` does not multiply
    out to ``n_features``).
``encoder(detector, n_features, out_dim, bias)``
    An ``nn.Sequential`` mapping (rows, n_features) to (rows, out_dim); its last layer
    is linear (no activation), so families may append their own.
``decoder(detector, in_dim, n_features, n_outputs, bias)``
    An ``nn.Sequential`` mapping (rows, in_dim) to (rows, n_outputs * n_features),
    laid out as ``n_outputs`` consecutive blocks of ``n_features`` (block k holds
    output k of every feature, e.g. a mean and a variance per feature).

``bias=False`` asks for layers without any additive constant (Deep SVDD's
requirement, Ruff et al. 2018, Prop. 2).

Optional attributes: ``scaling`` (``"feature"`` or ``"global"``), how
``standardize=True`` scales the data for this backbone (per feature when absent), and
``widest(detector, n_features)``, the values per row of the largest activation (sizes
scoring batches and the thread budget; the widest of ``hidden_dims`` when absent), and
``default_hidden_dims``, what ``hidden_dims="auto"`` means for this backbone
(:data:`~pyod_ae_ext.engine.DEFAULT_HIDDEN_DIMS` when absent), and ``trains_batched``:
False when its layers cannot be mapped with :func:`torch.func.vmap` (recurrent
layers), so that members (``n_members > 1``) train one after the other, and
``latent_space``, what ``latent_space="auto"`` means for this backbone (``"code"``
when absent).
"""
from __future__ import annotations

from torch import nn

from .errors import ParameterError
from .nets import mlp


class MLPBackbone:
    """Fully connected layers through the detector's ``hidden_dims``; the decoder mirrors them."""

    name = "mlp"

    def check(self, detector, n_features: int) -> None:
        if detector.input_shape is not None:
            raise ParameterError(f"input_shape={detector.input_shape!r} is for structured backbones; the "
                                 "'mlp' backbone reads flat rows, so leave input_shape=None")

    def encoder(self, detector, n_features: int, out_dim: int, bias: bool = True) -> nn.Sequential:
        return mlp([n_features, *detector.hidden_widths(), out_dim], detector.activation, detector.dropout,
                   detector.batch_norm, bias=bias)

    def decoder(self, detector, in_dim: int, n_features: int, n_outputs: int = 1,
                bias: bool = True) -> nn.Sequential:
        return mlp([in_dim, *reversed(detector.hidden_widths()), n_outputs * n_features], detector.activation,
                   detector.dropout, detector.batch_norm, bias=bias)


BACKBONES: dict = {"mlp": MLPBackbone()}
"""Backbones by name; :func:`register_backbone` adds one."""

from .backbones_image import IMAGE_BACKBONES  # noqa: E402

BACKBONES.update(IMAGE_BACKBONES)


def register_backbone(backbone) -> None:
    """Make ``backbone`` (an object with ``name``, ``check``, ``encoder``, ``decoder``) selectable by name."""
    for attribute in ("name", "check", "encoder", "decoder"):
        if not hasattr(backbone, attribute):
            raise TypeError(f"a backbone needs a {attribute!r} attribute; {backbone!r} has none")
    BACKBONES[backbone.name] = backbone


def get_backbone(name):
    """The backbone registered as ``name``; ParameterError naming the choices otherwise."""
    try:
        return BACKBONES[name]
    except (KeyError, TypeError):
        raise ParameterError(f"backbone must be one of {sorted(BACKBONES)}, got {name!r}") from None


from .backbones_sequence import SEQUENCE_BACKBONES  # noqa: E402

BACKBONES.update((backbone.name, backbone) for backbone in SEQUENCE_BACKBONES)
