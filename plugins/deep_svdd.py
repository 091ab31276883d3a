"""Deep SVDD: deep support vector data description (Ruff et al., 2018)."""
from __future__ import annotations

import torch
from torch import nn

from pyod_ae_ext.engine import AutoEncoderDetector, squared_error
from pyod_ae_ext.validation import check_choice, check_number
from pyod_ae_ext.errors import ParameterError
from pyod_ae_ext.nets import EncoderDecoder
from pyod_ae_ext.training import Callback, EarlyStopping, TrainingLoop

# Bounded activations let the network saturate to a constant map (Ruff et al., Prop. 3).
_BOUNDED_ACTIVATIONS = ("tanh", "sigmoid")


class DeepSVDDNet(nn.Module):
    """Bias-free encoder ``phi(x; W)`` with the fixed centre ``c`` and radius ``R`` as buffers."""

    def __init__(self, encoder, latent_dim):
        super().__init__()
        self.encoder = encoder
        self.register_buffer("center", torch.zeros(latent_dim))
        self.register_buffer("radius", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Squared distance ``||phi(x) - c||^2`` of each row."""
        return (self.encoder(x) - self.center).pow(2).sum(dim=1)


class DeepSVDD(AutoEncoderDetector):
    """Deep SVDD: a bias-free network trained to map normal data close to a fixed centre.

    L. Ruff, R. Vandermeulen, N. Goernitz, L. Deecke, S. A. Siddiqui, A. Binder,
    E. Mueller, M. Kloft, "Deep one-class classification", ICML 2018. The network
    ``phi(.; W)`` maps a row to ``latent_dim`` outputs; ``c`` is the mean of the outputs of
    the freshly initialised network on the training rows, with coordinates closer to
    0 than ``eps`` pushed to ``+-eps`` (as in the authors' code), and is never trained.

    ``objective="one-class"`` (Eq. 4 of the paper)::

        min_W  1/n sum_i ||phi(x_i; W) - c||^2  +  lambda/2 sum_l ||W^l||_F^2
        score(x) = ||phi(x; W) - c||^2

    ``objective="soft-boundary"`` (Eq. 3)::

        min_{R, W}  R^2 + 1/(nu n) sum_i max(0, ||phi(x_i; W) - c||^2 - R^2)
                    + lambda/2 sum_l ||W^l||_F^2
        score(x) = ||phi(x; W) - c||^2 - R^2                         (Eq. 5)

    The weight-decay term is Adam's ``weight_decay = lambda``. For the soft boundary, W is
    trained by minibatch Adam with R fixed, and after every epoch past
    ``warm_up_epochs`` (and in any case after the last epoch) R is solved exactly as
    the (1 - nu)-quantile of the distances ``||phi(x_i) - c||`` of the training rows
    (Section 3.1 of the paper: alternate between W for k epochs and R; k = 1 here).
    Per row, the loss is ``R^2 + 1/nu max(0, d_i - R^2)``, whose batch mean is Eq. 3.

    As the paper requires to rule out the trivial solution (hypersphere collapse,
    Propositions 2 and 3), the network has no bias terms (BatchNorm, if enabled, has
    no affine parameters) and bounded activations (tanh, sigmoid) are refused.

    Parameters
    ----------
    objective : {"one-class", "soft-boundary"}, default "one-class"
    nu : float in (0, 1], default 0.1
        Soft boundary only: the fraction of training rows allowed outside the sphere
        (the radius is their (1 - nu)-quantile).
    eps : float > 0, default 0.1
        Centre coordinates with ``|c_j| < eps`` are set to ``+-eps`` (sign of ``c_j``;
        ``+eps`` at exactly 0), so that a zero-weight network cannot reach ``c``.
    warm_up_epochs : int, default 10
        Soft boundary only: epochs of W training before R is first solved.
    pretrain_epochs : int, default 0
        Epochs of autoencoder pretraining (a bias-free decoder mirroring the network,
        squared reconstruction error) before ``c`` is computed; the paper initialises
        the network from such an autoencoder. 0 skips it.
    activation : str, default "leaky_relu"
        As in the paper's networks; "tanh" and "sigmoid" are refused (bounded).
    weight_decay : float, default 1e-6
        The lambda of the objectives (the authors' default).
    n_members, member_subsample : "auto", default "auto"
        Members as in :class:`pyod_ae_ext.engine.AutoEncoderDetector` ("auto": 10
        networks on 512 rows each with the "mlp" backbone); ``n_members=1`` with
        ``latent_knn_weight=0`` is the paper's single network.
    **engine_params
        See :class:`pyod_ae_ext.engine.AutoEncoderDetector`.

    Attributes
    ----------
    center_ : ndarray of shape (latent_dim,)
        The centre ``c``.
    c_ : torch.Tensor of shape (latent_dim,)
        The centre as PyOD's ``DeepSVDD.c_`` holds it: a tensor on the model's device
        (a copy; changing it does not change the model).
    radius_ : float
        ``R`` (0 for the one-class objective).
    model_ : torch.nn.Module
        The fitted network (``net_``), as in PyOD.
    """

    def __init__(self, objective="one-class", nu=0.1, eps=0.1, warm_up_epochs=10, pretrain_epochs=0,
                 activation="leaky_relu", weight_decay=1e-6, n_members="auto", member_subsample="auto",
                 **engine_params):
        # members by default: RESULTS "Members" (one-class 83.6 -> 88.6, unsupervised 69.6 -> 77.4)
        super().__init__(activation=activation, weight_decay=weight_decay, n_members=n_members,
                         member_subsample=member_subsample, **engine_params)
        self.objective = objective
        self.nu = nu
        self.eps = eps
        self.warm_up_epochs = warm_up_epochs
        self.pretrain_epochs = pretrain_epochs

    def check_family_params(self):
        check_choice("objective", self.objective, ["one-class", "soft-boundary"])
        check_number("nu", self.nu, 0, 1, low_open=True)
        check_number("eps", self.eps, 0, low_open=True)
        check_number("warm_up_epochs", self.warm_up_epochs, 0, integer=True)
        check_number("pretrain_epochs", self.pretrain_epochs, 0, integer=True)
        if self.activation in _BOUNDED_ACTIVATIONS:
            raise ParameterError(f"activation {self.activation!r} is bounded, which lets Deep SVDD collapse "
                                 f"to a constant map (Ruff et al. 2018, Prop. 3); use e.g. 'leaky_relu' or 'relu'")

    def build_network(self, n_features):
        # bias=False also makes BatchNorm non-affine (no learnt shift): no bias terms anywhere.
        return DeepSVDDNet(self.make_encoder(n_features, self.latent_dim, bias=False), self.latent_dim)

    # ---- training -----------------------------------------------------------

    def training_callbacks(self, X):
        callbacks = [_PretrainAndCenter(self)]
        if self.objective == "soft-boundary":
            # R is solved after every epoch past the warm-up (and after the last one); before
            # that R = 0 and the validation loss is another objective, so it is not compared.
            first_solved = min(self.warm_up_epochs, max(self.epochs - 1, 0))
            callbacks += [_RadiusSolver(self, first_solved), EarlyStopping(self.patience, start_epoch=first_solved)]
        return callbacks

    def _pretrain(self, loop):
        """Train ``encoder`` as the encoder of a bias-free autoencoder (own optimiser and shuffling)."""
        # the encoder is shared: pretraining updates the SVDD network
        decoder = self.make_decoder(self.latent_dim, self.n_features_in_, bias=False).to(loop.train.device)
        autoencoder = EncoderDecoder(loop.net.encoder, decoder)
        pretraining = TrainingLoop(self, autoencoder, loop.train,
                                   loss=lambda net, batch: self.batch_loss(net, batch, row_loss=_reconstruction_loss))
        try:
            pretraining.run(self.pretrain_epochs)
        finally:
            pretraining.optimizer.release()
        self.history_["pretrain_loss"] = self.history_["loss"]
        self.history_["loss"] = []

    @torch.no_grad()
    def _init_center(self, train):
        net = self.net_
        net.eval()
        c = self.map_batches(net.encoder, train).mean(dim=0)
        near_zero = c.abs() < self.eps
        c[near_zero] = torch.where(c[near_zero] < 0, -self.eps, self.eps)
        net.center.copy_(c)

    @torch.no_grad()
    def _solve_radius(self, train):
        """R = the (1 - nu)-quantile of the training rows' distances to c (paper, Section 3.1)."""
        net = self.net_
        net.eval()
        distances = self.map_batches(net, train).sqrt()
        net.radius.fill_(torch.quantile(distances.double(), 1 - self.nu).item())

    def row_loss(self, net, x, target):
        distance = net(x)
        if self.objective == "one-class":
            return distance
        r2 = net.radius.pow(2)
        return r2 + torch.clamp(distance - r2, min=0) / self.nu

    def row_score(self, net, x):
        distance = net(x)
        if self.objective == "one-class":
            return distance
        return distance - net.radius.pow(2)

    # ---- fitted attributes ----------------------------------------------------

    @property
    def center_(self):
        return self.model_.center.detach().cpu().double().numpy()

    @property
    def c_(self) -> torch.Tensor:
        return self.model_.center.detach().clone()

    @property
    def radius_(self) -> float:
        return float(self.model_.radius)


def _reconstruction_loss(net, x, target):
    return squared_error(net(x)[1], target)


class _PretrainAndCenter(Callback):
    """Before training: optional autoencoder pre-training, then the centre c from the initial codes."""

    def __init__(self, detector):
        self.detector = detector

    def on_train_begin(self, loop):
        if self.detector.pretrain_epochs:
            self.detector._pretrain(loop)
        self.detector._init_center(loop.train)


class _RadiusSolver(Callback):
    """Soft boundary: solve R exactly after every epoch from ``first_solved`` on, and after the last."""

    def __init__(self, detector, first_solved: int):
        self.detector, self.first_solved = detector, first_solved

    def on_epoch_end(self, loop, epoch, logs):
        if epoch >= self.first_solved or epoch == loop.epochs - 1:
            self.detector._solve_radius(loop.train)
