"""The shared autoencoder engine and its public extension API.

:class:`AutoEncoderDetector` does everything that is not specific to one method:
input checks, standardisation, building the MLP, minibatch training on in-memory
tensors (:mod:`pyod_ae_ext.training`), validation and early stopping, devices,
seeding, batched scoring under ``torch.inference_mode``, persistence and PyOD's
threshold/labels bookkeeping. A detector family subclasses it and defines only its
method, through public hooks:

=============================  ====================================================
``row_loss(net, x, target)``   per-row training loss (required)
``row_score(net, x)``          per-row anomaly score (required)
``build_network(n_features)``  the network (default: MLP autoencoder)
``row_contributions(net, x)``  per-feature contributions to the score (``explain``)
``row_reconstruction(net, x)`` the reconstruction of x (image plots of ``explain``)
``row_code(net, x)``           the code used by the latent-space score
``row_features(net, x)``       the encoder's features before its code layer
``check_family_params()``      checks of the family's own parameters
``training_callbacks(X)``      per-epoch steps, schedules, work before/after training
``n_training_epochs()``        the epoch budget of the loop (default ``epochs``)
``make_optimizer(net)``        the optimiser (default: Adam on one flat buffer)
``finish_fit(X)``              fitted attributes that need the original rows
``extra_fitted_state()``       fitted state beyond the network to save, and
``restore_extra_fitted_state`` its inverse
=============================  ====================================================

and may use the engine's public helpers (``hidden_widths``, ``scoring_batches``,
``map_batches``, ``random_generator``, ``network_input``, ``scoring_context``,
``autocast``, ``evaluate_loss``, ``latent_points``, ``resolved_latent_space``,
``resolved_latent_weight``)::

    class MyDetector(AutoEncoderDetector):
        def __init__(self, lam=1.0, **engine_params):
            super().__init__(**engine_params)
            self.lam = lam

        def row_loss(self, net, x, target):
            z, recon = net(x)
            return squared_error(recon, target) + self.lam * z.pow(2).sum(1)

        def row_score(self, net, x):
            z, recon = net(x)
            return squared_error(recon, x) + self.lam * z.pow(2).sum(1)

:func:`pyod_ae_ext.testing.check_detector` runs the contract suite on a family.

Extreme and degenerate values. Features are standardised with a floored scale (see
the ``standardize`` parameter): a feature that barely varied in training or rarely
leaves one value cannot dominate the scores, and statistics are computed without
overflow, so a training row holding 1e308 is standardised (to at most sqrt(n_rows - 1)
standard deviations) and flagged rather than silently ignored. Standardised values
are clipped to ``+-INPUT_BOUND`` (1e6) before the float32 network, so a new row with
an extreme value (1e30, 1e308) gets a very high, finite score, and each row's score
is computed from that row alone: it never depends on the other rows in the batch. A
training loss that becomes NaN or infinite is a :class:`TrainingError` advising a
lower learning rate. ``as_feature_matrix`` accepts numeric and boolean arrays and
DataFrames, nullable pandas columns without ``<NA>`` and object arrays of numbers,
and names the column (and row) of anything else.

Constructor signatures are merged along the class hierarchy, so
``MyDetector(lam=2, epochs=10)`` works, ``inspect.signature(MyDetector)`` lists every
parameter and scikit-learn's ``get_params``/``set_params``/``clone`` see them all.
"""
from __future__ import annotations

import contextlib
import inspect
import math
import numbers

import numpy as np
import torch
from pyod.models.base import BaseDetector
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .errors import DataError, DeviceError, ParameterError, TrainingError
from .backbones import get_backbone
from .nets import ACTIVATIONS, EncoderDecoder
from .optim import FlatAdam
from . import latent
from .training import EarlyStopping, ProgressReporter, TrainingLoop
from .thresholding import ThresholderSupport, check_contamination
from .validation import (and_more_rows, as_feature_matrix, check_choice, check_new_data,  # noqa: F401
                         check_number, check_shape, check_training_data, column_label)

# Rows x widest layer per operation below which one thread beats two or more:
# tiny matrix products are dominated by per-op overhead and thread hand-off.
_SINGLE_THREAD_WORK = 1 << 17
# Elements per scoring batch (rows x widest layer): large enough that per-call
# overhead is negligible, small enough that activations stay in cache (measured:
# 1M x 32 rows score 4x faster in batches of 16k rows than of 256k).
_SCORING_BATCH_ELEMENTS = 1 << 20
_STANDARDISE_CHUNK_ROWS = 65536
# The network's inputs are clipped to +-INPUT_BOUND (standardised units, or the raw
# units with standardize=False) before the cast to float32: a row with an extreme value
# (1e30, 1e308) stays finite through every layer and its squares (1e12 per element,
# far below float32's 3.4e38 even after a large amplification by the network) and gets
# a very high score. Training rows never reach it when standardised: a z-score of a
# training row is at most sqrt(n_rows - 1).
INPUT_BOUND = 1e6
# The scale floor of standardize=True (the rule is in AutoEncoderDetector's docstring;
# benchmarks/RESULTS.md, "Robust scaling (issue 9)", has the measurements behind it):
# a feature's scale is at least SCALE_FLOOR_POOLED times the median standard deviation
# of the non-constant features, and at least its spread (range without the most
# extreme value at either end) times q / SCALE_FLOOR_FILL_TOLERANCE, where q is the
# SCALE_FLOOR_FILL quantile, over the non-constant features, of std / (spread / 2).
SCALE_FLOOR_POOLED = 0.1
SCALE_FLOOR_FILL = 0.9
SCALE_FLOOR_FILL_TOLERANCE = 1.5


AUTO_LATENT_WEIGHTS = {"code": 0.5, "features": 0.8}
"""``latent_knn_weight="auto"`` by latent space (benchmarks/RESULTS.md: "Latent-space scoring" chose 0.5
for codes on the ADBench sets, "Images" 0.8 for features on MNIST, where their distance alone
ranks better than the reconstruction error alone)."""

DEFAULT_HIDDEN_DIMS = (64, 32)
"""``hidden_dims="auto"`` for backbones without a ``default_hidden_dims`` of their own (the MLP's)."""


def squared_error(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-row squared reconstruction error ``||x - x_hat||^2``."""
    return (recon - target).pow(2).sum(dim=1)


def resolve_device(device) -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` into a usable torch device."""
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise ParameterError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ParameterError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {device!r} was requested but this machine has no usable CUDA GPU; "
                              "use device='cpu' or device='auto'")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise DeviceError(f"device {device!r} does not exist: this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s)")
    elif resolved.type != "cpu":
        raise ParameterError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return resolved


# --------------------------------------------------------------------------
# signature merging


def _merged_signature(cls) -> inspect.Signature:
    """The subclass's own parameters followed by every inherited one it does not redefine."""
    params: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object or not issubclass(klass, AutoEncoderDetector):
            continue
        for name, param in inspect.signature(init).parameters.items():
            if name == "self" or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                continue
            params.setdefault(name, param.replace(kind=param.KEYWORD_ONLY))
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return inspect.Signature([self_param, *params.values()])


# --------------------------------------------------------------------------
# the engine


class AutoEncoderDetector(ThresholderSupport, BaseDetector):
    """Base class of every autoencoder-family detector.

    Parameters
    ----------
    contamination : float in (0, 0.5] or a thresholder, default 0.1
        Expected fraction of anomalies; sets ``threshold_`` as in PyOD. A thresholder
        object PyOD accepts (e.g. ``pythresh.thresholds.iqr.IQR()``) chooses the
        threshold from the training scores instead (:mod:`pyod_ae_ext.thresholding`).
    hidden_dims : sequence of int or "auto", default "auto"
        Widths of the encoder's hidden layers; the decoder mirrors them. "auto":
        ``(64, 32)``, or channels ``(32, 64, 128)`` with ``backbone="conv"`` (each
        backbone's ``default_hidden_dims``, else :data:`DEFAULT_HIDDEN_DIMS`).
    latent_dim : int, default 8
        Width of the bottleneck (the code ``E(x)``).
    activation : str, default "relu"
        One of relu, leaky_relu, elu, gelu, tanh, sigmoid, softplus, identity.
    dropout : float in [0, 1), default 0.0
        Dropout after each hidden layer while training.
    batch_norm : bool, default False
        BatchNorm after each hidden linear layer.
    lr : float, default 1e-3
        Adam learning rate.
    weight_decay : float, default 0.0
        Adam weight decay (L2 penalty on the weights).
    epochs : int, default 50
        Passes over the training data.
    batch_size : int, default 128
        Rows per gradient step.
    validation_fraction : float in [0, 0.5], default 0.0
        Fraction of training rows held out for early stopping; 0 trains on all rows
        for exactly ``epochs`` epochs.
    patience : int, default 10
        Epochs without improvement of the validation loss before stopping; the
        weights of the best epoch are restored.
    activity_l1 : float, default 0.0
        Weight of an L1 penalty on the encoder's activations (every hidden layer and
        the code), the sparse-regularised autoencoder.
    corruption : {None, "gaussian", "mask"}, default None
        Denoising criterion: during training the network sees the input with added
        Gaussian noise (std ``corruption_level`` in standardised units) or with a
        fraction ``corruption_level`` of entries set to the feature mean, and is
        trained to reproduce the clean input.
    corruption_level : float, default 0.1
        Strength of the corruption.
    standardize : bool or {"feature", "global"}, default True
        How the data are scaled before the network. ``True`` scales as the backbone
        prescribes: per feature (``"feature"``) for "mlp", globally (``"global"``) for
        the image backbones "conv" and "toll-mnist". ``"global"`` centres every value on
        the mean of all training values and divides by their standard deviation (1 when
        they are all equal): one mean and one scale for all pixels, so relative
        intensities between pixels are kept and a pixel that is blank in training
        stays on the common scale (per-pixel z-scores would blow up its rare ink).
        ``False`` leaves the data as they are. ``"feature"`` (what ``True`` means for
        "mlp") centres each feature on its training mean and divides by a scale: the training
        standard deviation, with a floor so that a feature that barely varied in
        training cannot dominate every later score::

            scale_j = max(std_j, 0.1 * median_k std_k, q * spread_j / 2)

        ``spread_j`` is the feature's range without its single most extreme value at
        either end (second largest minus second smallest training value). ``q`` comes
        from how much of their half-spread the features' standard deviations cover,
        ``fill_k = std_k / (spread_k / 2)``: the 90th percentile of ``fill_k`` (what the
        best-filled features reach) divided by 1.5. Medians and percentiles are over
        the non-constant features (the percentile also leaves out features whose
        spread is 0 or whose std exceeds half of it, which one extreme value makes).
        So:

        - a *near-constant* feature (``5 +- 1e-9``) gets a tenth of the median
          feature's standard deviation, so a later change in it counts like a
          deviation of ten typical standard deviations instead of 1e9;
        - a *sparse* or heavy-tailed feature (mostly one value with rare excursions:
          a rarely inked border pixel, a rare flag), whose std covers less than two
          thirds of what the best-filled features' do, is scaled by its spread like
          them, so its excursions are not multiplied by 1/std (RDAE-l2,1 on MNIST
          digit 4, ``python -m benchmarks.rdae_mnist --standardize default``: F1 0.31
          with plain z-scores, 0.61 with the floor, 0.64 with ``standardize=False``);
        - every other feature keeps its exact standard deviation (plain z-scores for
          Gaussian-like data; 60% of the features of the 17 ADBench/ODDS sets of the
          benchmarks keep it, the median scale is 1.0x the std, 90% are within 2.3x);
        - a *constant* feature gets the pooled floor (0.1 x the median standard
          deviation; 1 when every feature is constant) and standardises to 0.

        The spread floor is unit-free (rescaling or shifting a feature changes none
        of its standardised values) and a single extreme training value does not set
        it. The pooled floor compares features with each other, so it assumes their
        units are comparable: a feature whose standard deviation is below a tenth of
        the median's only because of its unit (kilometres among millimetres) is
        scaled as if it varied that much; rescale such a feature if small changes in
        it matter. Mean and standard deviation are computed without overflow (a
        column is divided by its largest magnitude first when its plain statistics
        would overflow), so values such as 1e308 are standardised, not ignored.
        Standardised values reach the network clipped to ``+-INPUT_BOUND`` (1e6).
        Turn standardisation off for data already on a meaningful common scale,
        e.g. pixels in [0, 1], or use ``"global"``; without it the network sees the
        raw values, which must lie within ``+-INPUT_BOUND`` when fitting.
    device : str, default "auto"
        "auto" (CUDA when available), "cpu", "cuda" or "cuda:N". The data moves to
        the device once per call, through pinned host buffers on a GPU. Move a fitted
        detector with :meth:`to_device`, or load a model file onto another device with
        ``pyod_ae_ext.load(path, device=...)``.
    amp : bool, default False
        Mixed precision on a CUDA device: the forward passes of training and scoring
        run under ``torch.autocast`` in bfloat16 (weights, optimiser state and score
        reductions stay float32). Needs a GPU with bfloat16 (compute capability 8.0 or
        later); has no effect on the CPU. It pays off for large convolutional networks
        (the Toll paper's MNIST network fits 1.8x faster per image on an H100) and not
        for the default MLPs or the default "conv" backbone, which it slows down
        (benchmarks/RESULTS.md, "GPU"). An amp fit is a different fit: its scores rank
        rows like a float32 fit's without equalling them.
    random_state : int, RandomState or None, default None
        Seed for weight initialisation, shuffling, dropout and any sampling in the
        score; the same seed and data give identical scores on the CPU.
    verbose : bool, default False
        Print epoch, training loss and validation loss to stderr.
    latent_knn_weight : float in [0, 1] or "auto", default "auto"
        Weight of the latent-space score (:mod:`pyod_ae_ext.latent`): the mean
        distance from a row's code to its ``latent_knn_k`` nearest training codes
        (or features, ``latent_space``). With w > 0 the score is
        ``(1 - w) * z_own + w * z_knn``, both standardised on the training rows;
        **0 is the paper's score** (the family's own, unscaled), 1 the latent distance
        alone. "auto" is 0.5 with codes, where it raised the mean ROC-AUC on the shared
        ADBench sets (benchmarks/RESULTS.md, "Latent-space scoring"), and 0.8 with
        features (:data:`AUTO_LATENT_WEIGHTS`); the VAE defaults to 0.
    latent_knn_k : int, default 10
        Neighbours of the latent-space score.
    latent_reference_size : int, default 4096
        At most this many training codes or features (drawn by the seed, saved with
        the model) are the latent score's reference set.
    latent_detector : str or None, default None
        The latent-space score: None is the mean distance to the ``latent_knn_k``
        nearest reference codes (above); the name of a PyOD detector whose score does
        not depend on the other rows scored with it (``"iforest"``, ``"knn"``,
        ``"lof"``, ``"pca"``, ``"ocsvm"``, ``"hbos"``, ``"mcd"``, ``"gmm"``,
        ``"inne"``, ``"loda"``; :data:`pyod_ae_ext.latent.CODE_DETECTORS`) is fitted,
        with PyOD's defaults and the detector's seed, on the reference codes (or
        features) instead, and its ``decision_function`` of a row's code is the latent score. Saved
        with the model as a checked PyOD state.
    latent_space : {"auto", "code", "features"}, default "auto"
        Where the latent-space score measures distances. "code": the code
        ``E(x)`` (:meth:`row_code`). "features": the encoder's features just before
        its code layer (:meth:`row_features`; for the "conv" backbone the flattened
        128 x 4 x 4 maps of a 28 x 28 image), scaled to unit length, so the distance
        compares their direction: the deep nearest-neighbour score of Sun et al.
        (2022), "Out-of-distribution detection with deep nearest neighbors", ICML,
        eq. 2, on the autoencoder's own features. "auto" is each backbone's
        ``latent_space``: "features" for "conv", where it was measured (MNIST,
        benchmarks/RESULTS.md, "Images"), "code" for the others. Features are wider than codes, so
        the reference set saved with the model is larger (4096 x 2048 float32, 32 MiB,
        for 28 x 28 images with the "conv" backbone).
    backbone : str, default "mlp"
        The layers of the encoder and decoder (:mod:`pyod_ae_ext.backbones`): "mlp"
        (fully connected through ``hidden_dims``), "conv" (strided convolutions
        through ``hidden_dims`` read as channel counts, for images), "toll-mnist" (the
        Toll paper's MNIST network; :mod:`pyod_ae_ext.backbones_image`) or any backbone
        registered there. The family's loss and score are the same whatever the backbone.
    input_shape : tuple of int or None, default None
        Shape of one row for structured backbones (an image's ``(C, H, W)``, a
        sequence's ``(T, F)``); the flat row is reshaped to it. None for "mlp"; for
        the image backbones None means one grey square image, ``(1, s, s)`` for
        ``s * s`` features (other widths need the shape).
    n_members : int or "auto", default 1
        Networks of this family fitted and combined (:mod:`pyod_ae_ext.members`): each
        is this detector with its own seed (and rows and parameters, below); their
        scores are standardised on their own training scores and averaged. Members
        that differ only by seed are trained as one batched computation. 1 is the
        paper's single network; "auto" is 10 with the "mlp" backbone and 1 with the
        others (``pyod_ae_ext.members.AUTO_MEMBERS``).
    member_subsample : None, float in (0, 1], int >= 2 or "auto", default None
        Rows each member trains on, drawn by seed without replacement: a fraction of
        the training rows or a number of rows; None gives every member every row;
        "auto" is 512 rows with several members (every row when there are fewer).
    member_params : list of dict or None, default None
        One dict per member of parameters that member sets differently (e.g.
        ``[{"latent_dim": 4}, {"latent_dim": 16}]``), for hyperparameter ensembles.
    """

    trains_batched = True
    """Whether members (``n_members > 1``) of this family may train stacked in one computation.

    Needs a loss that treats each member's network on its own and an elementwise
    optimiser (Adam, SGD); :mod:`pyod_ae_ext.members` also checks the callbacks.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__.__signature__ = _merged_signature(cls)

    earlier_defaults = {"latent_space": "code"}
    """Parameters added after model files were first written, with the value a saved model that
    lacks one was fitted under (codes: ``latent_space="auto"`` would read features for "conv")."""

    def __init__(self, contamination=0.1, hidden_dims="auto", latent_dim=8, activation="relu",
                 dropout=0.0, batch_norm=False, lr=1e-3, weight_decay=0.0, epochs=50,
                 batch_size=128, validation_fraction=0.0, patience=10, activity_l1=0.0,
                 corruption=None, corruption_level=0.1, standardize=True, device="auto", amp=False,
                 random_state=None, verbose=False, latent_knn_weight="auto", latent_knn_k=10,
                 latent_reference_size=4096, latent_detector=None, latent_space="auto", backbone="mlp",
                 input_shape=None, n_members=1, member_subsample=None, member_params=None):
        # BaseDetector.__init__ would raise a bare ValueError here; fit() checks instead.
        self.contamination = contamination
        self.hidden_dims = hidden_dims
        self.latent_dim = latent_dim
        self.activation = activation
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.activity_l1 = activity_l1
        self.corruption = corruption
        self.corruption_level = corruption_level
        self.standardize = standardize
        self.device = device
        self.amp = amp
        self.random_state = random_state
        self.verbose = verbose
        self.latent_knn_weight = latent_knn_weight
        self.latent_knn_k = latent_knn_k
        self.latent_reference_size = latent_reference_size
        self.latent_detector = latent_detector
        self.latent_space = latent_space
        self.backbone = backbone
        self.input_shape = input_shape
        self.n_members = n_members
        self.member_subsample = member_subsample
        self.member_params = member_params

    # ---- the public hooks a detector family defines ----------------------------

    def build_network(self, n_features: int) -> torch.nn.Module:
        """The network; by default an autoencoder returning ``(z, reconstruction)``.

        Called under the detector's seed, so weight initialisation is reproducible.
        Families build their layers with :meth:`make_encoder` and :meth:`make_decoder`
        so that the ``backbone`` parameter applies to them.
        """
        return EncoderDecoder(self.make_encoder(n_features, self.latent_dim),
                              self.make_decoder(self.latent_dim, n_features))

    def make_encoder(self, n_features: int, out_dim: int, bias: bool = True) -> torch.nn.Sequential:
        """An encoder of the detector's ``backbone``: (rows, n_features) -> (rows, out_dim), last layer linear.

        ``bias=False`` gives layers without additive constants.
        """
        return get_backbone(self.backbone).encoder(self, n_features, out_dim, bias)

    def make_decoder(self, in_dim: int, n_features: int, n_outputs: int = 1,
                     bias: bool = True) -> torch.nn.Sequential:
        """A decoder of the detector's ``backbone``: (rows, in_dim) -> (rows, n_outputs * n_features).

        The output is ``n_outputs`` consecutive blocks of ``n_features`` columns, block k
        holding output k (e.g. mean, then variance) of every feature.
        """
        return get_backbone(self.backbone).decoder(self, in_dim, n_features, n_outputs, bias)

    def row_loss(self, net, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-row training loss, shape (rows,), of the (possibly corrupted) batch ``x`` against ``target``.

        The engine minimises its mean over each batch (plus ``activity_l1``'s penalty);
        the validation loss is its mean over the held-out rows.
        """
        raise NotImplementedError(f"{type(self).__name__} must define row_loss(net, x, target)")

    def row_score(self, net, x: torch.Tensor) -> torch.Tensor:
        """Per-row anomaly score, shape (rows,), of the standardised batch ``x`` (higher = more anomalous).

        Runs under ``torch.inference_mode`` with the network in eval mode; it must not
        depend on the other rows of the batch.
        """
        raise NotImplementedError(f"{type(self).__name__} must define row_score(net, x)")

    def row_code(self, net, x: torch.Tensor) -> torch.Tensor:
        """The code ``E(x)`` of each row, shape (rows, code width), for the latent-space score.

        By default the output of ``net.encoder``; families with another notion of code
        (the VAE's posterior mean, the k-sparse code) override it.
        """
        encoder = getattr(net, "encoder", None)
        if encoder is None:
            raise ParameterError(f"{type(self).__name__} has no encoder to take codes from; "
                                 "set latent_knn_weight=0 or define row_code(net, x)")
        return encoder(x)

    def row_features(self, net, x: torch.Tensor) -> torch.Tensor:
        """The encoder's features before its code layer, shape (rows, width), for ``latent_space="features"``.

        By default the input of the last layer with weights in ``net.encoder`` (the
        layer that makes the code), flattened; layers a family appends after it (an
        activation on the code) are skipped. Families whose encoder is built otherwise
        override it.
        """
        encoder = getattr(net, "encoder", None)
        layers = list(encoder) if isinstance(encoder, torch.nn.Sequential) else []
        weighted = [i for i, layer in enumerate(layers) if any(True for _ in layer.parameters(recurse=False))]
        if not weighted:
            raise ParameterError(f"{type(self).__name__} has no sequential encoder to take features from; "
                                 "set latent_space='code' or define row_features(net, x)")
        return encoder[:weighted[-1]](x).flatten(1)

    def resolved_latent_space(self) -> str:
        """``latent_space`` with "auto" replaced by the backbone's choice ("code" where it has none)."""
        if self.latent_space == "auto":
            return getattr(get_backbone(self.backbone), "latent_space", "code")
        return self.latent_space

    def resolved_latent_weight(self) -> float:
        """``latent_knn_weight`` as a number, "auto" replaced by :data:`AUTO_LATENT_WEIGHTS` of the latent space."""
        if isinstance(self.latent_knn_weight, str) and self.latent_knn_weight == "auto":
            return AUTO_LATENT_WEIGHTS[self.resolved_latent_space()]
        return float(self.latent_knn_weight)

    def latent_points(self, net, x: torch.Tensor) -> torch.Tensor:
        """What the latent-space score measures distances between: codes, or features scaled to unit length."""
        if self.resolved_latent_space() == "code":
            return self.row_code(net, x)
        features = self.row_features(net, x)
        return features / features.norm(dim=1, keepdim=True).clamp_min(torch.finfo(features.dtype).tiny)

    def row_contributions(self, net, x: torch.Tensor) -> torch.Tensor | None:
        """Per-feature contributions to the score, shape (rows, features), or None (not available)."""
        return None

    def row_reconstruction(self, net, x: torch.Tensor) -> torch.Tensor | None:
        """The network's reconstruction of the standardised batch ``x``, in standardised units, or None.

        By default the second output of ``net(x)`` when it has the shape of ``x`` (the
        ``(code, reconstruction, ...)`` convention); None for networks without one.
        """
        out = net(x)
        if isinstance(out, tuple) and len(out) >= 2 and out[1].shape == x.shape:
            return out[1]
        return None

    def check_family_params(self) -> None:
        """Check the family's own parameters; raise :class:`ParameterError` naming the bad one."""

    def training_callbacks(self, X: torch.Tensor) -> list:
        """Callbacks (:class:`~pyod_ae_ext.training.Callback`) for this fit's training loop.

        ``X`` holds every standardised training row, including those held out for
        validation; the loop's ``train`` and ``validation`` attributes hold the split.
        The engine adds early stopping when rows are held out (unless one of these is
        an :class:`~pyod_ae_ext.training.EarlyStopping`) and progress lines with
        ``verbose=True``, after these.
        """
        return []

    def n_training_epochs(self) -> int:
        """How many epochs the training loop may run (default ``epochs``); callbacks may stop it earlier."""
        return self.epochs

    def make_optimizer(self, net):
        """The optimiser for ``net``: Adam over one flat buffer with ``lr`` and ``weight_decay``."""
        return FlatAdam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    def finish_fit(self, X: np.ndarray) -> None:
        """Last step of fitting one network: set attributes that need the training rows as given.

        ``X`` holds the checked training rows in their original units (float64), after
        training and the training scores. Called once per network: for a detector with
        members (``n_members > 1``) on each member with its own rows, not on the
        detector. Default: nothing.
        """

    def extra_fitted_state(self) -> tuple[dict, dict]:
        """Family-specific fitted state to save: (JSON-able dict, dict of CPU tensors)."""
        return {}, {}

    def restore_extra_fitted_state(self, meta: dict, tensors: dict) -> None:
        """Inverse of :meth:`extra_fitted_state`; raise ``InconsistentModelError`` for bad content."""

    # ---- fitting ------------------------------------------------------------

    def check_params(self) -> None:
        """Raise :class:`ParameterError` for any invalid parameter value, before any data is read."""
        self._check_engine_params()
        self.check_family_params()

    def fit(self, X, y=None):
        """Fit the detector on ``X`` (rows x features); ``y`` is ignored.

        Returns
        -------
        self
        """
        self.check_params()
        self._set_n_classes(y)
        for stale in ("members_", "net_", "latent_reference_", "latent_detector_"):
            self.__dict__.pop(stale, None)
        if self._n_networks() > 1:
            from .members import fit_members

            X = check_training_data(self, X)
            get_backbone(self.backbone).check(self, X.shape[1])
            self.device_ = str(resolve_device(self.device))
            fit_members(self, X)
        else:
            X, X_std = self._begin_fit(X)
            self._train_network(X_std)
            self._end_fit(X_std)
            self.finish_fit(X)
        self._check_finite_scores(self.decision_scores_, "training")
        self._process_decision_scores()
        return self

    def _begin_fit(self, X) -> tuple[np.ndarray, torch.Tensor]:
        """Check ``X``, fit the scaling, build ``net_``; return the checked rows and their standardised tensor."""
        X = check_training_data(self, X)
        get_backbone(self.backbone).check(self, X.shape[1])
        device = resolve_device(self.device)
        self.device_ = str(device)
        scaling = self.scaling()
        if scaling == "feature":
            self.scaler_mean_, self.scaler_scale_ = _standardisation(X)
        elif scaling == "global":
            self.scaler_mean_, self.scaler_scale_ = _global_standardisation(X)
        else:
            self.scaler_mean_, self.scaler_scale_ = np.zeros(X.shape[1]), np.ones(X.shape[1])
            _check_raw_bound(X, getattr(self, "feature_names_in_", None))
        self.seed_ = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        X_std = self._to_tensor(X)
        self.history_ = {"loss": [], "val_loss": []}
        with self._seeded(), self._compute_settings(rows=self.batch_size):
            self.net_ = self.build_network(self.n_features_in_).to(device)
        return X, X_std

    def _training_setup(self, X: torch.Tensor) -> tuple:
        """(training rows, validation rows or None, callbacks) of this fit's training loop."""
        train, validation = self._split_validation(X)
        callbacks = list(self.training_callbacks(X))
        if validation is not None and not any(isinstance(c, EarlyStopping) for c in callbacks):
            callbacks.append(EarlyStopping(self.patience))
        if self.verbose:
            callbacks.append(ProgressReporter())
        return train, validation, callbacks

    def _train_network(self, X: torch.Tensor) -> None:
        """Train ``net_`` on the standardised rows ``X``: one :class:`TrainingLoop` with the family's callbacks."""
        with self._seeded(offset=2), self._compute_settings(rows=self.batch_size):
            train, validation, callbacks = self._training_setup(X)
            loop = TrainingLoop(self, self.net_, train, validation, callbacks=callbacks)
            try:
                loop.run(self.n_training_epochs())
            finally:
                if loop.optimizer is not None:
                    loop.optimizer.release()
        self.n_epochs_ = len(self.history_["loss"])

    def _end_fit(self, X: torch.Tensor) -> None:
        """Training scores of the rows ``X`` (the family's, with the latent-space term when weighted)."""
        with self._seeded(offset=1), self._compute_settings(rows=X.shape[0]):
            self.decision_scores_ = self._training_scores(X)
            if self.resolved_latent_weight():
                self.decision_scores_ = self._fit_latent_score(X, self.decision_scores_)

    def _fit_latent_score(self, X: torch.Tensor, own_scores: np.ndarray) -> np.ndarray:
        """Keep the reference points (or latent detector) and both standardisers; return the combined training scores."""
        points = self._latent_points_of(X)
        index = latent.choose_reference(points.shape[0], int(self.latent_reference_size),
                                        torch.Generator().manual_seed(self.seed_ + 2))
        self.latent_reference_ = points[index.to(points.device)].contiguous()
        own_position = torch.full((points.shape[0],), -1, dtype=torch.long)
        own_position[index] = torch.arange(index.numel())
        if self.latent_detector is None:
            with torch.inference_mode():
                distances = latent.knn_distance(points, self.latent_reference_, int(self.latent_knn_k),
                                                own_position.to(points.device))
            knn_scores = distances.double().cpu().numpy()
        else:
            self.latent_detector_ = latent.fit_code_detector(self.latent_detector, self.latent_reference_,
                                                             self.seed_ + 2)
            knn_scores = latent.code_detector_training_scores(self.latent_detector_, points, own_position)
        self.latent_standardisers_ = (*latent.standardiser(own_scores), *latent.standardiser(knn_scores))
        return self._combine_latent(own_scores, knn_scores)

    def _latent_scores(self, points: torch.Tensor) -> np.ndarray:
        """The latent-space score of new rows' latent points (before standardising)."""
        if self.latent_detector is None:
            with torch.inference_mode():
                distances = latent.knn_distance(points, self.latent_reference_, int(self.latent_knn_k))
            return distances.double().cpu().numpy()
        return latent.code_detector_scores(self.latent_detector_, points)

    def _latent_points_of(self, X: torch.Tensor) -> torch.Tensor:
        with self.scoring_context(rows=X.shape[0]):
            return self.map_batches(lambda batch: self.latent_points(self.net_, batch), X).float()

    def _combine_latent(self, own_scores: np.ndarray, knn_scores: np.ndarray) -> np.ndarray:
        own_mean, own_std, knn_mean, knn_std = self.latent_standardisers_
        w = self.resolved_latent_weight()
        return (1 - w) * (own_scores - own_mean) / own_std + w * (knn_scores - knn_mean) / knn_std

    def _training_scores(self, X: torch.Tensor) -> np.ndarray:
        """``decision_scores_``: by default the same score as for new data."""
        return self._score_tensor(X)

    def _split_validation(self, X):
        if not self.validation_fraction:
            return X, None
        n_val = int(round(self.validation_fraction * X.shape[0]))
        if n_val < 1 or X.shape[0] - n_val < 2:
            raise DataError(f"validation_fraction={self.validation_fraction} leaves no rows to "
                            f"{'validate' if n_val < 1 else 'train'} on with {X.shape[0]} rows")
        order = torch.randperm(X.shape[0], generator=self.random_generator()).to(X.device)
        return X[order[n_val:]], X[order[:n_val]]

    def batch_loss(self, net, batch: torch.Tensor, row_loss=None) -> torch.Tensor:
        """Mean training loss of one batch: corruption, the per-row loss, the activity penalty.

        ``row_loss`` defaults to :meth:`row_loss`; a family passes another one for a
        separate training phase (e.g. Deep SVDD's autoencoder pre-training).
        """
        row_loss = row_loss or self.row_loss
        corrupted = self._corrupt(batch)
        if not self.activity_l1:
            return row_loss(net, corrupted, batch).mean()
        activations = []
        hooks = [m.register_forward_hook(lambda _m, _i, out: activations.append(out))
                 for m in _activity_modules(net)]
        try:
            loss = row_loss(net, corrupted, batch).mean()
        finally:
            for hook in hooks:
                hook.remove()
        penalty = sum(a.abs().flatten(1).sum(dim=1).mean() for a in activations)
        return loss + self.activity_l1 * penalty

    def _corrupt(self, batch: torch.Tensor) -> torch.Tensor:
        if self.corruption is None or not self.corruption_level:
            return batch
        if self.corruption == "gaussian":
            return batch + self.corruption_level * torch.randn_like(batch)
        keep = torch.rand_like(batch) >= self.corruption_level
        return batch * keep  # standardised data: 0 is the feature mean

    def evaluate_loss(self, net, X: torch.Tensor) -> float:
        """Mean :meth:`row_loss` of the rows ``X`` (clean inputs, eval mode, no gradients)."""
        net.eval()
        with torch.inference_mode(), self.autocast():
            total = sum(self.row_loss(net, batch, batch).float().sum() for batch in self.scoring_batches(X))
        return float(total) / X.shape[0]

    # ---- scoring ------------------------------------------------------------

    def decision_function(self, X):
        """Anomaly scores of ``X`` (higher = more anomalous), shape (n_samples,)."""
        self._check_fitted()
        X = self._check_new_data(X)
        if self._has_members():
            from .members import combined_scores

            scores = combined_scores(self, X)
        else:
            scores = self._score_tensor(self._to_tensor(X))
        self._check_finite_scores(scores, "new-data")
        return scores

    def family_score(self, X) -> np.ndarray:
        """The family's own score of ``X`` (the paper's), before any latent-space term.

        Equals :meth:`decision_function` when ``latent_knn_weight`` is 0 and there is one
        network. With members it is the mean of the members' family scores, each divided
        by the spread of its member's training scores (the part of the combined score
        that :meth:`feature_contributions` attributes, up to a constant).
        """
        self._check_fitted()
        if self._has_members():
            X = self._check_new_data(X)
            return np.mean([m.family_score(X) / spread for m, (_, spread)
                            in zip(self.members_, self.member_standardisers_)], axis=0)
        X = self._to_tensor(self._check_new_data(X))
        with self.scoring_context(rows=X.shape[0]):
            scores = self.map_batches(lambda batch: self.row_score(self.net_, batch), X)
        return scores.double().cpu().numpy()

    def feature_contributions(self, X) -> np.ndarray:
        """Per-feature contributions to each row's family score, shape (n_samples, n_features).

        Where the family's score is a sum over features (reconstruction errors) the rows
        sum to :meth:`family_score` (which is :meth:`decision_function` without a
        latent-space term); terms that do not belong to a feature (e.g. Toll's latent
        penalty) are reported by the family's own documentation. With members, the
        mean of the members' contributions, each divided by its member's spread.
        """
        self._check_fitted()
        if self._has_members():
            from .members import combined_contributions

            return combined_contributions(self, self._check_new_data(X))
        X = self._to_tensor(self._check_new_data(X))
        with self.scoring_context(rows=X.shape[0]):
            contributions = self.map_batches(lambda batch: self.row_contributions(self.net_, batch), X)
        if contributions is None:
            raise NotImplementedError(f"{type(self).__name__} does not provide per-feature contributions")
        return contributions.double().cpu().numpy()

    def reconstruct(self, X) -> np.ndarray:
        """The network's reconstruction of each row of ``X``, in the data's units, shape (n_samples, n_features).

        Raises NotImplementedError for families without a reconstruction (Deep SVDD).
        """
        x = self.network_input(X)
        with self.scoring_context(rows=x.shape[0]):
            reconstruction = self.map_batches(lambda batch: self.row_reconstruction(self.net_, batch), x)
        if reconstruction is None:
            raise NotImplementedError(f"{type(self).__name__} does not reconstruct its input")
        standardised = reconstruction.double().cpu().numpy()
        return standardised * self.scaler_scale_ + self.scaler_mean_

    def _score_tensor(self, X: torch.Tensor) -> np.ndarray:
        with self.scoring_context(rows=X.shape[0]):
            scores = self.map_batches(lambda batch: self.row_score(self.net_, batch), X).double().cpu().numpy()
        if self.resolved_latent_weight() and hasattr(self, "latent_reference_"):
            scores = self._combine_latent(scores, self._latent_scores(self._latent_points_of(X)))
        return scores

    def _scoring_rows(self) -> int:
        return max(1024, _SCORING_BATCH_ELEMENTS // self._widest_layer())

    def scoring_batches(self, X: torch.Tensor):
        """``X`` split into row blocks sized for scoring (large enough to amortise calls, cache-friendly)."""
        return X.split(self._scoring_rows())

    def map_batches(self, fn, X: torch.Tensor) -> torch.Tensor | None:
        """``fn(batch)`` over the scoring batches of ``X``, concatenated along rows (None if ``fn`` gives None).

        On a GPU every call sees the same number of rows: the last batch is padded with
        zero rows, whose results are dropped. Matrix-product kernels are chosen by the
        shape of the product, so without the padding a row's score would depend on how
        many rows were scored with it (in the last digits). Use it wherever a result
        per row is returned to the user.
        """
        n_rows = X.shape[0]
        rows = self._scoring_rows()
        if X.device.type == "cuda" and n_rows % rows:
            X = torch.cat([X, X.new_zeros((rows - n_rows % rows, *X.shape[1:]))])
        parts = [fn(batch) for batch in self.scoring_batches(X)]
        if not parts or parts[0] is None:
            return None
        return torch.cat(parts)[:n_rows]

    def _check_new_data(self, X) -> np.ndarray:
        return check_new_data(self, X)

    def network_input(self, X) -> torch.Tensor:
        """New data ``X`` checked against the fitted features, standardised and on the device.

        What the families' own public methods (e.g. ``codes(X)``) feed their network.
        """
        self._check_fitted()
        if self._has_members():
            raise ParameterError(f"this {type(self).__name__} holds {len(self.members_)} networks "
                                 f"(n_members={len(self.members_)}); call the method on one of `members_`")
        return self._to_tensor(self._check_new_data(X))

    @contextlib.contextmanager
    def scoring_context(self, rows: int):
        """Seeded, thread-budgeted ``torch.inference_mode`` with the network in eval mode, as scoring uses.

        Under :meth:`autocast` too, so with ``amp=True`` on a GPU the forward passes run in bfloat16.
        """
        self.net_.eval()
        with self._seeded(offset=1), self._compute_settings(rows=rows), torch.inference_mode(), self.autocast():
            yield

    def autocast(self):
        """``torch.autocast`` in bfloat16 when ``amp=True`` on a CUDA device, else a context that does nothing."""
        device = torch.device(getattr(self, "device_", "cpu"))
        if self.amp and device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _check_finite_scores(self, scores, which):
        finite = np.isfinite(scores)
        if finite.all():
            return
        rows = np.flatnonzero(~finite)
        where = f"{scores[rows[0]]} for row {rows[0]}{and_more_rows(rows.size)}"
        if which == "training":  # the network itself diverged
            raise TrainingError(f"the model produced a non-finite training score ({where}); refit with a "
                                f"lower learning rate (lr={self.lr}) or fewer epochs")
        # inputs reach the network clipped to +-INPUT_BOUND, so this is the network, not the data
        raise TrainingError(f"the model produced a non-finite score ({where}) although its inputs are clipped "
                            f"to +-{INPUT_BOUND:g} (standardised units); the fitted network is numerically "
                            "unusable on these rows: refit it, e.g. with weight_decay > 0")

    # ---- PyOD's names -------------------------------------------------------

    @property
    def model_(self) -> torch.nn.Module:
        """The fitted network ``net_`` (read-only), under the name PyOD's deep detectors use."""
        if "net_" not in self.__dict__:
            if self._has_members():
                raise AttributeError(f"{type(self).__name__} holds {len(self.members_)} networks "
                                     f"(n_members={len(self.members_)}): use members_[k].model_")
            raise AttributeError(f"{type(self).__name__} has no model_ before fit()")
        return self.net_

    # ---- helpers ------------------------------------------------------------

    def _n_networks(self) -> int:
        from .members import resolved_members

        return resolved_members(self)[0]

    def _has_members(self) -> bool:
        return getattr(self, "members_", None) is not None

    def _check_fitted(self) -> None:
        check_is_fitted(self, ["members_" if self._has_members() else "net_", "decision_scores_"])

    def hidden_widths(self) -> tuple:
        """``hidden_dims`` as a tuple of ints (a single int means one hidden layer; "auto" the backbone's default)."""
        if isinstance(self.hidden_dims, str) and self.hidden_dims == "auto":
            return tuple(getattr(get_backbone(self.backbone), "default_hidden_dims", DEFAULT_HIDDEN_DIMS))
        if isinstance(self.hidden_dims, numbers.Integral):
            return (int(self.hidden_dims),)
        return tuple(int(h) for h in self.hidden_dims)

    def scaling(self) -> str | None:
        """The scaling ``standardize`` resolves to: "feature", "global" or None (see the parameter)."""
        if self.standardize is True:
            return getattr(get_backbone(self.backbone), "scaling", "feature")
        return self.standardize or None

    def _widest_layer(self) -> int:
        """Values per row of the network's largest activation."""
        widest = getattr(get_backbone(self.backbone), "widest", None)
        layers = (widest(self, self.n_features_in_),) if widest else self.hidden_widths()
        return max(self.n_features_in_, *layers, self.latent_dim)

    def _to_tensor(self, X: np.ndarray) -> torch.Tensor:
        """Standardise (in float64, for precision), clip to ``±INPUT_BOUND`` and cast to float32, chunk by chunk.

        Chunks keep the float64 temporaries in cache; one pass over a large matrix
        costs about a third of the whole-array expression. The clip keeps a row with an
        extreme value (1e30, 1e308) finite through the network (see ``INPUT_BOUND``).
        On a GPU the chunks are written into two pinned host buffers in turn and copied
        asynchronously, so the copy of one chunk overlaps the standardising of the next.
        """
        device = torch.device(self.device_)
        if device.type == "cuda" and X.shape[0]:
            return self._to_gpu(X, device)
        out = np.empty(X.shape, dtype=np.float32)
        for start in range(0, X.shape[0], _STANDARDISE_CHUNK_ROWS):
            chunk = slice(start, start + _STANDARDISE_CHUNK_ROWS)
            self._standardise_into(X[chunk], out[chunk])
        return torch.from_numpy(out)

    def _to_gpu(self, X: np.ndarray, device: torch.device) -> torch.Tensor:
        out = torch.empty(X.shape, dtype=torch.float32, device=device)
        chunk_rows = min(_STANDARDISE_CHUNK_ROWS, X.shape[0])
        staging = [torch.empty((chunk_rows, *X.shape[1:]), dtype=torch.float32, pin_memory=True) for _ in range(2)]
        copied = [None, None]  # the event after each buffer's last copy
        stream = torch.cuda.current_stream(device)
        for i, start in enumerate(range(0, X.shape[0], chunk_rows)):
            rows = min(chunk_rows, X.shape[0] - start)
            buffer = staging[i % 2]
            if copied[i % 2] is not None:
                copied[i % 2].synchronize()  # its previous chunk has left the buffer
            self._standardise_into(X[start:start + rows], buffer[:rows].numpy())
            out[start:start + rows].copy_(buffer[:rows], non_blocking=True)
            copied[i % 2] = torch.cuda.Event()
            copied[i % 2].record(stream)
        for event in copied:
            if event is not None:
                event.synchronize()
        return out

    def _standardise_into(self, rows: np.ndarray, out: np.ndarray) -> None:
        """Write the standardised, clipped float32 values of ``rows`` into ``out``."""
        with np.errstate(over="ignore"):  # (1e308 - -1e308) is inf, then clipped
            values = rows - self.scaler_mean_
            values /= self.scaler_scale_
            np.clip(values, -INPUT_BOUND, INPUT_BOUND, out=values)
            out[...] = values

    def random_generator(self) -> torch.Generator:
        """A new CPU generator seeded from ``random_state``: the same draws on every fit with the same seed."""
        return torch.Generator().manual_seed(self.seed_)

    @contextlib.contextmanager
    def _seeded(self, offset: int = 0):
        """Run with torch's global RNG seeded from ``random_state``, leaving the caller's RNG untouched."""
        device = torch.device(self.device_)
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed_ + offset)
            yield

    @contextlib.contextmanager
    def _compute_settings(self, rows: int):
        """The settings of the work in the block: threads on the CPU, cuDNN's on a GPU.

        On the CPU, use one intra-op thread when each operation touches few elements:
        ``rows`` is the number of rows one operation processes (the batch size when
        training, the data size when scoring); below ``_SINGLE_THREAD_WORK`` elements,
        handing work to more threads costs more than it saves. On a GPU, cuDNN's
        convolutions are deterministic and in float32 (no TF32), so that the same seed
        gives the same scores and scores agree with the CPU's to float32 rounding;
        ``amp=True`` is the fast, lower-precision path.
        """
        if torch.device(self.device_).type != "cpu":
            with torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, benchmark=False,
                                            deterministic=True, allow_tf32=False):
                yield
            return
        widest = self._widest_layer()
        previous = torch.get_num_threads()
        if rows * widest <= _SINGLE_THREAD_WORK:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(previous)

    def _check_engine_params(self):
        dims = self.hidden_dims
        if isinstance(dims, str) and dims == "auto":
            dims = ()
        elif isinstance(dims, numbers.Integral) and not isinstance(dims, bool):
            dims = (dims,)
        if not isinstance(dims, (tuple, list)) or not all(
                isinstance(h, numbers.Integral) and not isinstance(h, bool) and h >= 1 for h in dims):
            raise ParameterError(f"hidden_dims must be 'auto' or a sequence of positive integers, got "
                                 f"{self.hidden_dims!r}")
        check_number("latent_dim", self.latent_dim, 1, integer=True)
        check_choice("activation", self.activation, sorted(ACTIVATIONS))
        check_number("dropout", self.dropout, 0, 0.99)
        if not isinstance(self.batch_norm, bool):
            raise ParameterError(f"batch_norm must be True or False, got {self.batch_norm!r}")
        if not (isinstance(self.standardize, bool) or self.standardize in ("feature", "global")):
            raise ParameterError(f"standardize must be True, False, 'feature' or 'global', got {self.standardize!r}")
        check_number("lr", self.lr, 0, low_open=True)
        check_number("weight_decay", self.weight_decay, 0)
        check_number("epochs", self.epochs, 0, integer=True)
        check_number("batch_size", self.batch_size, 1, integer=True)
        check_number("validation_fraction", self.validation_fraction, 0, 0.5)
        check_number("patience", self.patience, 1, integer=True)
        check_number("activity_l1", self.activity_l1, 0)
        if isinstance(self.latent_knn_weight, str):
            check_choice("latent_knn_weight", self.latent_knn_weight, ["auto"])  # or a number
        else:
            check_number("latent_knn_weight", self.latent_knn_weight, 0, 1)
        check_number("latent_knn_k", self.latent_knn_k, 1, integer=True)
        check_number("latent_reference_size", self.latent_reference_size, 2, integer=True)
        check_choice("latent_space", self.latent_space, ["auto", "code", "features"])
        if self.latent_detector is not None and self.latent_detector not in latent.CODE_DETECTORS:
            raise ParameterError(f"latent_detector must be None (the kNN distance) or a PyOD detector whose score of "
                                 f"a row does not depend on the rows scored with it: "
                                 f"{', '.join(map(repr, latent.CODE_DETECTORS))}; got {self.latent_detector!r}")
        check_choice("corruption", self.corruption, [None, "gaussian", "mask"])
        from .members import check_member_params

        check_member_params(self)
        get_backbone(self.backbone)
        check_shape("input_shape", self.input_shape)
        check_number("corruption_level", self.corruption_level, 0, None if self.corruption == "gaussian" else 1)
        check_contamination(self.contamination)
        if not isinstance(self.amp, bool):
            raise ParameterError(f"amp must be True or False, got {self.amp!r}")
        device = resolve_device(self.device)
        if self.amp and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise DeviceError(f"amp=True needs a GPU with bfloat16 (compute capability 8.0 or later), and "
                              f"{torch.cuda.get_device_name(device)} has none; use amp=False")

    # ---- persistence --------------------------------------------------------

    def save(self, path, signing_key=None) -> None:
        """Save the fitted detector to ``path`` (JSON metadata + safetensors; no pickle).

        ``signing_key`` (bytes or str; default ``$ADSCORE_SIGNING_KEY``) signs the file.
        """
        from .persistence import save_detector

        save_detector(self, path, signing_key=signing_key)

    @classmethod
    def load(cls, path, signing_key=None):
        """Load a detector saved with :meth:`save`; checks that it is a ``cls``.

        With a ``signing_key`` (or ``$ADSCORE_SIGNING_KEY``) the file must be signed with it.
        """
        from .persistence import load_detector

        detector = load_detector(path, signing_key=signing_key)
        if not isinstance(detector, cls):
            from .errors import ModelFileError

            raise ModelFileError(f"{path} holds a {type(detector).__name__}, not a {cls.__name__}")
        return detector

    def to_device(self, device):
        """Move the fitted detector to ``device`` ("cpu", "cuda", "cuda:N" or "auto"); returns ``self``.

        Sets the ``device`` parameter and rebuilds every fitted tensor there (networks,
        members, latent references, family state) from the same checked state a model
        file holds, so scoring afterwards runs on ``device``. Scores agree with the
        old device's to float32 rounding (at most 2e-7 of the largest score between CPU
        and an H100 for every family; benchmarks/RESULTS.md, "GPU").
        """
        self._check_fitted()
        from .persistence import state_placed_on

        resolve_device(device)
        meta, tensors = self._fitted_state()
        moved = state_placed_on(meta, device)
        previous, classes = self.device, self.__dict__.get("_classes")
        self.device = device
        try:
            self._restore_fitted_state(moved, tensors)
        except BaseException:
            self.device = previous
            self._restore_fitted_state(meta, tensors)
            raise
        finally:
            if classes is not None:
                self._classes = classes
        return self

    def _fitted_state(self) -> tuple[dict, dict]:
        """(JSON-able fitted attributes, tensors) that reconstruct this fitted detector."""
        self._check_fitted()
        if self._has_members():
            from .members import members_state

            return members_state(self)
        extra_meta, extra_tensors = self.extra_fitted_state()
        meta = {
            "n_features_in": self.n_features_in_,
            "seed": self.seed_,
            "history": self.history_,
            "n_epochs": getattr(self, "n_epochs_", None),
            **extra_meta,
        }
        # clone: parameters are views of one training buffer, and safetensors stores no shared memory
        tensors = {f"net.{k}": v.detach().cpu().clone() for k, v in self.net_.state_dict().items()}
        tensors["scaler.mean"] = torch.from_numpy(self.scaler_mean_)
        tensors["scaler.scale"] = torch.from_numpy(self.scaler_scale_)
        tensors["decision_scores"] = torch.from_numpy(np.asarray(self.decision_scores_, dtype=np.float64))
        tensors.update({f"extra.{k}": v for k, v in extra_tensors.items()})
        if self.resolved_latent_weight():
            meta["latent_standardisers"] = list(self.latent_standardisers_)
            tensors["latent.reference"] = self.latent_reference_.detach().cpu().clone()
            if self.latent_detector is not None:
                from .persistence import skops_tensor

                tensors["latent.detector"] = skops_tensor(self.latent_detector_,
                                                          f"latent detector {self.latent_detector!r}")
        return meta, tensors

    def _restore_fitted_state(self, meta: dict, tensors: dict) -> None:
        """Inverse of :meth:`_fitted_state`; a bad entry is an ``InconsistentModelError``."""
        from .errors import InconsistentModelError
        from .persistence import require_int, require_tensor

        if self._n_networks() > 1:
            from .members import restore_members

            restore_members(self, meta, tensors)
            return
        n_features = require_int(meta, "n_features_in", minimum=1)
        scaler_mean = require_tensor(tensors, "scaler.mean", shape=(n_features,))
        scaler_scale = require_tensor(tensors, "scaler.scale", shape=(n_features,), positive=True)
        scores = require_tensor(tensors, "decision_scores", ndim=1)
        history = meta.get("history", {"loss": [], "val_loss": []})
        if not isinstance(history, dict):
            raise InconsistentModelError(f"state entry 'history' must be an object, got {type(history).__name__}")
        try:
            get_backbone(self.backbone).check(self, n_features)
        except ParameterError as exc:
            raise InconsistentModelError(f"its parameters do not fit its {n_features} features: {exc}") from None
        if self.scaling() == "global" and not (_constant(scaler_mean) and _constant(scaler_scale)):
            raise InconsistentModelError("it scales globally (one mean and one scale for all features) but its "
                                         "tensors 'scaler.mean'/'scaler.scale' vary between features")
        self.n_features_in_ = n_features
        self.seed_ = require_int(meta, "seed", minimum=0, maximum=2**63 - 2)
        self.history_ = history
        if meta.get("n_epochs") is not None:
            self.n_epochs_ = require_int(meta, "n_epochs", minimum=0)
        self.device_ = str(resolve_device(self.device))
        self.scaler_mean_ = scaler_mean.numpy().astype(np.float64)
        self.scaler_scale_ = scaler_scale.numpy().astype(np.float64)
        self.decision_scores_ = scores.numpy().astype(np.float64)
        self._set_n_classes(None)
        self.restore_extra_fitted_state(meta, {k[len("extra."):]: v for k, v in tensors.items()
                                               if k.startswith("extra.")})
        with self._seeded():
            net = self.build_network(self.n_features_in_)
        state = {k[len("net."):]: v for k, v in tensors.items() if k.startswith("net.")}
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            detail = " ".join(str(exc).split())
            raise InconsistentModelError(f"its network weights do not fit a {type(self).__name__} with the saved "
                                         f"parameters ({detail[:300]})") from None
        # eval mode before anything runs the network: a BatchNorm layer in training mode would
        # update its running statistics (the width probe of the latent reference did)
        self.net_ = net.to(self.device_).eval()
        if self.resolved_latent_weight():
            self._restore_latent(meta, tensors)

    def _restore_latent(self, meta: dict, tensors: dict) -> None:
        from .errors import InconsistentModelError
        from .persistence import require_tensor

        reference = require_tensor(tensors, "latent.reference", ndim=2)
        standardisers = meta.get("latent_standardisers")
        if not (isinstance(standardisers, list) and len(standardisers) == 4
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                        for v in standardisers) and standardisers[1] > 0 and standardisers[3] > 0):
            raise InconsistentModelError("state entry 'latent_standardisers' must be 4 finite numbers "
                                         "(positive spreads)")
        with torch.inference_mode():
            width = self.latent_points(self.net_, torch.zeros(1, self.n_features_in_, device=self.device_)).shape[1]
        if reference.shape[1] != width:
            raise InconsistentModelError(f"tensor 'latent.reference' has points of width {reference.shape[1]}, "
                                         f"the network makes {self.resolved_latent_space()} points of width {width}")
        self.latent_reference_ = reference.float().to(self.device_)
        self.latent_standardisers_ = tuple(float(v) for v in standardisers)
        if self.latent_detector is not None:
            from .persistence import skops_object
            from .registry import find_detector

            self.latent_detector_ = skops_object(tensors, "latent.detector", find_detector(self.latent_detector).cls,
                                                 f"its latent detector {self.latent_detector!r}")
            problem = latent.code_detector_problem(self.latent_detector_, width)
            if problem:
                raise InconsistentModelError(f"its latent detector {self.latent_detector!r} {problem}")



def column_statistics(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and (population) standard deviation, without overflow.

    Columns whose plain statistics overflow (values near 1e155 and beyond, whose squares
    exceed float64) are computed again after dividing the column by its largest
    magnitude, then scaled back: the mean and standard deviation of a column never
    exceed its largest magnitude, so both are finite for any finite data. Other
    columns keep numpy's plain result, bit for bit.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        mean = X.mean(axis=0)
        std = X.std(axis=0)
    overflowed = ~(np.isfinite(mean) & np.isfinite(std))
    if overflowed.any():
        columns = X[:, overflowed]
        peak = np.abs(columns).max(axis=0)
        unit = columns / peak
        mean[overflowed] = unit.mean(axis=0) * peak
        std[overflowed] = unit.std(axis=0) * peak
    return mean, std


def _standardisation(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature centre (the mean) and scale (the standard deviation with a floor).

    ``scale_j = max(std_j, SCALE_FLOOR_POOLED * median_k std_k, q * spread_j / 2)``
    where ``spread_j`` is the feature's range without its most extreme value at either
    end (second largest minus second smallest) and ``q`` the ``SCALE_FLOOR_FILL``
    quantile of ``std_k / (spread_k / 2)`` divided by ``SCALE_FLOOR_FILL_TOLERANCE``,
    both over the non-constant features ``k`` (the quantile leaves out features whose
    spread is 0 or whose std exceeds half their spread: one extreme value makes such a
    std). A constant feature gets the pooled floor (1 when every feature is constant).
    See the ``standardize`` parameter of :class:`AutoEncoderDetector`.
    """
    mean, std = column_statistics(X)
    constant = std <= 1e-12 * np.maximum(1.0, np.abs(mean))
    high, low = _second_extremes(X)
    half_spread = high / 2 - low / 2  # finite even for data spanning +-1e308
    floor = np.zeros_like(std)
    varying = ~constant
    if varying.any():
        floor = np.full_like(std, SCALE_FLOOR_POOLED * float(np.median(std[varying])))
        # std / (spread / 2) is at most about 1, unless one extreme value makes the std:
        # such a column says nothing about how features fill their spread
        with np.errstate(divide="ignore", invalid="ignore"):
            fill = std / half_spread
        typical = varying & (half_spread > 0) & (fill <= 1)
        if typical.any():
            q = float(np.quantile(fill[typical], SCALE_FLOOR_FILL)) / SCALE_FLOOR_FILL_TOLERANCE
            floor = np.maximum(floor, q * half_spread)
    scale = np.maximum(std, floor)
    scale[constant] = floor[constant]
    scale[~(scale > 0)] = 1.0  # every feature constant
    return mean, scale


def _global_standardisation(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One centre and one scale for every feature: the mean and standard deviation of all values.

    The scale is 1 when every value is the same. Computed without overflow like
    :func:`column_statistics` (all values as one column).
    """
    mean, std = column_statistics(X.reshape(-1, 1))
    mean, std = float(mean[0]), float(std[0])
    scale = std if std > 1e-12 * max(1.0, abs(mean)) else 1.0
    return np.full(X.shape[1], mean), np.full(X.shape[1], scale)


def _constant(values: torch.Tensor) -> bool:
    return bool((values == values.reshape(-1)[0]).all())


def _second_extremes(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the second largest and the second smallest value (counting ties; max and min below 4 rows).

    One pass over row chunks (no sort): the largest value, how often it occurs, and the
    largest value below it; likewise at the bottom.
    """
    top, bottom = X.max(axis=0), X.min(axis=0)
    if X.shape[0] < 4:
        return top, bottom
    below_top = np.full(X.shape[1], -np.inf)
    above_bottom = np.full(X.shape[1], np.inf)
    n_top = np.zeros(X.shape[1], dtype=np.int64)
    n_bottom = np.zeros(X.shape[1], dtype=np.int64)
    for start in range(0, X.shape[0], _STANDARDISE_CHUNK_ROWS // 4):
        chunk = X[start:start + _STANDARDISE_CHUNK_ROWS // 4]
        at_top, at_bottom = chunk == top, chunk == bottom
        n_top += at_top.sum(axis=0)
        n_bottom += at_bottom.sum(axis=0)
        np.maximum(below_top, np.where(at_top, -np.inf, chunk).max(axis=0), out=below_top)
        np.minimum(above_bottom, np.where(at_bottom, np.inf, chunk).min(axis=0), out=above_bottom)
    return np.where(n_top > 1, top, below_top), np.where(n_bottom > 1, bottom, above_bottom)


def _check_raw_bound(X: np.ndarray, names) -> None:
    """With ``standardize=False`` the network sees raw values, which must lie within ``±INPUT_BOUND``."""
    outside = np.abs(X) > INPUT_BOUND
    if outside.any():
        row, col = np.argwhere(outside)[0]
        raise DataError(f"X contains {X[row, col]:g} in feature {column_label(names, col)!r} at row {row}: with "
                        f"standardize=False the network sees raw values, which must lie within +-{INPUT_BOUND:g}; "
                        "use standardize=True or rescale the data")


def _activity_modules(net) -> list:
    """Modules whose outputs are the encoder's activations: hidden layers and the code."""
    encoder = getattr(net, "encoder", None)
    if encoder is None:
        raise ParameterError("activity_l1 needs a network with an `encoder` attribute")
    activations = tuple(ACTIVATIONS.values())
    hidden = [m for m in encoder.modules() if isinstance(m, activations)]
    return [*hidden, encoder]

