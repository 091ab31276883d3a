"""Members: many networks of one family in one detector, trained as one batched computation.

With ``n_members = K > 1`` an autoencoder detector fits K networks of its family
instead of one (Chen et al. 2017, "Outlier detection with autoencoder ensembles";
Zimek et al. 2013, subsampling for outlier ensembles). Member k is the detector itself
with ``n_members=1``, its own seed (drawn from ``random_state``), optionally its own
rows (``member_subsample``) and its own hyperparameters (``member_params[k]``).

Members whose parameters differ only by seed are trained **as one computation**: their
weights are stacked along a leading member axis (:func:`torch.func.stack_module_state`)
and the family's own per-batch loss, written for one network, is mapped over that axis
with :func:`torch.func.vmap` — one forward, one backward and one Adam step update all
of them. Each member keeps its own initialisation, shuffling and rows, so a member
trained in the batch is the member trained alone (to float rounding) whenever the loss
draws no random numbers (no dropout, corruption or sampling). Callbacks that act between
epochs run for each member on its own network when they are marked
:attr:`~pyod_ae_ext.training.Callback.batch_safe` (RDAE's alternation, the k-sparse
schedule). Families with other between-epoch callbacks (the soft-boundary radius, early
stopping), BatchNorm, recurrent backbones, or their own optimiser train their members
one after the other; the result is the same kind of model.

Scores: member k's score ``s_k(x)`` is standardised with the mean and standard
deviation of its own training scores, and the detector's score is their mean::

    score(x) = (1/K) * sum_k (s_k(x) - mean_k) / std_k

so every member counts equally whatever its scale. Each member is a complete detector
(``members_``), inspectable and scorable on its own (:func:`member_scores`).
"""
from __future__ import annotations

import math
import numbers
import sys
import time

import numpy as np
import torch
from sklearn.base import clone
from sklearn.utils import check_random_state

from . import latent
from .errors import ParameterError, TrainingError
from .training import Callback, TrainingLoop
from .validation import check_number

MEMBER_PARAMETERS = ("n_members", "member_subsample", "member_params")
"""Parameters of the detector that describe its members (not passed on to them)."""

AUTO_MEMBERS = 10
AUTO_SUBSAMPLE = 512
"""``n_members="auto"`` and ``member_subsample="auto"``: 10 networks on 512 rows each for
the fully connected backbone (chosen on the shared ADBench sets in both protocols,
``benchmarks/members.py``); one network on every row for structured backbones (images,
sequences), where this was not measured."""


def resolved_members(detector) -> tuple[int, object]:
    """``(n_members, member_subsample)`` with ``"auto"`` replaced by its rule (see :data:`AUTO_SUBSAMPLE`)."""
    structured = detector.backbone != "mlp"
    n_members = detector.n_members
    if isinstance(n_members, str) and n_members == "auto":
        n_members = 1 if structured else AUTO_MEMBERS
    subsample = detector.member_subsample
    if isinstance(subsample, str) and subsample == "auto":
        subsample = None if structured or n_members == 1 else AUTO_SUBSAMPLE
    return n_members, subsample


# ---- parameters -------------------------------------------------------------


def check_member_params(detector) -> None:
    """Raise :class:`ParameterError` for a bad ``n_members``, ``member_subsample`` or ``member_params``."""
    for name in ("n_members", "member_subsample"):
        value = getattr(detector, name)
        if isinstance(value, str) and value != "auto":
            raise ParameterError(f"{name} must be a number or 'auto', got {value!r}")
    n_members, subsample = resolved_members(detector)
    check_number("n_members", n_members, 1, integer=True)
    if subsample is not None:
        if isinstance(subsample, bool) or not isinstance(subsample, numbers.Real):
            raise ParameterError(f"member_subsample must be None, a fraction in (0, 1] or a number of rows "
                                 f">= 2, got {subsample!r}")
        if isinstance(subsample, numbers.Integral):
            check_number("member_subsample", subsample, 2, integer=True)
        else:
            check_number("member_subsample", subsample, 0, 1, low_open=True)
    overrides = detector.member_params
    if overrides is None:
        return
    if not isinstance(overrides, (list, tuple)) or len(overrides) != n_members \
            or not all(isinstance(o, dict) for o in overrides):
        raise ParameterError(f"member_params must be None or a list of {n_members} dicts (one per member, "
                             f"n_members={n_members}), got {overrides!r}")
    allowed = set(detector.get_params(deep=False)) - set(MEMBER_PARAMETERS) - {"random_state"}
    for k, params in enumerate(overrides):
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise ParameterError(f"member_params[{k}] sets {', '.join(map(repr, unknown))}, which a member cannot "
                                 f"have of its own; allowed: {', '.join(sorted(allowed))}")
        member = _member_template(detector).set_params(**params)
        try:
            member.check_params()
        except ParameterError as exc:
            raise ParameterError(f"member_params[{k}]: {exc}") from None


def _member_template(detector):
    """The detector as one network: ``n_members=1``, no subsample, quiet."""
    return clone(detector).set_params(n_members=1, member_subsample=None, member_params=None, verbose=False)


def build_members(detector, seeds) -> list:
    """Unfitted member detectors: the template with member k's seed and overrides."""
    overrides = detector.member_params or [{}] * resolved_members(detector)[0]
    template = _member_template(detector)
    return [clone(template).set_params(random_state=int(seed), **params) for seed, params in zip(seeds, overrides)]


def member_rows(n_rows: int, subsample, n_members: int, rng) -> list:
    """Sorted row indices of each member's training rows (all rows when ``subsample`` is None)."""
    if subsample is None:
        return [np.arange(n_rows)] * n_members
    size = subsample if isinstance(subsample, numbers.Integral) else math.ceil(subsample * n_rows)
    size = min(max(int(size), 2), n_rows)
    return [np.sort(rng.choice(n_rows, size=size, replace=False)) for _ in range(n_members)]


# ---- fitting ----------------------------------------------------------------


def fit_members(detector, X: np.ndarray) -> None:
    """Fit ``detector.n_members`` members on the checked rows ``X``; set the detector's member state.

    Sets ``members_``, ``member_params_`` (each member's seed and overrides),
    ``member_sample_sizes_``, ``member_standardisers_`` and ``decision_scores_``.
    """
    rng = check_random_state(detector.random_state)
    n_members, subsample = resolved_members(detector)
    seeds = rng.randint(np.iinfo(np.int32).max, size=n_members)
    members = build_members(detector, seeds)
    rows = member_rows(X.shape[0], subsample, n_members, rng)
    for group in _training_groups(members):
        if len(group) > 1 and _phased_fit(members[group[0]]):
            _fit_group([members[k] for k in group], [X[rows[k]] for k in group], group, len(members),
                       detector.verbose)
        else:
            for k in group:
                _report(detector.verbose, f"member {k + 1}/{len(members)}: training alone")
                members[k].fit(X[rows[k]])
    detector.members_ = members
    detector.member_params_ = [{"random_state": int(seed), **params}
                               for seed, params in zip(seeds, detector.member_params or [{}] * len(members))]
    detector.member_sample_sizes_ = [len(index) for index in rows]
    detector.member_standardisers_ = np.array([latent.standardiser(np.asarray(m.decision_scores_, dtype=np.float64))
                                               for m in members])
    detector.decision_scores_ = _combined_training_scores(detector, X, rows)


def _combined_training_scores(detector, X: np.ndarray, rows: list) -> np.ndarray:
    """The combined score of every training row, each member scoring its own rows by its training scores.

    A member's training scores are what it says of the rows it was fitted on (e.g.
    without a row's own code among its latent neighbours); rows outside its subsample
    are new data to it.
    """
    columns = []
    for member, index in zip(detector.members_, rows):
        if len(index) == X.shape[0]:
            column = np.asarray(member.decision_scores_, dtype=np.float64)
        else:
            column = np.asarray(member.decision_function(X), dtype=np.float64)
            column[index] = member.decision_scores_
        columns.append(column)
    return _standardised(columns, detector.member_standardisers_).mean(axis=1)


def _phased_fit(member) -> bool:
    """Whether ``member`` is fitted by the engine's own ``fit`` (its phases may then be run separately)."""
    from .engine import AutoEncoderDetector

    return type(member).fit is AutoEncoderDetector.fit


def _fit_group(members, data, indices, total, verbose) -> None:
    """Fit members that differ only by seed: together when their training allows it, else one by one.

    The phases are those of the engine's ``fit``, so each member ends as if fitted alone.
    """
    checked, prepared = zip(*(member._begin_fit(X) for member, X in zip(members, data)))
    setups = [member._training_setup(X) for member, X in zip(members, prepared)]
    same_rows = len({setup[0].shape[0] for setup in setups}) == 1
    if same_rows and all(_batchable(member, *setup) for member, setup in zip(members, setups)):
        _report(verbose, f"members {', '.join(str(k + 1) for k in indices)} of {total}: training together")
        _train_together(members, setups, verbose)
    else:
        for k, member, X in zip(indices, members, prepared):
            _report(verbose, f"member {k + 1}/{total}: training alone")
            member._train_network(X)
    for member, X, X_std in zip(members, checked, prepared):
        member._set_n_classes(None)
        member._end_fit(X_std)
        member.finish_fit(X)
        member._check_finite_scores(member.decision_scores_, "training")
        member._process_decision_scores()


def _training_groups(members) -> list:
    """Member indices grouped by identical parameters apart from the seed (same network shapes)."""
    groups: dict = {}
    for k, member in enumerate(members):
        params = member.get_params(deep=False)
        params.pop("random_state")
        groups.setdefault(repr(sorted(params.items())), []).append(k)
    return list(groups.values())


def _batchable(member, train, validation, callbacks) -> bool:
    """Whether ``member``'s training can run stacked with others (see the module docstring)."""
    from .backbones import get_backbone

    if not member.trains_batched or validation is not None or member.batch_norm:
        return False
    if not getattr(get_backbone(member.backbone), "trains_batched", True):
        return False
    return all(callback.batch_safe or _between_epochs_free(callback) for callback in callbacks)


def _between_epochs_free(callback) -> bool:
    """True when ``callback`` acts only before or after training, never between epochs."""
    cls = type(callback)
    return cls.on_epoch_begin is Callback.on_epoch_begin and cls.on_epoch_end is Callback.on_epoch_end


class _FamilyLoss(torch.nn.Module):
    """``forward(batch)`` is the family's per-batch loss of ``net`` (what :func:`torch.func.functional_call` maps)."""

    def __init__(self, detector, net):
        super().__init__()
        self.net = net
        self._detector = detector

    def forward(self, batch):
        return self._detector.batch_loss(self.net, batch)


def _train_together(members, setups, verbose) -> None:
    """Train the networks of ``members`` (same shapes) as one stacked computation.

    ``setups`` holds each member's ``(train, validation, callbacks)``; each member's
    callbacks run as in its own training loop (before and after training under its own
    seed), and its rows are shuffled by its own generator. Callbacks that act between
    epochs (those marked :attr:`~pyod_ae_ext.training.Callback.batch_safe`) see the
    member's own network, holding its current weights, and may replace its training
    rows; a member whose callback stops training keeps the weights it had then, while
    the others go on.
    """
    from torch.func import functional_call, vmap

    from .observers import active_observers

    loops = [TrainingLoop(m, m.net_, train, None, callbacks=callbacks)
             for m, (train, _, callbacks) in zip(members, setups)]
    watchers = active_observers()  # e.g. the command line's progress bar: told once for the group
    epochs = members[0].n_training_epochs()
    for loop in loops:
        loop.callbacks = [c for c in loop.callbacks if c not in watchers]
        loop.epochs = epochs
    for member, loop in zip(members, loops):
        with member._seeded(offset=2), member._compute_settings(rows=member.batch_size):
            for callback in loop.callbacks:
                callback.on_train_begin(loop)
    for watcher in watchers:
        watcher.on_train_begin(loops[0])
    first = members[0]
    stacked_net = _stacked_network([m.net_ for m in members])
    params = dict(stacked_net.named_parameters())
    buffers = dict(stacked_net.named_buffers())
    optimizer = first.make_optimizer(stacked_net)
    family_loss = _FamilyLoss(first, first.net_)
    between_epochs = any(not _between_epochs_free(c) for loop in loops for c in loop.callbacks)
    stopped: dict = {}  # member index -> its weights when its callbacks stopped it

    def member_loss(member_params, member_buffers, batch):
        state = {f"net.{k}": v for k, v in {**member_params, **member_buffers}.items()}
        return functional_call(family_loss, state, (batch,))

    batched_loss = vmap(member_loss, randomness="different")
    batch_size = min(first.batch_size, loops[0].train.shape[0])
    with first._seeded(offset=2), first._compute_settings(rows=len(members) * batch_size):
        for epoch in range(epochs):
            for watcher in watchers:
                watcher.on_epoch_begin(loops[0], epoch)
            if between_epochs:
                _run_member_callbacks(members, loops, stopped, params, buffers,
                                      lambda loop, callback: callback.on_epoch_begin(loop, epoch))
            for net in (m.net_ for m in members):
                net.train()  # also after a callback evaluated it
            started = time.perf_counter()
            epoch_losses = _stacked_epoch(loops, batched_loss, params, buffers, optimizer, batch_size,
                                          first.autocast)
            seconds = time.perf_counter() - started
            for k, (member, loss) in enumerate(zip(members, epoch_losses)):
                if k in stopped:
                    continue
                if not math.isfinite(loss):
                    raise TrainingError(f"training loss of member {k + 1} became {loss} at epoch {epoch + 1}; "
                                        f"lower the learning rate (lr={first.lr}) or check the data for "
                                        "extreme values")
                member.history_["loss"].append(loss)
            mean_loss = sum(epoch_losses) / len(members)
            _report(verbose, f"members x{len(members)} epoch {epoch + 1}/{epochs}  mean loss {mean_loss:.6g}  "
                             f"{seconds:.2f}s")
            if between_epochs:
                _run_member_callbacks(members, loops, stopped, params, buffers,
                                      lambda loop, callback: callback.on_epoch_end(
                                          loop, epoch, {"loss": loop.history["loss"][-1], "val_loss": None,
                                                        "seconds": seconds}))
            for watcher in watchers:
                watcher.on_epoch_end(loops[0], epoch, {"loss": mean_loss, "val_loss": None, "seconds": seconds})
            if len(stopped) == len(members):
                break
    optimizer.release()
    _copy_to_members(members, params, buffers)
    for k, state in stopped.items():
        members[k].net_.load_state_dict(state)
    for member, loop in zip(members, loops):
        member.n_epochs_ = len(member.history_["loss"])
        with member._seeded(offset=3), member._compute_settings(rows=member.batch_size):
            for callback in reversed(loop.callbacks):
                callback.on_train_end(loop)
    for watcher in watchers:
        watcher.on_train_end(loops[0])


def _stacked_epoch(loops, batched_loss, params, buffers, optimizer, batch_size, autocast) -> list:
    """One epoch of every member at once: each shuffles its own rows; returns each member's mean batch loss."""
    data = [loop.train for loop in loops]
    n_rows = data[0].shape[0]
    if any(x.shape != data[0].shape for x in data):
        raise TrainingError("members trained together must keep training rows of one shape; a callback changed "
                            "them (mark it batch_safe = False)")
    orders = [torch.randperm(n_rows, generator=loop.generator).to(x.device) for loop, x in zip(loops, data)]
    stacked = torch.stack([x[order] for x, order in zip(data, orders)])
    totals = torch.zeros(len(loops), device=stacked.device)
    steps = 0
    for start in range(0, n_rows, batch_size):
        with autocast():
            losses = batched_loss(params, buffers, stacked[:, start:start + batch_size])
        optimizer.zero_grad()
        losses.sum().backward()
        optimizer.step()
        totals += losses.detach().float()
        steps += 1
    return (totals / steps).tolist()


def _run_member_callbacks(members, loops, stopped, params, buffers, call) -> None:
    """``call(loop, callback)`` for every callback of every member still training, on its current weights.

    Each member's network first receives its slice of the stacked weights; whatever
    the callbacks leave in it goes back. A member whose callbacks set
    ``stop_training`` keeps its weights of this moment (in ``stopped``).
    """
    _copy_to_members(members, params, buffers)
    for k, (member, loop) in enumerate(zip(members, loops)):
        if k in stopped:
            continue
        with member._compute_settings(rows=member.batch_size):
            for callback in loop.callbacks:
                call(loop, callback)
        if loop.stop_training:
            stopped[k] = {name: value.detach().clone() for name, value in member.net_.state_dict().items()}
    with torch.no_grad():
        for k, member in enumerate(members):
            state = member.net_.state_dict()
            for name, value in (*params.items(), *buffers.items()):
                value[k].copy_(state[name])


def _copy_to_members(members, params, buffers) -> None:
    """Load member k's slice of the stacked weights into ``members[k].net_``."""
    with torch.no_grad():
        for k, member in enumerate(members):
            member.net_.load_state_dict({name: value[k] for name, value in (*params.items(), *buffers.items())})


def _stacked_network(nets):
    """A copy of ``nets[0]`` whose parameters and buffers hold every net's, stacked on a new first axis.

    The family's ``make_optimizer`` receives it like its own network (same names and
    attributes), so per-parameter settings carry over; Adam's update is elementwise, so
    one optimiser over the stacked tensors is one optimiser per member.
    """
    import copy

    stacked = copy.deepcopy(nets[0])
    for name, _ in nets[0].named_parameters():
        owner, attribute = _owner(stacked, name)
        values = torch.stack([dict(net.named_parameters())[name].detach() for net in nets])
        setattr(owner, attribute, torch.nn.Parameter(values, requires_grad=getattr(owner, attribute).requires_grad))
    for name, _ in nets[0].named_buffers():
        owner, attribute = _owner(stacked, name)
        owner.register_buffer(attribute, torch.stack([dict(net.named_buffers())[name] for net in nets]))
    return stacked


def _owner(module, dotted: str):
    """(sub-module, attribute name) that the dotted parameter or buffer name refers to."""
    *path, attribute = dotted.split(".")
    for part in path:
        module = getattr(module, part)
    return module, attribute


def _report(verbose: bool, line: str) -> None:
    if verbose:
        print(line, file=sys.stderr)


# ---- scoring ----------------------------------------------------------------


def _standardised(columns, standardisers: np.ndarray) -> np.ndarray:
    """Member score columns, each standardised with its member's (mean, spread)."""
    return (np.column_stack(columns) - standardisers[:, 0]) / standardisers[:, 1]


def member_scores(detector, X: np.ndarray) -> np.ndarray:
    """Each member's standardised score of the checked rows ``X``, shape (rows, n_members)."""
    return _standardised([member.decision_function(X) for member in detector.members_],
                         detector.member_standardisers_)


def combined_scores(detector, X: np.ndarray) -> np.ndarray:
    """The detector's score of ``X``: the mean of the members' standardised scores."""
    return member_scores(detector, X).mean(axis=1)


def combined_contributions(detector, X: np.ndarray) -> np.ndarray:
    """Per-feature contributions to the combined score: the mean of each member's, divided by its spread."""
    total = None
    for member, (_, spread) in zip(detector.members_, detector.member_standardisers_):
        part = member.feature_contributions(X) / spread
        total = part if total is None else total + part
    return total / len(detector.members_)


# ---- persistence ------------------------------------------------------------


def members_state(detector) -> tuple[dict, dict]:
    """(metadata, tensors) of a detector with members: each member's own state under ``member{k}.``."""
    from .persistence import detector_to_state

    members_meta, tensors = [], {}
    for k, member in enumerate(detector.members_):
        meta, member_tensors = detector_to_state(member)
        members_meta.append(meta)
        tensors.update({f"member{k}.{name}": value for name, value in member_tensors.items()})
    tensors["member_standardisers"] = torch.from_numpy(np.asarray(detector.member_standardisers_, dtype=np.float64))
    tensors["decision_scores"] = torch.from_numpy(np.asarray(detector.decision_scores_, dtype=np.float64))
    meta = {"n_features_in": int(detector.n_features_in_), "members": members_meta,
            "member_params": detector.member_params_, "member_sample_sizes": detector.member_sample_sizes_}
    return meta, tensors


def restore_members(detector, meta: dict, tensors: dict) -> None:
    """Inverse of :func:`members_state`; a bad entry is an ``InconsistentModelError``."""
    from .engine import resolve_device
    from .errors import InconsistentModelError
    from .persistence import detector_from_state, require_int, require_tensor

    n_features = require_int(meta, "n_features_in", minimum=1)
    k_members = int(resolved_members(detector)[0])
    members_meta, member_params, sizes = meta.get("members"), meta.get("member_params"), meta.get("member_sample_sizes")
    for key, value in (("members", members_meta), ("member_params", member_params),
                       ("member_sample_sizes", sizes)):
        if not isinstance(value, list) or len(value) != k_members:
            raise InconsistentModelError(f"state entry {key!r} must be a list of {k_members} entries "
                                         f"(n_members={k_members})")
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 2 for s in sizes):
        raise InconsistentModelError("state entry 'member_sample_sizes' must hold row counts >= 2")
    expected = build_members(detector, [0] * k_members)
    members = []
    for k, (member_meta, params) in enumerate(zip(members_meta, member_params)):
        if not isinstance(member_meta, dict) or not isinstance(params, dict) \
                or not isinstance(params.get("random_state"), int):
            raise InconsistentModelError(f"member {k + 1} must be a saved detector with its parameters and seed")
        member = detector_from_state(member_meta, {name[len(f"member{k}."):]: value for name, value in tensors.items()
                                                   if name.startswith(f"member{k}.")},
                                     source=f"member {k + 1}")
        wanted = expected[k].set_params(random_state=params["random_state"]).get_params(deep=False)
        if type(member) is not type(detector) or _plain(member.get_params(deep=False)) != _plain(wanted):
            raise InconsistentModelError(f"member {k + 1} is not this detector with n_members=1 and the member's "
                                         f"own seed and parameters")
        if member.n_features_in_ != n_features:
            raise InconsistentModelError(f"member {k + 1} was fitted on {member.n_features_in_} features, "
                                         f"the detector on {n_features}")
        members.append(member)
    detector.member_standardisers_ = require_tensor(tensors, "member_standardisers", shape=(k_members, 2)) \
        .numpy().astype(np.float64)
    if not (detector.member_standardisers_[:, 1] > 0).all():
        raise InconsistentModelError("tensor 'member_standardisers' must hold positive spreads")
    detector.decision_scores_ = require_tensor(tensors, "decision_scores", ndim=1).numpy().astype(np.float64)
    detector.n_features_in_ = n_features
    detector.members_ = members
    detector.member_params_ = member_params
    detector.member_sample_sizes_ = sizes
    detector.device_ = str(resolve_device(detector.device))
    detector._set_n_classes(None)


def _plain(value):
    """``value`` with tuples as lists, for comparing parameters that went through JSON."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
