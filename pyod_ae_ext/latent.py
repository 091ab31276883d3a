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
"""
from __future__ import annotations

import numpy as np
import torch

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
    computed element by element or a full top-k.
    """
    k = min(k, reference.shape[0] - (1 if reference_rows is not None else 0))
    if k < 1:
        return torch.zeros(codes.shape[0], dtype=codes.dtype, device=codes.device)
    centre = reference.double().mean(dim=0)
    centred_reference = reference.double() - centre
    reference_norms = (centred_reference * centred_reference).sum(dim=1)
    block = max(1, _DISTANCE_BLOCK_ELEMENTS // max(1, reference.shape[0]))
    out = []
    for start in range(0, codes.shape[0], block):
        part = codes[start:start + block]
        # |x - r|^2 - |x|^2: the row's own norm does not change which references are nearest
        ordering = torch.addmm(reference_norms, part.double() - centre, centred_reference.T, alpha=-2)
        if reference_rows is not None:
            own = reference_rows[start:start + block]
            rows = torch.nonzero(own >= 0).flatten()
            ordering[rows, own[rows]] = float("inf")
        nearest = _k_smallest(ordering, k)
        distances = (part.unsqueeze(1) - reference[nearest]).norm(dim=2)
        out.append(distances.mean(dim=1))
    return torch.cat(out)


def _k_smallest(values: torch.Tensor, k: int) -> torch.Tensor:
    """Column positions of the ``k`` smallest values of each row, in no particular order."""
    if values.device.type == "cpu":  # numpy's introselect is several times faster than torch's CPU topk here
        return torch.from_numpy(np.argpartition(values.numpy(), k - 1, axis=1)[:, :k])
    return values.topk(k, dim=1, largest=False).indices


def standardiser(values: np.ndarray) -> tuple[float, float]:
    """(mean, standard deviation) of training-row scores; a zero spread becomes 1."""
    mean = float(np.mean(values))
    spread = float(np.std(values))
    return mean, spread if spread > 0 and np.isfinite(spread) else 1.0
