"""AE-1SVM: autoencoder + one-class SVM on random Fourier features (Nguyen & Vien, 2018)."""
from __future__ import annotations

import math

import torch
from torch import nn

from pyod_ae_ext.engine import AutoEncoderDetector, squared_error
from pyod_ae_ext.validation import check_choice, check_number
from pyod_ae_ext.errors import ParameterError
from pyod_ae_ext.nets import ACTIVATIONS, EncoderDecoder
from pyod_ae_ext.optim import FlatAdam
from pyod_ae_ext.training import Callback

# Rows of the training data used for the median heuristic (pairwise distances are quadratic).
_MEDIAN_HEURISTIC_ROWS = 2000


class RandomFourierFeatures(nn.Module):
    """Random Fourier features of the RBF kernel ``k(a, b) = exp(-gamma ||a - b||^2)``.

    ``phi(z) = sqrt(2 / D) cos(omega^T z + b)`` with ``omega ~ N(0, 2 gamma I)`` and
    ``b ~ U[0, 2 pi]`` (Rahimi & Recht, 2007), so that ``E[phi(a) . phi(b)] = k(a, b)``.
    ``omega`` is stored as ``sqrt(2 gamma) * unit`` with ``unit ~ N(0, I)``; ``unit``,
    ``b`` and ``gamma`` are buffers: drawn (or set) once, never trained, saved with the model.
    """

    def __init__(self, in_dim: int, n_features: int, gamma: float = 1.0):
        super().__init__()
        self.register_buffer("omega_unit", torch.randn(in_dim, n_features))
        self.register_buffer("phase", torch.rand(n_features) * (2 * math.pi))
        self.register_buffer("gamma", torch.tensor(float(gamma)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        omega = self.omega_unit * torch.sqrt(2 * self.gamma)
        return math.sqrt(2.0 / self.phase.numel()) * torch.cos(z @ omega + self.phase)


class AE1SVMNet(nn.Module):
    """Autoencoder, RFF map of its code and the linear one-class SVM ``(w, rho)`` on it."""

    def __init__(self, autoencoder: EncoderDecoder, latent_dim: int, n_features_rff: int, gamma: float,
                 code_activation: str = "identity"):
        super().__init__()
        self.encoder = autoencoder.encoder
        if code_activation != "identity":
            self.encoder.append(ACTIVATIONS[code_activation]())
        self.decoder = autoencoder.decoder
        self.rff = RandomFourierFeatures(latent_dim, n_features_rff, gamma)
        # w starts small and random, rho at 0; both are trained with the network.
        self.w = nn.Parameter(torch.randn(n_features_rff) / math.sqrt(n_features_rff))
        self.rho = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor):
        """Return (code, reconstruction, w^T phi(code))."""
        z = self.encoder(x)
        return z, self.decoder(z), self.rff(z) @ self.w


class _KernelWidthAndRho(Callback):
    """Before training: gamma by the median heuristic (``gamma="auto"``); after: the exact rho."""

    def __init__(self, detector, X):
        self.detector, self.X = detector, X

    def on_train_begin(self, loop):
        if self.detector.gamma == "auto":
            loop.net.rff.gamma.fill_(median_heuristic_gamma(loop.net, self.X, self.detector.random_generator()))

    def on_train_end(self, loop):
        self.detector._solve_rho(loop.train)


class DeepOCSVM(AutoEncoderDetector):
    """AE-1SVM: autoencoder and one-class SVM trained jointly end to end.

    M.-N. Nguyen and N. A. Vien, "Scalable and interpretable one-class SVMs with deep
    learning and random Fourier features", ECML-PKDD 2018 (arXiv:1804.04888). The code
    ``E(x)`` of an autoencoder is mapped by random Fourier features ``phi`` that
    approximate an RBF kernel, and a linear one-class SVM ``(w, rho)`` on ``phi`` is
    trained with the network by minibatch gradient descent on the paper's joint objective

        alpha ||X - D(E(X))||^2 + 1/2 ||w||^2 - rho
              + 1/(nu N) sum_i max(0, rho - w^T phi(E(x_i)))

    with ``phi(z) = sqrt(2/D) cos(omega^T z + b)``, ``omega ~ N(0, 2 gamma I)``,
    ``b ~ U[0, 2 pi]`` (``D = n_features_rff``; ``omega`` and ``b`` are drawn from the
    seed when the network is built and never trained). ``||.||^2`` is the squared error
    summed over the (standardised) features of a row. The anomaly score is the OC-SVM
    decision value with the sign flipped,

        score(x) = rho - w^T phi(E(x)),

    positive outside the learnt boundary. Per row, the training loss is
    ``alpha ||x - D(E(x))||^2 + 1/2 ||w||^2 - rho + 1/nu max(0, rho - w^T phi(E(x)))``,
    whose mean over a batch is the objective above on that batch. Engine weight decay
    (if any) applies to the network weights only, not to ``w`` and ``rho`` (the SVM's
    own regulariser is the ``1/2 ||w||^2`` term).

    After the last epoch ``rho`` is set to its exact minimiser given the network and
    ``w``: in ``rho`` the objective is convex and piecewise linear, minimised at the
    nu-quantile of the training margins ``w^T phi(E(x_i))`` (as ``rho`` of the nu-SVM is
    read off its margins, Schoelkopf et al. 2001). The nu-property then holds exactly on
    the training rows instead of only on average around the optimum Adam hovers at.

    Parameters
    ----------
    nu : float in (0, 1], default 0.1
        The OC-SVM's nu: an upper bound on the fraction of training rows outside the
        boundary (positive score) and a lower bound on the fraction of support vectors.
    gamma : float > 0 or "auto", default "auto"
        RBF kernel width, ``k(a, b) = exp(-gamma ||a - b||^2)``. ``"auto"`` is the median
        heuristic (Gretton et al.): ``gamma = 1 / (2 m^2)`` where ``m`` is the median
        Euclidean distance between the codes ``E(x_i)`` of the training rows under the
        freshly initialised encoder (at most 2000 rows, chosen by seed). It is computed
        once, before training, and then fixed; it is saved with the model and exposed
        as ``gamma_`` after fitting.
    n_features_rff : int, default 500
        Number ``D`` of random Fourier features.
    alpha : float >= 0 or "auto", default "auto"
        Weight of the reconstruction term (summed over features). ``"auto"`` is
        ``1 / n_features``, i.e. the per-element mean squared error with weight 1, which
        is the reconstruction loss of the authors' implementation (minh-nghia/AE-1SVM,
        ``alpha=1``). Much larger weights let the reconstruction term spread the codes
        until the kernel matrix is nearly diagonal and the SVM degenerates (rho -> 0):
        one-class ADBench split, seed 0, linear code: test ROC-AUC 0.49 (cardio) and
        0.68 (breastw) with ``alpha=1`` against 0.94 and 0.99 with ``alpha=0.01``.
    code_activation : str, default "tanh"
        Activation applied to the code ``E(x)`` (one of the engine's activations;
        "identity" for a linear code). The authors' networks apply the autoencoder's
        activation (sigmoid/tanh in their experiments) to the bottleneck as well; a
        bounded code keeps the kernel width fixed at fit meaningful as training
        changes the scale of the codes.
    n_members, member_subsample : "auto", default "auto"
        Members as in :class:`pyod_ae_ext.engine.AutoEncoderDetector` ("auto": 10
        networks on 512 rows each with the "mlp" backbone); ``n_members=1`` with
        ``latent_knn_weight=0`` is the paper's single network.
    **engine_params
        See :class:`pyod_ae_ext.engine.AutoEncoderDetector`.

    Attributes
    ----------
    gamma_ : float
        The kernel width used (the median-heuristic value when ``gamma="auto"``).
    rho_ : float
        The offset ``rho``: trained with the network, then set to its exact minimiser
        given the trained network and ``w`` (the nu-quantile of the training margins
        ``w^T phi(E(x_i))``, see :meth:`_solve_rho`), so that the nu-property holds on
        the training rows: fewer than ``nu N`` lie outside (score > 0), at least
        ``nu N`` on or outside the boundary.

    Notes
    -----
    The score is bounded: the code passes through ``code_activation`` (tanh by
    default) and the SVM sees it through cosines, so a row far outside the training
    data (an extreme value, even one the engine clips at ``INPUT_BOUND``) gets a finite
    score, but its saturated code may land inside the boundary: unlike the
    reconstruction-error families, AE-1SVM does not flag such rows reliably (nor a
    training row 17 standard deviations out; tests/test_extreme_values.py).

    PyOD's ``AE1SVM`` trains a related network (hinge ``max(0, 1 - f(x))`` without the
    ``rho`` and ``||w||`` terms, trainable random features) but scores rows by their
    reconstruction error; this detector scores with the SVM decision value, as in the paper.
    """

    def __init__(self, nu=0.1, gamma="auto", n_features_rff=500, alpha="auto", code_activation="tanh",
                 n_members="auto", member_subsample="auto", **engine_params):
        # members by default: RESULTS "Members" (one-class 82.8 -> 88.1, unsupervised 72.9 -> 79.9)
        super().__init__(n_members=n_members, member_subsample=member_subsample, **engine_params)
        self.nu = nu
        self.gamma = gamma
        self.n_features_rff = n_features_rff
        self.alpha = alpha
        self.code_activation = code_activation

    def check_family_params(self):
        check_number("nu", self.nu, 0, 1, low_open=True)
        if not (isinstance(self.gamma, str) and self.gamma == "auto"):
            if isinstance(self.gamma, str):
                raise ParameterError(f"gamma must be a positive number or 'auto', got {self.gamma!r}")
            check_number("gamma", self.gamma, 0, low_open=True)
        check_number("n_features_rff", self.n_features_rff, 1, integer=True)
        if not (isinstance(self.alpha, str) and self.alpha == "auto"):
            if isinstance(self.alpha, str):
                raise ParameterError(f"alpha must be a number >= 0 or 'auto', got {self.alpha!r}")
            check_number("alpha", self.alpha, 0)
        check_choice("code_activation", self.code_activation, sorted(ACTIVATIONS))

    def build_network(self, n_features):
        autoencoder = EncoderDecoder(self.make_encoder(n_features, self.latent_dim),
                                     self.make_decoder(self.latent_dim, n_features))
        gamma = 1.0 if self.gamma == "auto" else float(self.gamma)
        return AE1SVMNet(autoencoder, self.latent_dim, int(self.n_features_rff), gamma, self.code_activation)

    def training_callbacks(self, X):
        return [_KernelWidthAndRho(self, X)]

    @torch.no_grad()
    def _solve_rho(self, train):
        """Set rho to its exact minimiser given the trained network and ``w``.

        In rho alone the objective is ``-rho + 1/(nu N) sum_i max(0, rho - m_i)`` with
        the margins ``m_i = w^T phi(E(x_i))``: convex and piecewise linear, with slope
        ``-1 + #{m_i < rho} / (nu N)``. It is minimised at the ``k``-th smallest margin,
        ``k = ceil(nu N)`` (the nu-quantile of the margins), where the slope changes sign.
        Then fewer than ``nu N`` training rows lie outside (score > 0) and at least
        ``nu N`` on or outside the boundary: the nu-property of the one-class SVM
        (Schoelkopf et al., "Estimating the support of a high-dimensional
        distribution", Neural Computation 13(7), 2001, Proposition 4), which
        minibatch Adam only approaches while it keeps stepping rho around the optimum.
        """
        net = self.net_
        net.eval()
        margins = self.map_batches(lambda batch: net(batch)[2], train)
        k = min(max(int(math.ceil(self.nu * margins.numel() - 1e-9)), 1), margins.numel())
        net.rho.fill_(torch.kthvalue(margins.float().cpu(), k).values.item())

    def make_optimizer(self, net):
        svm = [net.w, net.rho]
        others = [p for name, p in net.named_parameters() if p.requires_grad and name not in ("w", "rho")]
        return FlatAdam([{"params": others, "weight_decay": self.weight_decay},
                         {"params": svm, "weight_decay": 0.0}], lr=self.lr)

    def row_loss(self, net, x, target):
        _, recon, margin = net(x)
        svm_constant = 0.5 * net.w.pow(2).sum() - net.rho
        hinge = torch.clamp(net.rho - margin, min=0)
        return self._alpha() * squared_error(recon, target) + svm_constant + hinge / self.nu

    def _alpha(self) -> float:
        return 1.0 / self.n_features_in_ if self.alpha == "auto" else float(self.alpha)

    def row_score(self, net, x):
        _, _, margin = net(x)
        return net.rho - margin

    @property
    def gamma_(self) -> float:
        return float(self.net_.rff.gamma)

    @property
    def rho_(self) -> float:
        return float(self.net_.rho.detach())


@torch.no_grad()
def median_heuristic_gamma(net: AE1SVMNet, X: torch.Tensor, generator: torch.Generator) -> float:
    """``1 / (2 median^2)`` of the pairwise distances between codes of (up to 2000) rows of ``X``."""
    if X.shape[0] > _MEDIAN_HEURISTIC_ROWS:
        rows = torch.randperm(X.shape[0], generator=generator)[:_MEDIAN_HEURISTIC_ROWS].to(X.device)
        X = X[rows]
    was_training = net.training
    net.eval()
    try:
        z = net.encoder(X)
    finally:
        net.train(was_training)
    distances = torch.pdist(z.double())
    median = float(distances.median()) if distances.numel() else 0.0
    if not math.isfinite(median) or median <= 1e-12:
        return 1.0  # degenerate codes (all equal): fall back to a unit width
    return 1.0 / (2.0 * median ** 2)
