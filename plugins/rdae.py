"""Robust deep autoencoders RDAE-l1 and RDAE-l2,1 (Zhou & Paffenroth, KDD 2017).

C. Zhou and R. C. Paffenroth, "Anomaly Detection with Robust Deep Autoencoders",
Proc. 23rd ACM SIGKDD (KDD 2017), pp. 665-674, doi:10.1145/3097983.3098052.

The training data are split as ``X = L_D + S``: ``L_D`` is the part the autoencoder
reconstructs well and ``S`` a sparse part that holds what it cannot (the outliers).
The objective (the paper's robust deep autoencoder with an l1 penalty, and its group
variant with an l2,1 penalty) is

    min_{theta, S}  ||L_D - D_theta(E_theta(L_D))||_2 + lambda * ||S||_1        (RDAE-l1)
    min_{theta, S}  ||L_D - D_theta(E_theta(L_D))||_2 + lambda * ||S||_{2,1}    (RDAE-l2,1)
    subject to      X - L_D - S = 0,

solved by the paper's alternating scheme (its training algorithms for the l1 and the
l2,1 model; the step numbers below follow the project's issue 3): train the network on
``L_D = X - S`` for some epochs, then update ``S`` by the proximal operator of the
sparsity penalty applied to the residual ``X - D(E(L_D))``. The proximal operators are
the small functions :func:`soft_threshold`, :func:`group_shrink` and, for
``lam="auto"``, :func:`auto_lambda`; they are public so they can be tested on their own.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from pyod_ae_ext.validation import check_choice, check_number
from pyod_ae_ext.plugins.autoencoder import AutoEncoder
from pyod_ae_ext.errors import ParameterError
from pyod_ae_ext.thresholding import is_fraction, threshold_labels
from pyod_ae_ext.training import Callback

# --------------------------------------------------------------------------
# proximal operators


def soft_threshold(S: torch.Tensor, lam: float) -> torch.Tensor:
    """Proximal operator of ``lam * ||S||_1`` (elementwise soft-thresholding).

    ``S_ij <- sign(S_ij) * max(|S_ij| - lam, 0)`` (Zhou & Paffenroth 2017,
    S-update of the l1 algorithm). Entries with ``|S_ij| <= lam`` become exact zeros.
    """
    return torch.sign(S) * torch.clamp(S.abs() - lam, min=0.0)


def group_norms(S: torch.Tensor, groups: str = "rows") -> torch.Tensor:
    """Euclidean norm of each group of ``S``: one per row (``"rows"``) or per column (``"columns"``)."""
    return torch.linalg.vector_norm(S, dim=1 if groups == "rows" else 0)


def group_shrink(S: torch.Tensor, lam: float, groups: str = "rows") -> torch.Tensor:
    """Proximal operator of ``lam * ||S||_{2,1}`` (block soft-thresholding).

    Each group ``g`` (a row for ``groups="rows"``, a column for ``groups="columns"``)
    becomes ``g * max(1 - lam / ||g||_2, 0)`` (Zhou & Paffenroth 2017,
    S-update of the l2,1 algorithm; the standard block soft-thresholding prox). A group keeps its direction and
    its norm shrinks by ``lam``; a group with ``||g||_2 <= lam`` becomes exactly zero.
    """
    if groups not in ("rows", "columns"):
        raise ParameterError(f"groups must be 'rows' or 'columns', got {groups!r}")
    norms = group_norms(S, groups)
    factor = torch.where(norms > lam, 1.0 - lam / norms.clamp_min(torch.finfo(S.dtype).tiny),
                         torch.zeros_like(norms))
    return S * (factor[:, None] if groups == "rows" else factor[None, :])


def auto_lambda(magnitudes: torch.Tensor, fraction: float) -> float:
    """The threshold that leaves a ``fraction`` of the ``magnitudes`` above it.

    With ``k = round(fraction * m)`` of ``m`` magnitudes, returns the ``(k+1)``-th
    largest one, so exactly the ``k`` largest magnitudes exceed it (fewer only when the
    ``k``-th and ``(k+1)``-th largest tie). Used with group norms for ``rdae-l21`` and
    absolute entries for ``rdae-l1``: the prox then keeps exactly those groups/entries.
    """
    flat = magnitudes.reshape(-1)
    m = flat.numel()
    k = min(max(int(round(fraction * m)), 0), m)
    if k >= m:
        return 0.0
    # (k+1)-th largest == (m-k)-th smallest
    return float(torch.kthvalue(flat.cpu(), m - k).values)


# --------------------------------------------------------------------------
# the detectors


class _Alternation(Callback):
    """Zhou & Paffenroth 2017, the alternating l1 / l2,1 scheme, on the standardised rows ``X``.

    The loop trains on ``L_D = X - S`` (step 1; ``S = 0`` at first); after every
    ``inner`` epochs this callback reconstructs ``L_D = D(E(L_D))`` (2), sets
    ``S = prox_lambda(X - L_D)`` (3) and ``LS = L_D + S`` (4), checks convergence, and
    hands the loop the new ``L_D = X - S`` to train on; the network and its optimiser
    continue across iterations. With ``inner = 0`` the iterations run after the loop.
    """

    batch_safe = True  # it swaps same-shaped rows and reads the network's weights

    def __init__(self, detector, X: torch.Tensor, inner: int):
        self.detector, self.X, self.inner = detector, X, inner

    def on_train_begin(self, loop):
        self.S = torch.zeros_like(self.X)
        self.LS = self.X
        self.x_norm = torch.linalg.vector_norm(self.X).clamp_min(torch.finfo(self.X.dtype).tiny)
        self.iterations, self.lam, self.converged = 0, None, False
        self.detector.convergence_ = []
        loop.train = self.X

    def on_epoch_end(self, loop, epoch, logs):
        if (epoch + 1) % self.inner:
            return
        self._project(loop)
        if self.converged or self.iterations == self.detector.outer_iterations:
            loop.stop_training = True
            loop.stop_reason = f"RDAE: {self.iterations} alternating iteration(s) done"
        else:
            loop.train = self.X - self.S

    def on_train_end(self, loop):
        while self.inner == 0 and not self.converged and self.iterations < self.detector.outer_iterations:
            self._project(loop)
            loop.train = self.X - self.S
        detector = self.detector
        detector.n_iter_ = self.iterations
        detector.lambda_ = self.lam
        detector._set_sparse_part(self.S.double().cpu().numpy() * detector.scaler_scale_)

    def _project(self, loop):
        detector, X = self.detector, self.X
        L = detector._reconstruct(loop.train)             # 2. L_D = D(E(L_D)); S = X - L_D
        R = X - L
        self.lam = detector._auto_lambda(R) if detector.lam == "auto" else float(detector.lam)
        self.S = detector._prox(R, self.lam)              # 3. S = prox_lambda(S)
        c1 = float(torch.linalg.vector_norm(X - L - self.S) / self.x_norm)
        c2 = float(torch.linalg.vector_norm(self.LS - L - self.S) / self.x_norm)
        detector.convergence_.append((c1, c2))
        self.LS = L + self.S                              # 4. LS = L_D + S
        self.iterations += 1
        self.converged = c1 < detector.tol or c2 < detector.tol


_DECOMPOSITION = ("S_", "L_", "outlier_mask_", "n_iter_", "lambda_", "convergence_")


class _RobustDeepAutoEncoder(AutoEncoder):
    """Shared alternating scheme of RDAE-l1 and RDAE-l2,1; see the subclasses."""

    _penalty = None  # "l1" or "l21"

    def __init__(self, lam="auto", outer_iterations=10, inner_epochs=None, tol=1e-7, n_members=1,
                 member_subsample=None, **engine_params):
        # one network by default: the decomposition X = L + S (S_, L_) belongs to one network
        super().__init__(n_members=n_members, member_subsample=member_subsample, **engine_params)
        self.lam = lam
        self.outer_iterations = outer_iterations
        self.inner_epochs = inner_epochs
        self.tol = tol

    # ---- parameters -----------------------------------------------------------

    def check_family_params(self):
        if not (isinstance(self.lam, str) and self.lam == "auto"):
            if isinstance(self.lam, str):
                raise ParameterError(f"lam must be 'auto' or a number >= 0, got {self.lam!r}")
            check_number("lam", self.lam, 0)
        check_number("outer_iterations", self.outer_iterations, 1, integer=True)
        check_number("inner_epochs", self.inner_epochs, 0, integer=True, allow_none=True)
        check_number("tol", self.tol, 0)
        if self.validation_fraction:
            raise ParameterError(
                f"validation_fraction={self.validation_fraction} is not supported by "
                f"{type(self).__name__}: the decomposition X = L + S is defined on every "
                "training row; use validation_fraction=0 and set outer_iterations/inner_epochs")

    def _inner_epochs(self) -> int:
        if self.inner_epochs is not None:
            return int(self.inner_epochs)
        return int(math.ceil(self.epochs / self.outer_iterations))

    # ---- the alternating scheme ----------------------------------------------

    def _auto_lambda(self, R: torch.Tensor) -> float:
        """``lam="auto"``: the lambda whose prox keeps the groups/entries ``contamination`` picks."""
        magnitudes = self._magnitudes(R)
        if is_fraction(self.contamination):
            return auto_lambda(magnitudes, self.contamination)
        _, highest = threshold_labels(self.contamination, magnitudes.reshape(-1).double().cpu().numpy())
        return max(0.0, highest)

    def _magnitudes(self, R: torch.Tensor) -> torch.Tensor:
        """What the prox compares with lambda: group norms (l2,1) or |entries| (l1)."""
        raise NotImplementedError

    def _prox(self, R: torch.Tensor, lam: float) -> torch.Tensor:
        raise NotImplementedError

    def _reconstruct(self, L: torch.Tensor) -> torch.Tensor:
        """``D(E(L))`` in eval mode, batched (no_grad, not inference_mode: ``L`` trains next)."""
        net = self.net_
        net.eval()
        with torch.no_grad():
            return self.map_batches(lambda batch: net(batch)[1], L)

    def n_training_epochs(self) -> int:
        return self.outer_iterations * self._inner_epochs()

    def training_callbacks(self, X):
        return [_Alternation(self, X, self._inner_epochs())]

    def _set_sparse_part(self, S: np.ndarray) -> None:
        self.S_ = S
        if self._penalty == "l1":
            self.outlier_mask_ = S != 0
        else:
            self.outlier_mask_ = np.any(S != 0, axis=1 if self._groups() == "rows" else 0)

    def _groups(self) -> str:
        return "rows"

    def finish_fit(self, X):
        """``L_ = X - S_``, in the original units (each member's own with ``n_members > 1``)."""
        self.L_ = X - self.S_

    def __getattr__(self, name):
        # only reached when normal lookup fails: explain where a members detector keeps the decomposition
        if name in _DECOMPOSITION and "members_" in self.__dict__:
            raise AttributeError(
                f"{type(self).__name__} with {len(self.members_)} members has no {name}: each member decomposes "
                f"its own rows (members_[k].{name}); n_members=1 gives the paper's single decomposition of every "
                "training row")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # Loss, score and per-feature contributions are the plain autoencoder's squared
    # residual (inherited from AutoEncoder); see the class docstring for why.

    # ---- persistence ------------------------------------------------------------

    def extra_fitted_state(self):
        meta = {"n_iter": int(self.n_iter_), "lambda": self.lambda_,
                "convergence": [list(c) for c in self.convergence_],
                "S_shape": list(self.S_.shape)}
        # S_ is sparse: store its non-zero entries only (flat indices and values)
        flat = self.S_.reshape(-1)
        index = np.flatnonzero(flat)
        tensors = {"S_index": torch.from_numpy(index.astype(np.int64)),
                   "S_values": torch.from_numpy(np.ascontiguousarray(flat[index], dtype=np.float64))}
        return meta, tensors

    def restore_extra_fitted_state(self, meta, tensors):
        self.n_iter_ = int(meta["n_iter"])
        self.lambda_ = None if meta["lambda"] is None else float(meta["lambda"])
        self.convergence_ = [tuple(c) for c in meta.get("convergence", [])]
        shape = tuple(int(s) for s in meta["S_shape"])
        S = np.zeros(int(np.prod(shape)), dtype=np.float64)
        S[tensors["S_index"].numpy()] = tensors["S_values"].numpy()
        self._set_sparse_part(S.reshape(shape))


_COMMON_DOC = """
    Parameters
    ----------
    {groups_doc}lam : float >= 0 or "auto", default "auto"
        The sparsity weight lambda, on the scale the network sees: standardised units
        (per-feature z-scores) by default, the original units with ``standardize=False``.
        {lam_scale}
        ``lam="auto"`` chooses lambda afresh at every outer iteration so that
        {auto_rule} equals ``contamination``, so a user
        without labels gets a decomposition without a sweep; the value used last is
        ``lambda_``. With a thresholder object as ``contamination`` (e.g. pythresh's
        ``IQR()``), a copy of it is fitted on the magnitudes the prox compares with
        lambda, and lambda is the largest magnitude it leaves unflagged, so S keeps
        exactly the ones it flags.
        Larger lambda gives a sparser ``S_``; as lambda -> infinity ``S_`` = 0 and the
        detector is the plain autoencoder trained for ``outer_iterations * inner_epochs``
        epochs.
    outer_iterations : int, default 10
        Outer iterations of the alternating scheme (updates of S).
    inner_epochs : int or None, default None
        Training epochs per outer iteration; the same network and Adam state continue
        across iterations. None spreads the engine's ``epochs`` over the outer iterations
        (``ceil(epochs / outer_iterations)`` each), so the total training matches a plain
        autoencoder with the same ``epochs``.
    tol : float, default 1e-7
        Stop when ``||X - L_D - S||_F / ||X||_F < tol`` or
        ``||LS - L_D - S||_F / ||X||_F < tol`` (norms on the network's scale), where
        ``LS`` is ``L_D + S`` of the previous iteration (the paper's criteria).
    **engine_params
        See :class:`pyod_ae_ext.engine.AutoEncoderDetector`. ``epochs`` is used only
        through ``inner_epochs=None``; ``validation_fraction`` must be 0 (the
        decomposition covers every training row).

    Attributes
    ----------
    S_ : ndarray (n_samples, n_features)
        The sparse part of the training data, in the original units of ``X``
        (the ``S`` of the network's scale times each feature's scale; a difference, so
        no mean is added). Its zeros are exact.
    L_ : ndarray (n_samples, n_features)
        The clean part, ``X - S_``, so ``X = L_ + S_`` holds to float64 rounding. It is
        the input the network trained on in the last outer iteration. ``L_`` is not written
        to model files (it would embed the training set); a loaded detector has ``S_``.
    outlier_mask_ : ndarray of bool
        {mask_doc}
    n_iter_ : int
        Outer iterations run (fewer than ``outer_iterations`` when ``tol`` stopped it).
    lambda_ : float
        Lambda of the last iteration (standardised scale); equals ``lam`` when numeric.
    convergence_ : list of (float, float)
        The two stopping criteria at each outer iteration.
    decision_scores_ : ndarray (n_samples,)
        Training scores, computed exactly as :meth:`decision_function` on the training
        data.

    Notes
    -----
    Score. ``decision_function(X)`` is inductive: the squared Euclidean (l2) norm of the
    trained autoencoder's residual on the standardised row, ``||x - D(E(x))||_2^2``. It
    does not use ``S`` (which exists only for training rows), so training and new rows
    are scored the same way, and, unlike ``||S_i||``, it does not collapse to ties at 0
    for the rows whose ``S`` is zero. The l2 norm because (i) the network is trained to
    minimise exactly this squared error on the clean part, so it is the quantity the
    model knows the normal scale of; (ii) for RDAE-l2,1 the row norm of the residual is
    what the prox compares with lambda, so the score orders training rows the same way
    as the rule that puts them in ``S`` (squaring is monotone); (iii) squared, it is a
    sum over features, so :meth:`feature_contributions` (per-feature squared residuals)
    adds up to the score.
"""


class RDAEL1(_RobustDeepAutoEncoder):
    """Robust deep autoencoder with an l1 penalty (RDAE-l1), Zhou & Paffenroth, KDD 2017.

    Objective: ``min ||L_D - D(E(L_D))||_2 + lambda ||S||_1`` subject to
    ``X = L_D + S``. Each outer iteration: ``L_D = X - S``; train the
    autoencoder on ``L_D`` for ``inner_epochs``; ``L_D = D(E(L_D))``;
    ``S = soft_threshold(X - L_D, lambda)`` (elementwise
    ``sign(s) max(|s| - lambda, 0)``); stop on ``tol``. S models corrupted *entries*
    (e.g. salt-and-pepper pixels), not whole anomalous rows.
    """

    _penalty = "l1"

    def _magnitudes(self, R):
        return R.abs()

    def _prox(self, R, lam):
        return soft_threshold(R, lam)


class RDAEL21(_RobustDeepAutoEncoder):
    """Robust deep autoencoder with an l2,1 penalty (RDAE-l2,1), Zhou & Paffenroth, KDD 2017.

    Objective: ``min ||L_D - D(E(L_D))||_2 + lambda ||S||_{2,1}`` subject
    to ``X = L_D + S``, with ``||S||_{2,1} = sum_g ||S_g||_2`` over groups ``g``: rows
    (anomalous data points, the default) or columns (corrupted features). Each outer
    iteration: ``L_D = X - S``; train the autoencoder on ``L_D`` for
    ``inner_epochs``; ``L_D = D(E(L_D))``; ``S = group_shrink(X - L_D, lambda)``, i.e.
    every group ``g <- g max(1 - lambda / ||g||_2, 0)``; stop on ``tol``.
    """

    _penalty = "l21"

    def __init__(self, groups="rows", **params):
        super().__init__(**params)
        self.groups = groups

    def check_family_params(self):
        super().check_family_params()
        check_choice("groups", self.groups, ["rows", "columns"])

    def _groups(self):
        return self.groups

    def _magnitudes(self, R):
        return group_norms(R, self.groups)

    def _prox(self, R, lam):
        return group_shrink(R, lam, self.groups)


def _complete_docstring(cls, **fields):
    if cls.__doc__:  # None under python -OO
        cls.__doc__ += _COMMON_DOC.format(**fields)


_complete_docstring(
    RDAEL1,
    groups_doc="",
    lam_scale="An entry of S is non-zero when its residual exceeds ``lam`` (standard\n        "
              "deviations of its feature, when standardised).",
    auto_rule="the fraction of non-zero *entries* of S",
    mask_doc="Shape (n_samples, n_features): the entries where ``S_`` is non-zero.",
)
_complete_docstring(
    RDAEL21,
    groups_doc='groups : {"rows", "columns"}, default "rows"\n        The groups of the '
               'l2,1 norm: rows find anomalous data points,\n        columns corrupted features.\n    ',
    lam_scale="A group of S is non-zero when the Euclidean norm of its residual vector\n        "
              "exceeds ``lam``, so sensible values grow like sqrt(n_features) for rows and\n        "
              "sqrt(n_samples) for columns.",
    auto_rule="the fraction of non-zero groups of S (rows by\n        default, columns with "
              "``groups='columns'``)",
    mask_doc="Shape (n_samples,) for ``groups='rows'``, (n_features,) for "
             "``groups='columns'``: the groups where ``S_`` is non-zero.",
)
