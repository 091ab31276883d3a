"""Reading images for the command line: NumPy arrays and folders of PNG/JPEG files.

Each image becomes one flat row of ``C * H * W`` pixel values in channel-first order
(``image.reshape(-1)`` of a ``(C, H, W)`` array), the layout the image backbones
(:mod:`pyod_ae_ext.backbones_image`) reshape back. Pixel values are kept as they are
(0-255 for 8-bit images); the detector scales them (globally for image backbones).

Accepted sources:

- ``.npy``: one array; ``.npz``: the array ``X`` (else ``images``, else the only array;
  another array such as ``y`` can be the label column). Shapes ``(N, H, W)`` (grey),
  ``(N, H, W, C)`` (channels last, ``C`` of 1 to 4) or ``(N, C, H, W)`` (channels first,
  ``C`` of 1 to 4, when the last axis is longer than 4), or ``(N, features)`` flat rows:
  images of a given image shape, else plain features ``x0``, ``x1``, ... (an image
  backbone infers a square grey image from them).
- a directory of ``.png``, ``.jpg``/``.jpeg`` files (Pillow, the ``image`` extra), read
  in file-name order, all of one size: grey images (modes 1, L, LA, I, I;16, F) give one
  channel, any other mode RGB (alpha dropped) unless a channel count is asked for.
  Other files in the folder are ignored; the file names become the ``file`` id column.

Image shapes are written ``C,H,W`` or ``HxW`` (one channel): :func:`parse_image_shape`.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .errors import DataError, ParameterError

ARRAY_SUFFIXES = (".npy", ".npz")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
IMAGE_INSTALL_HINT = 'pip install "pyod-ae-ext[image]"'
_ARRAY_KEYS = ("X", "images")
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
_MAX_CHANNELS = 4


def is_image_source(source) -> bool:
    """Whether ``source`` is read by this module: a ``.npy``/``.npz`` file or a directory."""
    if source == "-":
        return False
    path = Path(source)
    return path.is_dir() or path.suffix.lower() in ARRAY_SUFFIXES


def array_names(source) -> list:
    """The array names of a ``.npz`` file (where a label array may be), else ``[]``.

    A file that cannot be read gives ``[]``: :func:`read_images` reports why.
    """
    path = Path(source)
    if path.is_dir() or path.suffix.lower() != ".npz" or not path.is_file():
        return []
    try:
        with np.load(path, allow_pickle=False) as loaded:
            return list(loaded.files)
    except (OSError, ValueError, EOFError, AttributeError):
        return []


def parse_image_shape(text) -> tuple:
    """``"C,H,W"`` or ``"HxW"`` (one channel) as ``(C, H, W)``; a clear error otherwise."""
    value = str(text).strip()
    parts = re.split(r"\s*[,x×]\s*", value.lower()) if value else []
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        sizes = ()
    if len(sizes) == 2:
        sizes = (1, *sizes)
    if len(sizes) != 3 or min(sizes) < 1:
        raise ParameterError(f"--image-shape expects C,H,W or HxW with positive sizes (e.g. 1,28,28 or 28x28), "
                             f"got {value!r}")
    return sizes


def pixel_names(shape) -> list:
    """Feature names of the flat pixels: ``pixel_ROW_COL`` (one channel) or ``pixel_CHANNEL_ROW_COL``."""
    channels, height, width = shape
    grid = [f"{row}_{col}" for row in range(height) for col in range(width)]
    if channels == 1:
        return [f"pixel_{cell}" for cell in grid]
    return [f"pixel_{channel}_{cell}" for channel in range(channels) for cell in grid]


def read_images(source, image_shape=None, label_key=None, channels=None):
    """Read an image source into a :class:`~pyod_ae_ext.data.Table` with ``image_shape`` set.

    ``image_shape`` ``(C, H, W)`` is required for flat ``(N, features)`` arrays and
    otherwise must match the images. ``label_key`` names the ``.npz`` array of 0/1
    labels. ``channels`` converts a folder's images to that many channels (1 or 3), as
    a model fitted on them expects.
    """
    path = Path(source)
    if path.is_dir():
        if label_key:
            raise DataError(f"--label-column {label_key}: a folder of images has no label column; "
                            "put images and labels in one .npz file (arrays X and y)")
        images, names = _read_folder(path, channels)
        return _table(images, image_shape, str(source), ids=names)
    from .data import existing_file

    existing_file(source)
    images, labels = _read_array_file(path, label_key)
    return _table(images, image_shape, str(source), labels=labels)


# --------------------------------------------------------------------------
# arrays


def _read_array_file(path: Path, label_key):
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:  # not a NumPy file, or one holding Python objects
        raise DataError(f"{path} is not a readable NumPy .npy/.npz file of numbers: {_reason(exc)}") from None
    if isinstance(loaded, np.ndarray):  # .npy
        if label_key:
            raise DataError(f"--label-column {label_key}: {path} holds one array and no labels; "
                            "use a .npz file with arrays X and y")
        return loaded, None
    with loaded:
        keys = list(loaded.files)
        key = next((k for k in _ARRAY_KEYS if k in keys), keys[0] if len(keys) == 1 else None)
        if key is None:
            raise DataError(f"{path} holds arrays {', '.join(keys) or '(none)'}: name the images X "
                            "(or images), or store only them")
        if label_key and label_key not in keys:
            raise DataError(f"--label-column names array {label_key!r}, not in {path} (arrays: {', '.join(keys)})")
        try:
            images = loaded[key]
            labels = _labels(loaded[label_key], label_key, len(images)) if label_key else None
        except (OSError, ValueError, EOFError) as exc:
            raise DataError(f"{path} is not a readable NumPy .npz file of numbers: {_reason(exc)}") from None
    return images, labels


def _reason(exc) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _labels(values, key, n_rows) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 1 or len(values) != n_rows:
        raise DataError(f"label array {key!r} must hold one label per image ({n_rows}), has shape {values.shape}")
    if not np.isin(values, (0, 1)).all():
        raise DataError(f"label array {key!r} must hold 0 (normal) and 1 (anomaly)")
    return values.astype(int)


def _channel_first(images: np.ndarray, source: str) -> np.ndarray:
    """(N, H, W) -> (N, 1, H, W); (N, H, W, C) -> (N, C, H, W); (N, C, H, W) kept."""
    if images.ndim == 3:
        return images[:, None]
    if images.ndim == 4:
        if images.shape[3] <= _MAX_CHANNELS:
            return images.transpose(0, 3, 1, 2)
        if images.shape[1] <= _MAX_CHANNELS:
            return images
    raise DataError(f"{source} holds an array of shape {images.shape}; images must be (N, H, W), "
                    f"(N, H, W, C) or (N, C, H, W) with 1 to {_MAX_CHANNELS} channels, or flat (N, features) "
                    "rows with --image-shape")


def _table(images, image_shape, source: str, ids=None, labels=None):
    from .data import Table

    images = np.asarray(images)
    if images.dtype.kind not in "biuf":
        raise DataError(f"{source} holds {images.dtype} values; images must be numbers")
    if images.ndim < 2 or images.shape[0] == 0:
        raise DataError(f"{source} holds no images (array of shape {images.shape})")
    if images.ndim == 2:
        shape = _flat_shape(images, image_shape, source)
    else:
        images = _channel_first(images, source)
        shape = tuple(int(s) for s in images.shape[1:])
        if image_shape is not None and tuple(image_shape) != shape:
            raise DataError(f"the images in {source} are {','.join(map(str, shape))} (C,H,W), not "
                            f"{','.join(map(str, image_shape))} as --image-shape or the model expects")
    X = np.ascontiguousarray(images.reshape(images.shape[0], -1), dtype=np.float64)
    names = pixel_names(shape) if shape is not None else [f"x{k}" for k in range(X.shape[1])]
    _check_finite(X, names, source)
    frame_ids = None
    if ids is not None:
        import pandas as pd

        frame_ids = pd.DataFrame({"file": ids})
    return Table(X, names, frame_ids, labels, X.shape[0], image_shape=shape)


def _flat_shape(images, image_shape, source):
    """The shape of flat rows: ``image_shape`` if given (it must fit), else None (plain features)."""
    if image_shape is None:
        return None
    shape = tuple(int(s) for s in image_shape)
    if int(np.prod(shape)) != images.shape[1]:
        raise DataError(f"--image-shape {','.join(map(str, shape))} holds {int(np.prod(shape))} values but the rows "
                        f"of {source} have {images.shape[1]}")
    return shape


def _check_finite(X, names, source):
    bad = ~np.isfinite(X)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(f"{source}: row {row} has a non-finite value ({X[row, col]}) in {names[col]!r}")


# --------------------------------------------------------------------------
# folders of image files


def _pillow():
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise DataError(f"reading image files needs Pillow, which is not installed: {IMAGE_INSTALL_HINT}") from None
    return Image, UnidentifiedImageError


def _read_folder(path: Path, channels):
    """(N, C, H, W) pixels of the folder's images in file-name order, and their file names.

    Headers are read first (channels: grey only if every image is grey), then each image
    into one preallocated array, so a large folder holds one copy of its pixels.
    """
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"directory {path} holds no .png, .jpg or .jpeg files")
    if channels is None:
        channels = 1 if all(_open(file, load=False).mode in _GREY_MODES for file in files) else 3
    images = None
    for k, file in enumerate(files):
        pixels = _pixels(_open(file), channels)
        if images is None:
            images = np.empty((len(files), *pixels.shape))
        elif pixels.shape != images.shape[1:]:
            raise DataError(f"the images in {path} must all have one size: {files[0].name} is "
                            f"{images.shape[3]}x{images.shape[2]} pixels, {file.name} is "
                            f"{pixels.shape[2]}x{pixels.shape[1]}; resize them first")
        images[k] = pixels
    return images, [file.name for file in files]


def _open(file: Path, load: bool = True):
    """The Pillow image in ``file`` (its header only unless ``load``); the file is closed again."""
    Image, UnidentifiedImageError = _pillow()
    try:
        with Image.open(file) as image:
            if load:
                image.load()
            return image
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{file} is not a readable image: {str(exc).strip() or type(exc).__name__}") from None


def _pixels(image, channels: int) -> np.ndarray:
    """(C, H, W) float pixels of a Pillow image with ``channels`` (1: grey, 3: RGB)."""
    if channels == 1:
        if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            return np.asarray(image, dtype=np.float64)[None]  # keep 16-bit and float precision
        return np.asarray(image.convert("L"), dtype=np.float64)[None]
    if channels == 3:
        return np.asarray(image.convert("RGB"), dtype=np.float64).transpose(2, 0, 1)
    raise DataError(f"images can be read with 1 (grey) or 3 (RGB) channels, the model expects {channels}")
