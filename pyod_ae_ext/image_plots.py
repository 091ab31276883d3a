"""``explain --plot`` for images: input, reconstruction and error map side by side.

One figure row per explained image (the highest scores first): the input, the
network's reconstruction (:meth:`~pyod_ae_ext.engine.AutoEncoderDetector.reconstruct`,
in the data's units, on the input's grey or colour scale) and the error map, the
per-pixel contributions to the score (:meth:`feature_contributions`, summed over
channels; where a family has none, the squared reconstruction error in standardised
units). A family without a reconstruction (Deep SVDD) shows the input only. Uses
matplotlib's Agg canvas directly (no pyplot, no global state); written atomically.
"""
from __future__ import annotations

import io

import numpy as np

MAX_IMAGES = 8
_PANEL_INCHES = 2.2


def image_panels(detector, X: np.ndarray, shape) -> dict:
    """What the plot shows for the rows ``X``: ``inputs``, ``reconstructions`` and ``errors`` ((H, W) maps).

    ``reconstructions`` and ``errors`` are None where the detector has no reconstruction
    (and no per-pixel contributions).
    """
    X = np.asarray(X, dtype=np.float64)
    images = X.reshape(len(X), *shape)
    try:
        recon = detector.reconstruct(X).reshape(images.shape)
    except (NotImplementedError, AttributeError):
        recon = None
    try:
        contributions = np.asarray(detector.feature_contributions(X), dtype=np.float64)
        errors = contributions.reshape(images.shape).sum(axis=1)
        error_title = "per-pixel contribution"
    except (NotImplementedError, AttributeError):
        errors, error_title = None, None
    if errors is None and recon is not None:
        scale = np.asarray(detector.scaler_scale_).reshape(shape)
        errors = (((recon - images) / scale) ** 2).sum(axis=1)
        error_title = "squared error (std. units)"
    return {"inputs": images, "reconstructions": recon, "errors": errors, "error_title": error_title}


def _displayable(images: np.ndarray, low: float, high: float) -> tuple:
    """(array for imshow, colormap): grey (C = 1, 2) or RGB (C = 3, 4) scaled to [0, 1] by ``low``/``high``."""
    scaled = np.clip((images - low) / (high - low if high > low else 1.0), 0.0, 1.0)
    if scaled.shape[0] >= 3:
        return scaled[:3].transpose(1, 2, 0), None
    return scaled.mean(axis=0), "gray"


def plot_image_explanation(path, detector, X, rows, scores, threshold, shape, labels=None, title=None) -> None:
    """Write a PNG explaining the images ``X[rows]`` (at most :data:`MAX_IMAGES`, in the given order).

    ``labels`` are optional captions per row (e.g. file names); ``scores`` are the
    rows' scores, flagged when above ``threshold``.
    """
    from .analysis import require_matplotlib
    from .outputs import write_output

    Figure, FigureCanvasAgg = require_matplotlib()
    rows = list(rows)[:MAX_IMAGES]
    panels = image_panels(detector, np.asarray(X)[rows], shape)
    columns = 1 + (panels["reconstructions"] is not None) + (panels["errors"] is not None)
    figure = Figure(figsize=(_PANEL_INCHES * columns + 0.6, _PANEL_INCHES * len(rows) + 0.6), layout="constrained")
    FigureCanvasAgg(figure)
    if title:
        figure.suptitle(title)
    grid = figure.subplots(len(rows), columns, squeeze=False)
    for k, row in enumerate(rows):
        image = panels["inputs"][k]
        recon = panels["reconstructions"][k] if panels["reconstructions"] is not None else None
        low, high = float(np.min(image)), float(np.max(image))  # the reconstruction on the input's scale
        caption = labels[k] if labels is not None else f"row {row}"
        flag = " flagged" if scores[k] > threshold else ""
        shown = [(image, f"{caption}\nscore {scores[k]:.4g}{flag}")]
        if recon is not None:
            shown.append((recon, "reconstruction"))
        for column, (picture, text) in enumerate(shown):
            values, cmap = _displayable(picture, low, high)
            grid[k, column].imshow(values, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
            grid[k, column].set_title(text, fontsize=8)
        if panels["errors"] is not None:
            ax = grid[k, columns - 1]
            heat = ax.imshow(panels["errors"][k], cmap="magma", interpolation="nearest")
            ax.set_title(panels["error_title"], fontsize=8)
            figure.colorbar(heat, ax=ax, shrink=0.8)
        for ax in grid[k]:
            ax.set_xticks([])
            ax.set_yticks([])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    write_output(path, buffer.getvalue())


def plot_top_images(path, detector, X, scores, threshold, shape, ids=None, title=None) -> None:
    """:func:`plot_image_explanation` of the :data:`MAX_IMAGES` highest-scoring rows, highest first.

    ``ids`` (a DataFrame, one row per row of ``X``) captions each image with its ids.
    """
    scores = np.asarray(scores, dtype=np.float64)
    rows = np.argsort(-scores, kind="stable")[:MAX_IMAGES]
    labels = None
    if ids is not None:
        labels = [", ".join(f"{value}" for value in ids.iloc[int(i)].tolist()) + f" (row {i})" for i in rows]
    plot_image_explanation(path, detector, X, rows, scores[rows], threshold, shape, labels=labels, title=title)
