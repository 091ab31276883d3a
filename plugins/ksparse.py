"""k-sparse autoencoder (Makhzani & Frey 2013) scored by reconstruction error."""
from __future__ import annotations

import math

import torch
from torch import nn

from pyod_ae_ext.engine import AutoEncoderDetector, squared_error
from pyod_ae_ext.validation import check_number
from pyod_ae_ext.errors import ParameterError
from pyod_ae_ext.training import Callback, EarlyStopping


def _round_half_up(value: float) -> int:
    return int(math.floor(value + 0.5))


def keep_top_k(z: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest entries of each row of ``z``, zero the rest.

    The gradient flows through the kept entries only (the support is treated as fixed,
    as in Makhzani & Frey's back-propagation through Gamma).
    """
    if k >= z.shape[1]:
        return z
    values, index = z.topk(k, dim=1)
    return torch.zeros_like(z).scatter(1, index, values)


class KSparseNet(nn.Module):
    """Linear code layer with a top-k support, and a decoder (tied to the encoder or not).

    ``encoder`` maps x to the dense linear code ``z`` (its last layer is linear);
    ``forward(x, support)`` returns ``(sparse code h, reconstruction)``.
    """

    def __init__(self, encoder, decoder, n_features, latent_dim):
        super().__init__()
        self.tied = decoder is None
        self.encoder = encoder
        if self.tied:  # x_hat = W h + b' with W the encoder's weight (paper, section 2)
            self.decoder_bias = nn.Parameter(torch.zeros(n_features))
        else:
            self.decoder = decoder
        self.support = latent_dim

    def decode(self, h):
        if self.tied:
            return h @ self.encoder[0].weight + self.decoder_bias
        return self.decoder(h)

    def forward(self, x, support=None):
        h = keep_top_k(self.encoder(x), self.support if support is None else support)
        return h, self.decode(h)


class KSparseAE(AutoEncoderDetector):
    """k-sparse autoencoder scored by squared reconstruction error.

    A. Makhzani, B. Frey, "k-Sparse Autoencoders", ICLR 2014 (arXiv:1312.5663),
    Algorithm 1. The code is linear, z = W^T x + b; only its k largest entries are
    kept, h = z on supp_k(z) and 0 elsewhere; the reconstruction is x_hat = W h + b'
    (tied weights, the paper's model) and training minimises ||x - x_hat||_2^2, the
    error back-propagated through the k kept units only. At scoring the support is the
    alpha * k largest units (the paper's encoding step 2, alpha >= 1). The anomaly score
    is the squared reconstruction error with that support::

        score(x) = ||x - D(supp_{alpha k}(E(x)))||_2^2

    The code may be overcomplete (``latent_dim`` > number of features): the sparsity,
    not the width, limits what the model can reproduce. To avoid dead units the paper
    starts with a large k and lowers it linearly to the target; ``sparsity_schedule``
    is the fraction of ``epochs`` spent lowering it from ``latent_dim`` to ``k``.

    Parameters
    ----------
    k : int, default 4
        Active units per row during training (<= ``latent_dim``). Keep it below the
        number of features: k linear units can span a k-dimensional subspace around
        every row, so with k >= n_features nearly any row is reproduced.
    alpha : float, default 1.0
        Support multiplier at scoring: ``min(latent_dim, round(alpha * k))`` units
        (halves round up) are kept (the paper uses alpha between 1 and 4).
    tied : bool, default True
        Decoder weight = transposed encoder weight, as in the paper. Needs
        ``hidden_dims=()`` (the paper's single-layer model); set ``tied=False`` for
        a deep encoder and a mirrored decoder around the k-sparse linear code.
    sparsity_schedule : float in [0, 1], default 0.5
        Fraction of the epochs over which k decreases linearly from ``latent_dim`` to
        ``k`` (0 trains with ``k`` from the first step).
    hidden_dims : sequence of int, default ()
        Hidden layers before the code (and mirrored after it when not tied); the
        engine's ``activation`` applies to them only, the code stays linear.
    latent_dim : int, default 32
        Width of the code layer (overcomplete allowed).
    n_members, member_subsample : "auto", default "auto"
        Members as in :class:`pyod_ae_ext.engine.AutoEncoderDetector` ("auto": 10
        networks on 512 rows each with the "mlp" backbone); ``n_members=1`` with
        ``latent_knn_weight=0`` is the paper's single network.
    **engine_params
        See :class:`pyod_ae_ext.engine.AutoEncoderDetector`. ``activity_l1`` penalises
        the dense linear code ``z`` (and the hidden activations) before the top-k.

    Notes
    -----
    :meth:`feature_contributions` returns the per-feature squared errors, whose row sum
    is the score. :meth:`codes` returns the sparse codes.
    """

    def __init__(self, k=4, alpha=1.0, tied=True, sparsity_schedule=0.5, hidden_dims=(), latent_dim=32,
                 n_members="auto", member_subsample="auto", **engine_params):
        # members by default: RESULTS "Members" (one-class 87.8 -> 88.3, unsupervised 74.3 -> 80.4)
        super().__init__(hidden_dims=hidden_dims, latent_dim=latent_dim, n_members=n_members,
                         member_subsample=member_subsample, **engine_params)
        self.k = k
        self.alpha = alpha
        self.tied = tied
        self.sparsity_schedule = sparsity_schedule

    def check_family_params(self):
        check_number("k", self.k, 1, self.latent_dim, integer=True)
        check_number("alpha", self.alpha, 1)
        check_number("sparsity_schedule", self.sparsity_schedule, 0, 1)
        if not isinstance(self.tied, bool):
            raise ParameterError(f"tied must be True or False, got {self.tied!r}")
        if self.tied and self.backbone != "mlp":
            raise ParameterError(f"tied=True ties the decoder to a single linear encoder layer and needs "
                                 f"backbone='mlp', got backbone={self.backbone!r}; set tied=False")
        if self.tied and self.hidden_widths():
            raise ParameterError(f"tied=True is the paper's single-layer model and needs hidden_dims=(), "
                                 f"got hidden_dims={self.hidden_dims!r}; set tied=False for a deep encoder")

    @property
    def scoring_support_(self) -> int:
        """Units kept at scoring: ``min(latent_dim, round(alpha * k))``."""
        return min(self.latent_dim, _round_half_up(self.alpha * self.k))

    def build_network(self, n_features):
        decoder = None if self.tied else self.make_decoder(self.latent_dim, n_features)
        net = KSparseNet(self.make_encoder(n_features, self.latent_dim), decoder, n_features, self.latent_dim)
        net.support = self.k
        return net

    def training_callbacks(self, X):
        warmup = _round_half_up(self.sparsity_schedule * self.epochs)
        # early stopping compares only epochs trained with the final support k
        return [SupportSchedule(self.latent_dim, self.k, warmup),
                EarlyStopping(self.patience, start_epoch=warmup, evaluate_before_start=False)]

    def row_loss(self, net, x, target):
        # training: the (scheduled) support net.support; validation loss: the target k
        _, recon = net(x, None if net.training else self.k)
        return squared_error(recon, target)

    def row_score(self, net, x):
        _, recon = net(x, self.scoring_support_)
        return squared_error(recon, x)

    def row_code(self, net, x):
        """The sparse code with the scoring support."""
        return net(x, self.scoring_support_)[0]

    def row_contributions(self, net, x):
        _, recon = net(x, self.scoring_support_)
        return (recon - x).pow(2)

    def row_reconstruction(self, net, x):
        return net(x, self.scoring_support_)[1]

    def codes(self, X, support=None):
        """Sparse codes of ``X``: the ``support`` largest units (default: the scoring support).

        Returns
        -------
        numpy.ndarray, shape (n_samples, latent_dim)
        """
        x = self.network_input(X)
        with self.scoring_context(rows=x.shape[0]):
            h = self.map_batches(lambda batch: self.net_(batch, support or self.scoring_support_)[0], x)
        return h.double().cpu().numpy()


class SupportSchedule(Callback):
    """Training support k: from ``latent_dim`` down to ``k`` linearly over the ``warmup`` epochs, then ``k``."""

    batch_safe = True  # every member follows the same schedule

    def __init__(self, latent_dim: int, k: int, warmup: int):
        self.latent_dim, self.k, self.warmup = latent_dim, k, warmup

    def on_epoch_begin(self, loop, epoch):
        if epoch < self.warmup:
            fraction = (epoch + 1) / self.warmup
            loop.net.support = _round_half_up(self.latent_dim + fraction * (self.k - self.latent_dim))
        else:
            loop.net.support = self.k
