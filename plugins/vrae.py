"""Variational recurrent autoencoder (Fabius & van Amersfoort 2015): the VAE on a recurrent backbone."""
from __future__ import annotations

from pyod_ae_ext.errors import ParameterError
from pyod_ae_ext.plugins.vae import VAE

RECURRENT_BACKBONES = ("lstm", "gru")


class VRAE(VAE):
    """Variational recurrent autoencoder for sequences.

    O. Fabius, J. R. van Amersfoort, "Variational recurrent auto-encoders", ICLR 2015
    workshop (arXiv:1412.6581). A recurrent encoder reads the sequence and its final
    hidden state gives the Gaussian posterior q(z|x) = N(mu, diag sigma^2) (section 2.2,
    eqs. 4-5: linear maps of the last hidden state); the decoder's initial hidden state is
    ``tanh(W z + b)`` (eq. 6) and a recurrent layer with a per-step linear head
    reconstructs the sequence. The layers are the ``"lstm"`` or ``"gru"`` backbone
    (:mod:`pyod_ae_ext.backbones_sequence`); the decoder also receives ``z`` at every
    step (the paper feeds back its own outputs; repeating the code is the usual
    variant for reconstruction, it keeps every step conditioned on ``z``).

    Everything else is :class:`~pyod_ae_ext.plugins.vae.VAE`'s: the training objective
    is the negative ELBO with the reparameterisation trick (Kingma & Welling 2014,
    eq. 10; Fabius & van Amersfoort eq. 3), with a Gaussian decoder by default (the
    paper's Bernoulli decoder is ``likelihood="bernoulli"``), and the scores are
    the reconstruction probability (An & Cho 2015), the reconstruction error, or the
    2-Wasserstein distance between latent posteriors, the score Pereira & Silveira
    (2018) use with a VRAE on energy time series.

    Rows are sequences laid out time-major, ``input_shape=(T, F)`` (None: each column
    is a time step of one channel); :mod:`pyod_ae_ext.windows` cuts a long series into
    such rows.

    Parameters
    ----------
    backbone : {"lstm", "gru"}, default "lstm"
    hidden_dims : sequence of int, default (64,)
        Widths of the stacked recurrent layers (the decoder mirrors them).
    **vae_params
        See :class:`~pyod_ae_ext.plugins.vae.VAE` and the engine.
    """

    def __init__(self, backbone="lstm", hidden_dims=(64,), **vae_params):
        super().__init__(backbone=backbone, hidden_dims=hidden_dims, **vae_params)

    def check_family_params(self):
        super().check_family_params()
        if self.backbone not in RECURRENT_BACKBONES:
            raise ParameterError(f"vrae is recurrent: backbone must be one of {list(RECURRENT_BACKBONES)}, got "
                                 f"{self.backbone!r}; use detector 'vae' for other backbones")
