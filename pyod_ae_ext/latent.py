"""Latent-space scoring: nearest-neighbour distances between codes, added to a family's own score.

An autoencoder's code ``E(x)`` places similar rows close together; a row far from
every training row in code space is unusual even when the decoder reconstructs it
well (the "connections with other methods" of the autoencoder literature: kNN on the
learned representation). With ``latent_knn_weight = w > 0`` the engine scores

    score(x) = (1 - w) * z_own(x) + w * z_knn(x)

where ``z_own`` is the family's own score and ``z_knn`` the mean distance from
``E(x)`` to its ``latent_knn_k`` nearest reference codes, each standardised with the
mean and standard deviation of its training-row values. The reference set is the codes
of at most ``latent_reference_size`` training rows, drawn by the detector's seed and
saved with the model, so memory and scoring time stay bounded and a row's score
depends on the row alone. A training row's own code is left out of its neighbours.

With ``latent_space="features"`` (the default of the "conv" image backbone) the
points are not the codes but the encoder's features before its code layer, each
scaled to unit length (:meth:`~pyod_ae_ext.engine.AutoEncoderDetector.latent_points`):
the deep nearest-neighbour score of Sun et al. (2022), whose distance between unit
vectors ranks neighbours as cosine similarity does. Everything below applies to
either kind of point.

``latent_detector`` replaces the kNN distance by one of PyOD's detectors
(:data:`CODE_DETECTORS`) fitted on the same reference codes: ``z_knn`` is then its
standardised ``decision_function`` of the row's code.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from .errors import ParameterError

_DISTANCE_BLOCK_ELEMENTS = 1 << 20  # rows x reference codes per distance block (cache-sized)


def choose_reference(n_rows: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Sorted indices of the (at most ``size``) training rows whose codes form the reference set."""
    if n_rows <= size:
        return torch.arange(n_rows)
    return torch.randperm(n_rows, generator=generator)[:size].sort().values


def knn_distance(codes: torch.Tensor, reference: torch.Tensor, k: int,
                 reference_rows: torch.Tensor | None = None) -> torch.Tensor:
    """Mean Euclidean distance from each code to its ``k`` nearest reference codes.

    ``reference_rows`` (training only) gives, for each row of ``codes``, the position of
    its own code in ``reference`` or -1; that entry is excluded, so a training row is
    not its own neighbour.

    The neighbours are chosen on squared distances computed as one matrix product in
    float64 around the reference's centroid (a partial selection, not a sort, on the
    CPU), and their distances are then computed exactly from the codes, so the result
    is the plain per-row computation's up to float rounding, without a distance matrix
    computed element by element or a full top-k. On the CPU, blocks of rows run on
    ``torch.get_num_threads()`` threads (the selection itself is single-threaded).
    """
    k = min(k, reference.shape[0] - (1 if reference_rows is not None else 0))
    if k < 1:
        return torch.zeros(codes.shape[0], dtype=codes.dtype, device=codes.device)
    centre = reference.double().mean(dim=0)
    centred_reference = reference.double() - centre
    reference_norms = (centred_reference * centred_reference).sum(dim=1)

    def block_distances(part: torch.Tensor, own: torch.Tensor | None) -> torch.Tensor:
        with torch.no_grad():
            # |x - r|^2 - |x|^2 (around the centre): the row's own norm does not change which references are nearest
            ordering = torch.addmm(reference_norms, part.double() - centre, centred_reference.T, alpha=-2)
            if own is not None:
                rows = torch.nonzero(own >= 0).flatten()
                ordering[rows, own[rows]] = float("inf")
            nearest = _k_smallest(ordering, k)
            return (part.unsqueeze(1) - reference[nearest]).norm(dim=2).mean(dim=1)

    block = max(1, _DISTANCE_BLOCK_ELEMENTS // max(1, reference.shape[0]))
    parts = codes.split(block)
    owns = reference_rows.split(block) if reference_rows is not None else [None] * len(parts)
    workers = min(torch.get_num_threads(), len(parts)) if codes.device.type == "cpu" else 1
    if workers <= 1:
        return torch.cat([block_distances(part, own) for part, own in zip(parts, owns)])
    with ThreadPoolExecutor(workers) as pool:
        return torch.cat(list(pool.map(block_distances, parts, owns)))


def _k_smallest(values: torch.Tensor, k: int) -> torch.Tensor:
    """Column positions of the ``k`` smallest values of each row, in no particular order."""
    if values.device.type == "cpu":  # numpy's introselect is several times faster than torch's CPU topk here
        return torch.from_numpy(np.argpartition(values.numpy(), k - 1, axis=1)[:, :k])
    return values.topk(k, dim=1, largest=False).indices


CODE_DETECTORS = ("iforest", "knn", "lof", "pca", "ocsvm", "hbos", "mcd", "gmm", "inne", "loda")
"""PyOD detectors ``latent_detector`` accepts: registered baselines whose score of a row does
not depend on the other rows scored with it (ECOD and COPOD refit on the scored rows)."""


def fit_code_detector(name: str, reference: torch.Tensor, seed: int):
    """PyOD's detector ``name`` fitted on the reference codes (its defaults; ``random_state=seed`` where it has one)."""
    from .registry import build_detector

    detector = build_detector(name, defaults={"random_state": seed})
    try:
        return detector.fit(_as_array(reference))
    except ValueError as exc:  # e.g. more neighbours than reference codes
        raise ParameterError(f"latent_detector={name!r} could not be fitted on {reference.shape[0]} reference "
                             f"codes ({exc}); fit on more rows or use latent_detector=None") from None


def code_detector_training_scores(detector, codes: torch.Tensor, reference_rows: torch.Tensor) -> np.ndarray:
    """Scores of the training rows' codes: PyOD's own training scores for the reference rows.

    A reference row's score comes from ``decision_scores_``, where PyOD's neighbour
    detectors leave the row itself out, as :func:`knn_distance` does.
    """
    scores = code_detector_scores(detector, codes)
    position = reference_rows.cpu().numpy()
    in_reference = position >= 0
    scores[in_reference] = np.asarray(detector.decision_scores_, dtype=np.float64)[position[in_reference]]
    return scores


def code_detector_scores(detector, codes: torch.Tensor) -> np.ndarray:
    """The PyOD detector's ``decision_function`` of each code."""
    return np.asarray(detector.decision_function(_as_array(codes)), dtype=np.float64)


def code_detector_problem(detector, width: int) -> str | None:
    """Why a loaded latent detector cannot score codes of ``width`` values, or None."""
    try:
        scores = code_detector_scores(detector, torch.zeros(1, width))
    except Exception as exc:  # a crafted or mismatched state fails here, not when the user scores
        return f"cannot score codes of width {width} ({type(exc).__name__}: {str(exc)[:200]})"
    if scores.shape != (1,):
        return f"returns {scores.shape} scores for one code"
    return None


def _as_array(codes: torch.Tensor) -> np.ndarray:
    return codes.detach().double().cpu().numpy()


def standardiser(values: np.ndarray) -> tuple[float, float]:
    """(mean, standard deviation) of training-row scores; a zero spread becomes 1."""
    mean = float(np.mean(values))
    spread = float(np.std(values))
    return mean, spread if spread > 0 and np.isfinite(spread) else 1.0
