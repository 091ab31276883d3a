"""The safe model file format: one safetensors file with JSON metadata, never a pickle.

Layout: a standard safetensors file whose ``__metadata__`` holds one key,
``adscore``, a JSON document with the detector's registered name, its parameters,
feature names, threshold, versions, its fitted non-tensor state and a SHA-256 content
hash over that document and every tensor. Loading checks the hash before anything is
built, resolves the detector class through the plugin registry only (a file cannot
name arbitrary code to import), and never unpickles.

Our autoencoder detectors store their network weights and arrays as tensors. PyOD's
classic detectors (Isolation Forest, KNN, ...) are serialised with skops, which
rebuilds scikit-learn objects from a schema without pickle; on loading only types
from scikit-learn, PyOD, NumPy and SciPy, and the registered detector class itself,
are accepted.
"""
from __future__ import annotations

import hashlib
import json
import platform
import struct
from pathlib import Path

import numpy as np
import torch

from .errors import AdscoreError, ModelFileError
from .outputs import write_output

FORMAT = "adscore-model"
FORMAT_VERSION = 1
_TRUSTED_MODULE_PREFIXES = ("sklearn.", "pyod.", "numpy.", "scipy.", "builtins.", "collections.")
_MAX_HEADER_BYTES = 100 * 1024 * 1024


# --------------------------------------------------------------------------
# public API


def save_detector(detector, path) -> None:
    """Save a fitted detector to ``path`` atomically (temporary file + rename)."""
    meta, tensors = detector_to_state(detector)
    write_model_file(path, meta, tensors)


def load_detector(path):
    """Load a detector saved by :func:`save_detector`."""
    meta, tensors = read_model_file(path)
    return detector_from_state(meta, tensors, source=str(path))


def detector_to_state(detector) -> tuple[dict, dict]:
    """(metadata, tensors) describing a fitted detector; nested detectors use prefixes."""
    from . import __version__
    from .registry import get_registry

    name = get_registry().name_of(detector)
    if name is None:
        raise AdscoreError(
            f"cannot save a {type(detector).__name__}: only detectors registered with adscore can be "
            "saved (see `adscore plugins`); use joblib for other objects you trust"
        )
    if not hasattr(detector, "decision_scores_"):
        raise AdscoreError(f"cannot save an unfitted {type(detector).__name__}: call fit() first")
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "detector": name,
        "params": _jsonable_params(detector.get_params(deep=False), name),
        "feature_names": _feature_names(detector),
        "threshold": float(detector.threshold_),
        "versions": {
            "pyod_ae_ext": __version__,
            "torch": torch.__version__,
            "pyod": _version_of("pyod"),
            "python": platform.python_version(),
        },
    }
    if hasattr(detector, "_fitted_state"):
        state, tensors = detector._fitted_state()
        meta["state"] = state
    else:
        meta["state"] = {"skops": True}
        tensors = _skops_tensors(detector)
    return meta, tensors


def detector_from_state(meta: dict, tensors: dict, source: str = "model file"):
    """Rebuild a detector from :func:`detector_to_state` output."""
    from .registry import get_registry

    try:
        spec = get_registry().resolve(meta["detector"])
    except AdscoreError as exc:
        raise ModelFileError(f"{source} was saved by detector {meta.get('detector')!r}, which is not "
                             f"installed here ({exc}); install the plugin that provides it") from None
    params = _params_from_json(meta.get("params", {}))
    if meta.get("state", {}).get("skops"):
        detector = _skops_detector(tensors, spec.cls, source)
    else:
        detector = spec.cls(**params)
        detector._restore_fitted_state(meta["state"], tensors)
    names = meta.get("feature_names")
    if names is not None:
        detector.feature_names_in_ = np.asarray(names, dtype=object)
    set_threshold(detector, meta["threshold"])
    return detector


def set_threshold(detector, threshold: float) -> None:
    """Set ``threshold_`` and re-derive ``labels_`` and PyOD's probability statistics."""
    scores = np.asarray(detector.decision_scores_, dtype=np.float64)
    detector.threshold_ = float(threshold)
    detector.labels_ = (scores > detector.threshold_).astype(int).ravel()
    detector._mu = float(np.mean(scores))
    detector._sigma = float(np.std(scores))


def read_metadata(path) -> dict:
    """The JSON metadata of a model file, after checking it is one (for ``adscore info``)."""
    meta, _ = read_model_file(path)
    return meta


# --------------------------------------------------------------------------
# file level


def write_model_file(path, meta: dict, tensors: dict) -> None:
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {**meta, "content_sha256": _content_hash(meta, tensors)}
    payload = save(tensors, metadata={"adscore": json.dumps(meta, sort_keys=True)})
    write_output(path, payload)


def read_model_file(path) -> tuple[dict, dict]:
    """Parse and verify a model file; every failure is a :class:`ModelFileError`."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    data = path.read_bytes()
    meta = _parse_metadata(data, path)
    from safetensors.torch import load

    try:
        tensors = load(data)
    except Exception as exc:
        raise ModelFileError(f"{path} is corrupted ({exc}); refit and save the model again") from None
    expected = meta.pop("content_sha256", None)
    if expected is None or expected != _content_hash(meta, tensors):
        raise ModelFileError(f"{path} failed its integrity check (content hash mismatch): the file was "
                             "modified or damaged; refit and save the model again")
    return meta, tensors


def _parse_metadata(data: bytes, path) -> dict:
    not_ours = f"{path} is not an adscore model file (save one with `adscore fit ... -o MODEL`)"
    if len(data) < 8:
        raise ModelFileError(f"{not_ours}: it is {len(data)} bytes long")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > _MAX_HEADER_BYTES or header_len == 0:
        raise ModelFileError(not_ours)
    if 8 + header_len > len(data):
        raise ModelFileError(f"{path} is truncated ({len(data)} bytes, header alone needs "
                             f"{8 + header_len}); refit and save the model again")
    try:
        header = json.loads(data[8:8 + header_len])
        meta = json.loads(header["__metadata__"]["adscore"])
    except Exception:
        raise ModelFileError(not_ours) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(not_ours)
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFileError(f"{path} uses model format version {meta['format_version']}, newer than this "
                             f"pyod-ae-ext understands ({FORMAT_VERSION}); upgrade pyod-ae-ext")
    return meta


def _content_hash(meta: dict, tensors: dict) -> str:
    digest = hashlib.sha256()
    body = {k: v for k, v in meta.items() if k != "content_sha256"}
    digest.update(json.dumps(body, sort_keys=True).encode())
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


# --------------------------------------------------------------------------
# parameters


def _jsonable_params(params: dict, name: str) -> dict:
    out = {}
    for key, value in params.items():
        encoded = _encode(value)
        if encoded is _UNSERIALISABLE:
            raise AdscoreError(f"cannot save detector {name!r}: parameter {key}={value!r} is not a plain "
                               "value (number, string, bool, None or a list of them)")
        out[key] = encoded
    return out


_UNSERIALISABLE = object()


def _encode(value):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, tuple):
        items = [_encode(v) for v in value]
        return _UNSERIALISABLE if _UNSERIALISABLE in items else {"__tuple__": items}
    if isinstance(value, list):
        items = [_encode(v) for v in value]
        return _UNSERIALISABLE if _UNSERIALISABLE in items else items
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        items = {k: _encode(v) for k, v in value.items()}
        return _UNSERIALISABLE if any(v is _UNSERIALISABLE for v in items.values()) else items
    return _UNSERIALISABLE


def _params_from_json(params: dict) -> dict:
    def decode(value):
        if isinstance(value, dict):
            if set(value) == {"__tuple__"}:
                return tuple(decode(v) for v in value["__tuple__"])
            return {k: decode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [decode(v) for v in value]
        return value

    return {k: decode(v) for k, v in params.items()}


def _feature_names(detector):
    names = getattr(detector, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


# --------------------------------------------------------------------------
# PyOD / scikit-learn detectors through skops


def _skops_tensors(detector) -> dict:
    import skops.io

    payload = skops.io.dumps(detector)
    return {"skops": torch.frombuffer(bytearray(payload), dtype=torch.uint8)}


def _skops_detector(tensors: dict, expected_cls, source: str):
    import skops.io

    if "skops" not in tensors:
        raise ModelFileError(f"{source} is damaged: its detector state is missing")
    payload = tensors["skops"].numpy().tobytes()
    try:
        types = skops.io.get_untrusted_types(data=payload)
    except Exception as exc:
        raise ModelFileError(f"{source} is damaged ({exc})") from None
    # The registered class itself is trusted: it is code the user installed as a plugin.
    registered = f"{expected_cls.__module__}.{expected_cls.__qualname__}"
    untrusted = [t for t in types if not t.startswith(_TRUSTED_MODULE_PREFIXES) and t != registered]
    if untrusted:
        raise ModelFileError(f"{source} contains object types adscore does not load: {', '.join(untrusted)}")
    try:
        detector = skops.io.loads(payload, trusted=types)
    except Exception as exc:
        raise ModelFileError(f"{source} is damaged ({exc})") from None
    if type(detector) is not expected_cls:
        raise ModelFileError(f"{source} holds a {type(detector).__name__}, not the "
                             f"{expected_cls.__name__} its metadata names")
    return detector


def _version_of(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"
