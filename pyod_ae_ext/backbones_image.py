"""Convolutional backbones for images: ``backbone="conv"`` and the Toll paper's MNIST network.

Both read a flat row of ``C * H * W`` pixels, reshape it to ``(C, H, W)`` (channel
first, then rows, then columns: the order of ``image.reshape(-1)`` for a channel-first
image), and their decoders flatten their output again, so each family's loss, score
and per-feature contributions stay per pixel (:mod:`pyod_ae_ext.backbones`).

The image shape is the detector's ``input_shape`` ``(C, H, W)``; with
``input_shape=None`` it is inferred as ``(1, s, s)`` (one grey square image) when the
number of features is a perfect square ``s * s``, and refused otherwise.

Images are standardised globally (one mean and one scale for every pixel) with the
engine's default ``standardize=True``: :attr:`ConvBackbone.scaling` is ``"global"``.

``"conv"``
    A convolutional autoencoder in the textbook form (Goodfellow, Bengio & Courville,
    *Deep Learning*, 2016, ch. 9 and 14; Masci et al., "Stacked convolutional
    auto-encoders for hierarchical feature extraction", ICANN 2011): each entry of
    ``hidden_dims`` is the channel count of one 3x3 convolution with stride 2 and
    padding 1, which halves the height and width (rounding up: ``ceil(H / 2)``), so any
    ``H`` and ``W`` work; a linear layer maps the last feature map to the code. The
    decoder mirrors it: a linear layer to the last feature map, then 3x3 transposed
    convolutions with stride 2, padding 1 and the output padding that restores each
    level's exact size. ``activation``, ``batch_norm`` (BatchNorm2d) and ``dropout``
    apply after every hidden convolution as in the MLP. Its default channels
    (``hidden_dims="auto"``) are ``(32, 64, 128)``: the channel count doubles as the
    maps halve, the usual progression of convolutional encoders, so a 28 x 28 image
    passes through 32 maps of 14 x 14, 64 of 7 x 7 and 128 of 4 x 4 (chosen on MNIST
    against the MLP's ``(64, 32)`` read as channels: benchmarks/RESULTS.md, "Images").
``"toll-mnist"``
    The MNIST network of Toll (Ghafourian et al., "Targeted collapse regularized
    autoencoder for anomaly detection: black hole at the center", IEEE TNNLS 2024),
    as in the authors' published code (``build_mnist_model``): 4x4 convolutions with
    64, 128, 256 (stride 2), 512 and 64 channels, no padding, BatchNorm and
    LeakyReLU(0.2) after each but the last, a linear layer from the 64 x 4 x 4 map to
    the code; the decoder mirrors it with transposed convolutions and has a linear
    first layer. It is a fixed architecture: ``hidden_dims``, ``activation``,
    ``batch_norm`` and ``dropout`` do not apply. Made for ``(1, 28, 28)``; any image of
    at least 22 x 22 pixels works (output padding restores odd sizes). The paper's
    MNIST settings are ``latent_dim=128``, batch size 1000, learning rate 1e-4 (and
    its own loss scale: unsquared norms, weight 1000). It is about 450 million
    multiply-adds per image and pass, a GPU network: on two CPU cores an epoch over
    6,000 images takes minutes.

``bias=False`` gives convolutions, transposed convolutions and linear layers without
bias and non-affine BatchNorm: no additive constant anywhere (Deep SVDD).
"""
from __future__ import annotations

import math

from torch import nn

from .errors import ParameterError
from .nets import ACTIVATIONS


def image_shape(detector, n_features: int) -> tuple:
    """``(C, H, W)`` of the detector's rows: ``input_shape``, or ``(1, s, s)`` for ``s * s`` features."""
    shape = detector.input_shape
    if shape is None:
        side = math.isqrt(n_features)
        if side * side != n_features:
            raise ParameterError(
                f"backbone={detector.backbone!r} cannot infer the image shape of {n_features} features (not a "
                "square number of grey pixels): give input_shape=(C, H, W), e.g. --image-shape 3,32,32")
        return 1, side, side
    if len(shape) != 3:
        raise ParameterError(f"backbone={detector.backbone!r} needs input_shape=(C, H, W), e.g. (1, 28, 28); "
                             f"got {tuple(shape)!r}")
    channels, height, width = (int(size) for size in shape)
    if channels * height * width != n_features:
        raise ParameterError(f"input_shape={tuple(shape)!r} holds {channels * height * width} pixel values but the "
                             f"data have {n_features} features; give the shape of one image as (C, H, W)")
    return channels, height, width


def _halved(size: int) -> int:
    """Output size of a 3x3 convolution with stride 2 and padding 1."""
    return (size + 1) // 2


def _hidden_block(layers: list, width: int, detector, bias: bool) -> None:
    """[BatchNorm2d] -> activation -> [Dropout] after a hidden (transposed) convolution."""
    if detector.batch_norm:
        layers.append(nn.BatchNorm2d(width, affine=bias))
    layers.append(ACTIVATIONS[detector.activation]())
    if detector.dropout > 0:
        layers.append(nn.Dropout(detector.dropout))


class ConvBackbone:
    """Strided 3x3 convolutions through the channel counts ``hidden_dims``; transposed convolutions back."""

    name = "conv"
    scaling = "global"
    latent_space = "features"
    default_hidden_dims = (32, 64, 128)

    def check(self, detector, n_features: int) -> None:
        image_shape(detector, n_features)
        if not detector.hidden_widths():
            raise ParameterError("backbone='conv' needs at least one convolution: give hidden_dims as channel "
                                 "counts, e.g. hidden_dims=(16, 32)")

    def _sizes(self, detector, n_features):
        """Channels, heights and widths of the input and of every hidden feature map."""
        channels, height, width = image_shape(detector, n_features)
        sizes = [(channels, height, width)]
        for hidden in detector.hidden_widths():
            _, height, width = sizes[-1]
            sizes.append((hidden, _halved(height), _halved(width)))
        return sizes

    def widest(self, detector, n_features: int) -> int:
        """Values per row of the largest activation (sizes scoring batches and the thread budget)."""
        return max(c * h * w for c, h, w in self._sizes(detector, n_features))

    def encoder(self, detector, n_features: int, out_dim: int, bias: bool = True) -> nn.Sequential:
        self.check(detector, n_features)
        sizes = self._sizes(detector, n_features)
        layers: list[nn.Module] = [nn.Unflatten(1, sizes[0])]
        for (c_in, _, _), (c_out, _, _) in zip(sizes[:-1], sizes[1:]):
            layers.append(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=bias))
            _hidden_block(layers, c_out, detector, bias)
        c, h, w = sizes[-1]
        layers += [nn.Flatten(), nn.Linear(c * h * w, out_dim, bias=bias)]
        return nn.Sequential(*layers)

    def decoder(self, detector, in_dim: int, n_features: int, n_outputs: int = 1,
                bias: bool = True) -> nn.Sequential:
        self.check(detector, n_features)
        sizes = self._sizes(detector, n_features)
        c, h, w = sizes[-1]
        layers: list[nn.Module] = [nn.Linear(in_dim, c * h * w, bias=bias), nn.Unflatten(1, (c, h, w))]
        _hidden_block(layers, c, detector, bias)
        levels = list(reversed(sizes))
        for k, ((c_in, _, _), (c_out, h_out, w_out)) in enumerate(zip(levels[:-1], levels[1:])):
            last = k == len(levels) - 2
            c_out = c_out * n_outputs if last else c_out
            # a stride-2 transposed convolution doubles the size, minus one without output padding
            padding = (1 - h_out % 2, 1 - w_out % 2)
            layers.append(nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=padding,
                                             bias=bias))
            if not last:
                _hidden_block(layers, c_out, detector, bias)
        # (rows, n_outputs * C, H, W) flattens to n_outputs blocks of C*H*W: block k = output k per pixel
        layers.append(nn.Flatten())
        return nn.Sequential(*layers)


# (channels, kernel, stride) of the encoder's convolutions in the Toll authors' build_mnist_model
_TOLL_MNIST_LAYERS = ((64, 4, 1), (128, 4, 1), (256, 4, 2), (512, 4, 1), (64, 4, 1))
_TOLL_MNIST_SLOPE = 0.2
_TOLL_MNIST_MIN_SIDE = 22


def _conv_size(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


class TollMNISTBackbone:
    """The Toll paper's MNIST encoder/decoder (fixed widths, 4x4 kernels, BatchNorm, LeakyReLU(0.2))."""

    name = "toll-mnist"
    scaling = "global"

    def check(self, detector, n_features: int) -> None:
        _, height, width = image_shape(detector, n_features)
        if min(height, width) < _TOLL_MNIST_MIN_SIDE:
            raise ParameterError(f"backbone='toll-mnist' needs images of at least {_TOLL_MNIST_MIN_SIDE} x "
                                 f"{_TOLL_MNIST_MIN_SIDE} pixels (it was made for 28 x 28), got {height} x {width}; "
                                 "use backbone='conv' for small images")

    def _sizes(self, detector, n_features):
        channels, height, width = image_shape(detector, n_features)
        sizes = [(channels, height, width)]
        for c_out, kernel, stride in _TOLL_MNIST_LAYERS:
            _, height, width = sizes[-1]
            sizes.append((c_out, _conv_size(height, kernel, stride), _conv_size(width, kernel, stride)))
        return sizes

    def widest(self, detector, n_features: int) -> int:
        return max(c * h * w for c, h, w in self._sizes(detector, n_features))

    @staticmethod
    def _activation(layers: list, width: int, bias: bool) -> None:
        layers += [nn.BatchNorm2d(width, affine=bias), nn.LeakyReLU(_TOLL_MNIST_SLOPE)]

    def encoder(self, detector, n_features: int, out_dim: int, bias: bool = True) -> nn.Sequential:
        self.check(detector, n_features)
        sizes = self._sizes(detector, n_features)
        layers: list[nn.Module] = [nn.Unflatten(1, sizes[0])]
        for k, (c_out, kernel, stride) in enumerate(_TOLL_MNIST_LAYERS):
            layers.append(nn.Conv2d(sizes[k][0], c_out, kernel, stride=stride, bias=bias))
            if k < len(_TOLL_MNIST_LAYERS) - 1:
                self._activation(layers, c_out, bias)
        c, h, w = sizes[-1]
        layers += [nn.Flatten(), nn.Linear(c * h * w, out_dim, bias=bias)]
        return nn.Sequential(*layers)

    def decoder(self, detector, in_dim: int, n_features: int, n_outputs: int = 1,
                bias: bool = True) -> nn.Sequential:
        self.check(detector, n_features)
        sizes = self._sizes(detector, n_features)
        c, h, w = sizes[-1]
        layers: list[nn.Module] = [nn.Linear(in_dim, c * h * w, bias=bias), nn.Unflatten(1, (c, h, w))]
        for k in reversed(range(len(_TOLL_MNIST_LAYERS))):
            _, kernel, stride = _TOLL_MNIST_LAYERS[k]
            (c_in, h_in, w_in), (c_out, h_out, w_out) = sizes[k + 1], sizes[k]
            last = k == 0
            c_out = c_out * n_outputs if last else c_out
            padding = (h_out - ((h_in - 1) * stride + kernel), w_out - ((w_in - 1) * stride + kernel))
            layers.append(nn.ConvTranspose2d(c_in, c_out, kernel, stride=stride, output_padding=padding, bias=bias))
            if not last:
                self._activation(layers, c_out, bias)
        layers.append(nn.Flatten())
        return nn.Sequential(*layers)


def model_image_shape(detector):
    """``(C, H, W)`` of a fitted detector with an image backbone, else None."""
    if not is_image_backbone(getattr(detector, "backbone", None)) or not hasattr(detector, "n_features_in_"):
        return None
    return image_shape(detector, detector.n_features_in_)


def is_image_backbone(name) -> bool:
    """Whether ``name`` is one of this module's image backbones."""
    return isinstance(name, str) and name in IMAGE_BACKBONES


IMAGE_BACKBONES = {backbone.name: backbone for backbone in (ConvBackbone(), TollMNISTBackbone())}
"""The image backbones by name; :mod:`pyod_ae_ext.backbones` registers them."""

__all__ = ["ConvBackbone", "TollMNISTBackbone", "IMAGE_BACKBONES", "image_shape", "is_image_backbone",
           "model_image_shape"]
