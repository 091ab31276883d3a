"""Network building blocks shared by the autoencoder families."""
from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
    "identity": nn.Identity,
}


def mlp(
    dims,
    activation: str = "relu",
    dropout: float = 0.0,
    batch_norm: bool = False,
    activate_last: bool = False,
    bias: bool = True,
) -> nn.Sequential:
    """A multi-layer perceptron through the widths ``dims`` (input first).

    Hidden layers are Linear -> [BatchNorm] -> activation -> [Dropout]; the last layer
    is a plain Linear unless ``activate_last``.
    """
    layers: list[nn.Module] = []
    n_layers = len(dims) - 1
    for i, (width_in, width_out) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(width_in, width_out, bias=bias))
        if i < n_layers - 1 or activate_last:
            if batch_norm:
                layers.append(nn.BatchNorm1d(width_out, affine=bias))
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class EncoderDecoder(nn.Module):
    """An ``encoder`` and a ``decoder``; ``forward(x)`` returns ``(code, reconstruction)``."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (latent code, reconstruction)."""
        z = self.encoder(x)
        return z, self.decoder(z)


class AutoEncoderNet(EncoderDecoder):
    """MLP encoder ``n_features -> hidden_dims -> latent_dim`` and its mirror image as decoder."""

    def __init__(self, n_features, hidden_dims, latent_dim, activation="relu",
                 dropout=0.0, batch_norm=False, bias=True, encoder_out=None):
        widths = [n_features, *hidden_dims]
        super().__init__(mlp([*widths, encoder_out or latent_dim], activation, dropout, batch_norm, bias=bias),
                         mlp([latent_dim, *reversed(widths)], activation, dropout, batch_norm, bias=bias))
