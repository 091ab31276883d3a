"""The model file format: one safetensors file with JSON metadata, never a pickle.

Layout
------
A standard safetensors file whose ``__metadata__`` holds one key, ``adscore``: a
JSON document with the detector's registered name, its parameters, feature names,
threshold, versions and fitted non-tensor state, a SHA-256 ``content_sha256`` over
that document and every tensor (name, dtype, shape and bytes), and, in a signed
file, an HMAC-SHA256 ``hmac_sha256`` of that hash.

What loading guarantees
-----------------------
- **No code named by the file runs.** Nothing is unpickled or ``eval``-ed. The
  detector class is resolved through the plugin registry only, so a file can name a
  registered detector but not arbitrary code.
- **The content hash detects corruption, not malice.** A truncated or damaged file is
  refused, but anyone can edit a file and recompute the hash.
- **Signing detects tampering by anyone without the key.** With a shared secret
  configured (``signing_key=``, or the ``ADSCORE_SIGNING_KEY`` environment variable,
  or ``--sign-key-file`` on the command line) files are signed when saved, and unsigned
  files, files signed with another key and files changed after signing are refused
  before anything is built. Without a key, signed and unsigned files both load and
  signatures are not checked. Whoever holds the key can sign anything.
- **PyOD's classic detectors** (Isolation Forest, KNN, ...) are stored as a skops
  payload. Before skops sees it, the payload is checked against an exact allow-list
  of (skops loader, fully qualified type) pairs, :data:`SKOPS_ALLOWED_NODES`: the
  containers, NumPy arrays and the scikit-learn/PyOD classes that the registered
  PyOD baselines contain, and nothing that calls a function (no ``FunctionNode``,
  ``ReduceNode``, ``ConstructorFromReduceNode``, ...). The top-level object must be
  the class the metadata names; the zip may hold only ``schema.json`` and the
  uncompressed ``.npy`` arrays the schema refers to, and sizes and nesting are
  capped. scikit-learn's compiled trees and nearest-neighbour indexes index memory
  without bounds checks, so their index arrays are checked before use.
- **A hash-valid file that does not describe a working detector** (wrong types,
  unknown or invalid parameters, missing tensors, wrong shapes, non-finite scores)
  is a :class:`~pyod_ae_ext.errors.ModelFileError`, never a traceback.

What it does not guarantee: that the numbers in an unsigned file from someone else
are the ones a fit produced. A crafted file built only from allowed types can still
score data wrongly, or be large enough to exhaust memory. Use signing for model
files that cross a trust boundary.
"""
from __future__ import annotations

import copy
import hashlib
import hmac
import json
import math
import numbers
import os
import platform
import struct
import warnings
from pathlib import Path

import numpy as np
import torch

from .errors import (REFIT_ADVICE, STATE_ERRORS, AdscoreError, DeviceError, InconsistentModelError, ModelFileError,
                     ParameterError, UnknownDetectorError, describe_exception, inconsistent)
from .outputs import write_output
from .skops_guard import (check_compiled_structures, check_skops_payload, list_refused,
                          refused_nodes, skops_node_types)

FORMAT = "adscore-model"
FORMAT_VERSION = 1
_MAX_HEADER_BYTES = 100 * 1024 * 1024
_HASH_FIELD = "content_sha256"
_SIGNATURE_FIELD = "hmac_sha256"

SIGNING_KEY_ENV = "ADSCORE_SIGNING_KEY"
MIN_SIGNING_KEY_BYTES = 16
_SIGNATURE_DOMAIN = b"adscore-model-hmac-sha256-v1\n"
_KEY_SOURCES = f"{SIGNING_KEY_ENV} / --sign-key-file"
_KEY_HOWTO = "generate one with: python -c \"import secrets; print(secrets.token_hex(32))\""


# --------------------------------------------------------------------------
# public API


def save_detector(detector, path, signing_key=None) -> None:
    """Save a fitted detector to ``path`` atomically (temporary file + rename).

    Parameters
    ----------
    detector : a fitted detector registered with adscore
    path : str or path-like
    signing_key : bytes, str or None
        Shared secret to sign the file with (HMAC-SHA256); None uses
        ``$ADSCORE_SIGNING_KEY`` when set, else the file is not signed.
    """
    key = resolve_signing_key(signing_key)
    meta, tensors = detector_to_state(detector)
    write_model_file(path, meta, tensors, signing_key=key)


def load_detector(path, signing_key=None, device=None):
    """Load a detector saved by :func:`save_detector`.

    Parameters
    ----------
    path : str or path-like
    signing_key : bytes, str or None
        When a key is given or ``$ADSCORE_SIGNING_KEY`` is set, the file must carry a
        valid signature for it; otherwise signatures are not checked.
    device : str or None
        Place the autoencoders (an ensemble's too) on this device ("cpu", "cuda",
        "cuda:N", "auto") instead of the one they were saved with: a model fitted on a
        GPU loads on a machine without one with ``device="cpu"``.

    Raises
    ------
    ModelFileError
        The file is missing, damaged, unsigned or badly signed while a key is set,
        holds types adscore does not load, or does not describe a working detector.
    """
    if device is not None:
        from .engine import resolve_device

        resolve_device(device)  # a bad name or a missing GPU is the caller's error, before the file is read
    meta, tensors, _ = _read_verified(path, signing_key)
    return detector_from_state(meta, tensors, source=str(path), device=device)


def read_metadata(path, signing_key=None) -> dict:
    """The JSON metadata of a model file, after checking it (for ``adscore info``).

    The content hash is checked, and the signature when a key is configured (as in
    :func:`load_detector`); nothing in the file is built or imported. The result has
    extra entries: ``content_sha256`` (the verified content hash), ``signed`` (the file
    carries a signature) and ``signature_verified`` (it was checked against the
    configured key).

    Entries present only for some models: ``fit_sample`` (``{"rows": n, "of": m,
    "seed": s}``: fitted on a seeded reservoir sample of n of the m rows read, as
    ``adscore fit --sample`` does; the loaded detector's ``fit_sample_``) and
    ``thresholder`` (``{"class", "params", "flagged", "rows"}``: a thresholder object
    chose the threshold, flagging that many training rows; see
    :mod:`pyod_ae_ext.thresholding`).
    """
    meta, tensors, signature = _read_verified(path, signing_key)
    _check_metadata(meta, str(path))
    return {**meta, _HASH_FIELD: _content_hash(meta, tensors), "signed": signature != "unsigned",
            "signature_verified": signature == "verified"}


def resolve_signing_key(signing_key=None) -> bytes | None:
    """The signing key to use: ``signing_key`` if given, else ``$ADSCORE_SIGNING_KEY``, else None.

    A str is encoded as UTF-8 (the environment variable as the OS gives its bytes). A key shorter than :data:`MIN_SIGNING_KEY_BYTES` bytes
    (an empty environment variable included) is an :class:`AdscoreError`, so that a
    misconfigured key never silently turns verification off.
    """
    if signing_key is None:
        text = os.environ.get(SIGNING_KEY_ENV)
        if text is None:
            return None
        return _checked_key(os.fsencode(text), f"${SIGNING_KEY_ENV}",
                            "; set it to a longer secret or unset it to stop signing and verifying")
    if isinstance(signing_key, str):
        key = signing_key.encode("utf-8")
    elif isinstance(signing_key, (bytes, bytearray, memoryview)):
        key = bytes(signing_key)
    else:
        raise AdscoreError(f"signing_key must be bytes or str, got {type(signing_key).__name__}")
    return _checked_key(key, "the signing key")


def read_signing_key_file(path) -> bytes:
    """The signing key stored in the file ``path`` (for ``--sign-key-file``).

    The whole file is the key, less one trailing newline (``\\n`` or ``\\r\\n``).

    Raises
    ------
    AdscoreError
        The file cannot be read, is empty, or holds fewer than
        :data:`MIN_SIGNING_KEY_BYTES` bytes.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AdscoreError(f"cannot read signing key file {path}: {exc.strerror or exc}; "
                           "check the path and its permissions") from None
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    if not data:
        raise AdscoreError(f"signing key file {path} is empty; write a secret of at least "
                           f"{MIN_SIGNING_KEY_BYTES} bytes into it ({_KEY_HOWTO} > {path})")
    return _checked_key(data, f"signing key file {path}")


def _checked_key(key: bytes, origin: str, fix: str = "") -> bytes:
    if len(key) < MIN_SIGNING_KEY_BYTES:
        raise AdscoreError(f"{origin} is {len(key)} bytes long; a signing key must be at least "
                           f"{MIN_SIGNING_KEY_BYTES} bytes ({_KEY_HOWTO}){fix}")
    return key


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
    params = detector.get_params(deep=False)
    thresholder = _thresholder_record(detector, params, name)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "detector": name,
        "params": _jsonable_params(params, name),
        "feature_names": _feature_names(detector),
        "threshold": float(detector.threshold_),
        "versions": {
            "pyod_ae_ext": __version__,
            "torch": torch.__version__,
            "pyod": _version_of("pyod"),
            "python": platform.python_version(),
        },
    }
    windows = getattr(detector, "series_windows_", None)
    if windows is not None:  # fitted on the windows of a series (pyod_ae_ext.windows)
        meta["series_windows"] = windows.to_json()
    if thresholder is not None:
        meta["thresholder"] = thresholder
    fit_sample = getattr(detector, "fit_sample_", None)
    if fit_sample is not None:
        meta["fit_sample"] = dict(fit_sample)
        problem = _fit_sample_problem(meta["fit_sample"]) or _fit_sample_mismatch(detector, meta["fit_sample"])
        if problem:  # never write a file that load_detector would refuse
            raise AdscoreError(f"cannot save detector {name!r}: fit_sample_ is wrong: {problem}")
    fit_info = getattr(detector, "fit_info_", None)
    if fit_info is not None:
        problem = fit_info_problem(fit_info)
        if problem:
            raise AdscoreError(f"cannot save detector {name!r}: {problem}")
        meta["fit_info"] = fit_info
    if hasattr(detector, "_fitted_state"):
        state, tensors = detector._fitted_state()
        meta["state"] = state
    else:
        meta["state"] = {"skops": True}
        tensors = _skops_tensors(detector, name)
    return meta, tensors


def detector_from_state(meta: dict, tensors: dict, source: str = "model file", device=None):
    """Rebuild a detector from :func:`detector_to_state` output (on ``device`` when given, see :func:`load_detector`).

    Every problem with the content is a :class:`ModelFileError` naming ``source``.
    """
    _check_metadata(meta, source)
    if device is not None:
        meta = _placed_on(meta, device)
    spec = _resolve_spec(meta["detector"], source)
    params = _with_earlier_defaults(spec.cls, _current_names(spec.cls, _params_from_json(meta["params"]), source))
    detector = _checked_instance(spec, params, source)
    uses_skops = not hasattr(spec.cls, "_restore_fitted_state")
    if meta["state"].get("skops", False) is not uses_skops:
        raise inconsistent(source, f"its state is {'not ' if uses_skops else ''}a PyOD/skops state, "
                                    f"but detector {spec.name!r} {'needs' if uses_skops else 'does not use'} one")
    if uses_skops:
        detector = skops_object(tensors, "skops", spec.cls, source)
        _check_skops_params(detector, meta["params"], spec.name, source)
    else:
        _restore_fitted(detector, meta["state"], tensors, source)
    _check_training_scores(detector, source)
    names = meta["feature_names"]
    n_features = _n_features(detector)
    if names is not None and n_features is not None and len(names) != n_features:
        raise inconsistent(source, f"it names {len(names)} features but was fitted on {n_features}")
    if names is not None:
        detector.feature_names_in_ = np.asarray(names, dtype=object)
    if "series_windows" in meta:
        detector.series_windows_ = _series_windows(meta["series_windows"], names, n_features, source)
    set_threshold(detector, meta["threshold"])
    _check_thresholder_result(detector, meta.get("thresholder"), source)
    _restore_fit_sample(detector, meta.get("fit_sample"), source)
    _check_scores_data(detector, n_features, source)
    if meta.get("fit_info") is not None:
        detector.fit_info_ = meta["fit_info"]
    return detector


def _placed_on(meta: dict, device: str) -> dict:
    """A copy of checked metadata whose detectors that take a ``device`` parameter (members too) use ``device``."""
    params = dict(meta["params"])
    if "device" in params:
        params["device"] = device
    if isinstance(params.get("detector_params"), dict):  # an ensemble's parameters per member
        params["detector_params"] = member_params_on(params["detector_params"], device)
    return {**meta, "params": params, "state": state_placed_on(meta["state"], device)}


def member_params_on(detector_params: dict, device: str) -> dict:
    """An ensemble's ``detector_params`` with ``device`` wherever a member's parameters name a device."""
    return {name: {**given, "device": device} if isinstance(given, dict) and "device" in given else given
            for name, given in detector_params.items()}


def state_placed_on(state: dict, device: str) -> dict:
    """A detector's saved state whose saved members (an ensemble's, or ``n_members``) use ``device``."""
    members = state.get("members")
    if not isinstance(members, list):
        return state
    return {**state, "members": [_placed_on(member, device) if isinstance(member, dict)
                                 and isinstance(member.get("params"), dict) and isinstance(member.get("state"), dict)
                                 else member for member in members]}


def _series_windows(data, names, n_features: int | None, source: str):
    """The saved window settings, checked, and consistent with the features the detector was fitted on."""
    from .windows import WindowSettings

    try:
        settings = WindowSettings.from_json(data)
    except InconsistentModelError as exc:
        raise inconsistent(source, str(exc)) from None
    expected = settings.feature_names()
    if (names is not None and names != expected) or (n_features is not None and n_features != len(expected)):
        raise inconsistent(source, f"its window settings ({settings.window} steps x {len(settings.value_columns)} "
                                   "column(s)) do not match the features it was fitted on")
    return settings


def set_threshold(detector, threshold: float) -> None:
    """Set ``threshold_`` and re-derive ``labels_`` and PyOD's probability statistics."""
    scores = np.asarray(detector.decision_scores_, dtype=np.float64)
    detector.threshold_ = float(threshold)
    detector.labels_ = (scores > detector.threshold_).astype(int).ravel()
    detector._mu = float(np.mean(scores))
    detector._sigma = float(np.std(scores))


# --------------------------------------------------------------------------
# file level


def write_model_file(path, meta: dict, tensors: dict, signing_key=None) -> None:
    """Write ``meta`` and ``tensors`` as a model file, with a fresh content hash.

    ``signing_key`` (bytes or str) signs the file; unlike :func:`save_detector`, None
    here means "do not sign" (``$ADSCORE_SIGNING_KEY`` is not consulted), and a
    signature already in ``meta`` is kept as it is.
    """
    from safetensors.torch import save

    bad = sorted(name for name in tensors if "|" in name)
    if bad:  # '|' separates the fields the content hash covers, see _content_hash
        raise AdscoreError(f"tensor names must not contain '|': {', '.join(bad)}")
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    content_hash = _content_hash(meta, tensors)
    meta = {**meta, _HASH_FIELD: content_hash}
    if signing_key is not None:
        meta[_SIGNATURE_FIELD] = _signature(content_hash, resolve_signing_key(signing_key))
    payload = save(tensors, metadata={"adscore": json.dumps(meta, sort_keys=True)})
    write_output(path, payload)


def read_model_file(path, signing_key=None) -> tuple[dict, dict]:
    """Parse and verify a model file (hash, and signature when a key is configured).

    Every failure is a :class:`ModelFileError`.
    """
    meta, tensors, _ = _read_verified(path, signing_key)
    return meta, tensors


def _read_verified(path, signing_key) -> tuple[dict, dict, str]:
    """(metadata, tensors, "verified" | "unverified" | "unsigned"), hash and signature checked."""
    key = resolve_signing_key(signing_key)
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    data = path.read_bytes()
    meta = _parse_metadata(data, path)
    from safetensors.torch import load

    try:
        tensors = load(data)
    except Exception as exc:
        raise ModelFileError(f"{path} is corrupted ({exc}); {REFIT_ADVICE}") from None
    if any("|" in name for name in tensors):
        raise ModelFileError(f"{path} is not an adscore model file: it has tensor names containing '|'")
    stored_hash = meta.pop(_HASH_FIELD, None)
    stored_signature = meta.pop(_SIGNATURE_FIELD, None)
    content_hash = _content_hash(meta, tensors)
    if stored_hash != content_hash:
        raise ModelFileError(f"{path} failed its integrity check (content hash mismatch): the file was "
                             f"modified or damaged; {REFIT_ADVICE}")
    return meta, tensors, _check_signature(stored_signature, content_hash, key, path)


def _check_signature(stored, content_hash: str, key: bytes | None, path) -> str:
    if key is None:
        return "unsigned" if stored is None else "unverified"
    if stored is None:
        raise ModelFileError(f"{path} is not signed, but a signing key is configured ({_KEY_SOURCES}): "
                             "it was saved without the key; save it again with the key from a source "
                             "you trust, or unset the key to load unsigned files")
    expected = _signature(content_hash, key).encode()
    given = stored.encode("utf-8", "backslashreplace") if isinstance(stored, str) else b""
    if not hmac.compare_digest(given, expected):
        raise ModelFileError(f"{path}: signature does not match the configured key ({_KEY_SOURCES}): "
                             "the file was changed after it was signed, or signed with another key; "
                             "do not use it, or load it with the key it was signed with")
    return "verified"


def _signature(content_hash: str, key: bytes) -> str:
    # The content hash covers the metadata (less hash and signature) and every tensor,
    # so one MAC over it covers the whole file, ensemble members included.
    return hmac.new(key, _SIGNATURE_DOMAIN + content_hash.encode("ascii"), hashlib.sha256).hexdigest()


def _parse_metadata(data: bytes, path) -> dict:
    not_ours = f"{path} is not an adscore model file (save one with `adscore fit ... -o MODEL`)"
    if len(data) < 8:
        raise ModelFileError(f"{not_ours}: it is {len(data)} bytes long")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > _MAX_HEADER_BYTES or header_len == 0:
        raise ModelFileError(not_ours)
    if 8 + header_len > len(data):
        raise ModelFileError(f"{path} is truncated ({len(data)} bytes, header alone needs "
                             f"{8 + header_len}); {REFIT_ADVICE}")
    try:
        header = json.loads(data[8:8 + header_len])
        meta = json.loads(header["__metadata__"]["adscore"])
    except Exception:
        raise ModelFileError(not_ours) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(not_ours)
    version = meta.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ModelFileError(f"{not_ours}: its format_version is {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path} uses model format version {version}, newer than this "
                             f"pyod-ae-ext understands ({FORMAT_VERSION}); upgrade pyod-ae-ext")
    return meta


def _content_hash(meta: dict, tensors: dict) -> str:
    # Unambiguous as long as tensor names contain no '|': the JSON document delimits
    # itself, and each tensor's dtype and shape fix the length of its bytes.
    digest = hashlib.sha256()
    body = {k: v for k, v in meta.items() if k not in (_HASH_FIELD, _SIGNATURE_FIELD)}
    digest.update(json.dumps(body, sort_keys=True).encode())
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


# --------------------------------------------------------------------------
# checking the content before anything is built


def _check_metadata(meta: dict, source: str) -> None:
    """Types of the top-level entries, so that nothing below trips over them."""
    problem = _metadata_problem(meta)
    if problem:
        raise inconsistent(source, problem)


def _metadata_problem(meta: dict) -> str | None:
    detector, params, threshold = meta.get("detector"), meta.get("params"), meta.get("threshold")
    names, state, versions = meta.get("feature_names"), meta.get("state"), meta.get("versions", {})
    if not isinstance(detector, str):
        return f"'detector' must be a detector name (a string), got {_short(detector)}"
    if not isinstance(params, dict):
        return f"'params' must be an object of parameters, got {_short(params)}"
    if not _is_finite_number(threshold):
        return f"'threshold' must be a finite number, got {_short(threshold)}"
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        return f"'feature_names' must be a list of strings or null, got {_short(names)}"
    if not isinstance(state, dict):
        return f"'state' must be an object, got {_short(state)}"
    if not isinstance(versions, dict):
        return f"'versions' must be an object, got {_short(versions)}"
    if "thresholder" in meta:
        problem = _thresholder_problem(meta["thresholder"])
        if problem:
            return problem
    if "fit_sample" in meta:
        problem = _fit_sample_problem(meta["fit_sample"])
        if problem:
            return problem
    if meta.get("fit_info") is not None:
        problem = fit_info_problem(meta["fit_info"])
        if problem:
            return f"'fit_info' {problem}"
    return None


_THRESHOLD_METHODS = ("contamination", "f1", "cost")


def _is_name_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_threshold_source(value) -> bool:
    if not isinstance(value, dict) or value.get("method") not in _THRESHOLD_METHODS:
        return False
    numbers_ok = all(_is_finite_number(v) for k, v in value.items() if k not in ("method", "data"))
    return numbers_ok and isinstance(value.get("data", ""), str)


# How a model was fitted, as ``adscore fit`` and ``adscore threshold`` record it in
# ``fit_info_``: entry -> (check, what it must be). Every entry is optional.
_FIT_INFO_FIELDS = {
    "id_columns": (_is_name_list, "a list of column names"),
    "exclude": (_is_name_list, "a list of column names"),
    "label_column": (lambda v: v is None or (isinstance(v, str) and bool(v)), "a column name or null"),
    "n_rows": (_is_count, "a non-negative integer"),
    "fitted_at": (lambda v: isinstance(v, str) and len(v) <= 64, "an ISO 8601 time stamp"),
    "fit_seconds": (lambda v: _is_finite_number(v) and v >= 0, "a non-negative number of seconds"),
    "threshold_source": (_is_threshold_source,
                         f"an object with 'method' one of {', '.join(_THRESHOLD_METHODS)} and numbers"),
}


def fit_info_problem(fit_info) -> str | None:
    """What is wrong with a ``fit_info_`` record (None when nothing is)."""
    if not isinstance(fit_info, dict):
        return f"must be an object, got {_short(fit_info)}"
    unknown = sorted(set(fit_info) - set(_FIT_INFO_FIELDS))
    if unknown:
        return f"has unknown entries {', '.join(map(repr, unknown))}"
    for key, value in fit_info.items():
        check, expected = _FIT_INFO_FIELDS[key]
        if not check(value):
            return f"entry {key!r} must be {expected}, got {_short(value)}"
    return None


def _fit_sample_problem(sample) -> str | None:
    """What is wrong with the ``fit_sample`` entry (``{"rows": n, "of": m, "seed": s}``), or None."""
    if not isinstance(sample, dict) or set(sample) != {"rows", "of", "seed"}:
        return f"'fit_sample' must be an object with rows, of and seed, got {_short(sample)}"
    rows, of, seed = sample["rows"], sample["of"], sample["seed"]
    if not (_is_count(rows) and _is_count(of) and 1 <= rows <= of):
        return f"'fit_sample' must count 1 <= rows <= of, got {rows!r} of {of!r}"
    if not (_is_count(seed) and seed < 2**63):
        return f"'fit_sample.seed' must be an integer in 0..2**63-1, got {_short(seed)}"
    return None


def _restore_fit_sample(detector, sample, source: str) -> None:
    """``fit_sample_`` from its (already type-checked) entry; its row count must be the training rows'."""
    if sample is None:
        return
    problem = _fit_sample_mismatch(detector, sample)
    if problem:
        raise inconsistent(source, problem)
    detector.fit_sample_ = dict(sample)


def _fit_sample_mismatch(detector, sample: dict) -> str | None:
    n_scores = np.asarray(detector.decision_scores_).size
    if sample["rows"] != n_scores:
        return f"it says it was fitted on a sample of {sample['rows']} rows, it has {n_scores} training scores"
    return None


def _thresholder_problem(record) -> str | None:
    """What is wrong with the ``thresholder`` entry (see :func:`_thresholder_record`), or None."""
    expected = "an object with class, params, flagged and rows"
    if not isinstance(record, dict) or set(record) != {"class", "params", "flagged", "rows"}:
        return f"'thresholder' must be {expected}, got {_short(record)}"
    cls, params, flagged, rows = record["class"], record["params"], record["flagged"], record["rows"]
    if not isinstance(cls, str) or not 0 < len(cls) <= 300:
        return f"'thresholder.class' must be a class name, got {_short(cls)}"
    if not isinstance(params, dict) or not all(
            v is None or isinstance(v, (str, bool)) or _is_finite_number(v) for v in params.values()):
        return f"'thresholder.params' must be an object of plain values, got {_short(params)}"
    if not (_is_count(rows) and rows >= 1 and _is_count(flagged) and flagged <= rows):
        return f"'thresholder' must count 0 <= flagged <= rows training rows, got {flagged!r} of {rows!r}"
    return None


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _thresholder_record(detector, params: dict, name: str) -> dict | None:
    """With a thresholder as contamination: the metadata entry recording it, and ``params`` set to its result.

    The object itself is never saved (a model file holds data only): ``contamination``
    becomes the fraction of training rows it flagged, and ``threshold`` is the cut it
    chose (see :mod:`pyod_ae_ext.thresholding`).
    """
    from .thresholding import ThresholderSupport, describe_thresholder, is_fraction

    contamination = params.get("contamination")
    if "contamination" not in params or contamination is None or is_fraction(contamination):
        return None
    kind = type(contamination).__name__
    if not isinstance(detector, ThresholderSupport):
        raise AdscoreError(f"cannot save detector {name!r} with a {kind} object as contamination: PyOD's own "
                           "detectors keep the object in their state; fit it with a numeric contamination")
    record = describe_thresholder(contamination, detector.labels_)
    fraction = record["flagged"] / record["rows"]
    if not 0 < fraction <= 0.5:
        raise AdscoreError(f"cannot save detector {name!r}: its thresholder {kind} flagged {record['flagged']} of "
                           f"{record['rows']} training rows, and a model file records a thresholder's choice as the "
                           "contamination it realised, which must be in (0, 0.5]; fit it with a numeric "
                           "contamination to save it")
    params["contamination"] = fraction
    return record


def _check_thresholder_result(detector, record, source: str) -> None:
    """A ``thresholder`` entry must agree with the contamination, training scores and threshold it describes."""
    if record is None:
        return
    scores = np.asarray(detector.decision_scores_)
    contamination = getattr(detector, "contamination", None)
    if record["rows"] != scores.size:
        raise inconsistent(source, f"its thresholder counted {record['rows']} training rows, it has "
                                   f"{scores.size} training scores")
    if contamination != record["flagged"] / record["rows"]:
        raise inconsistent(source, f"its contamination {contamination!r} is not the fraction its thresholder "
                                   f"flagged ({record['flagged']} of {record['rows']})")
    if int(np.sum(detector.labels_)) != record["flagged"]:
        raise inconsistent(source, f"its threshold flags {int(np.sum(detector.labels_))} training rows, its "
                                   f"thresholder flagged {record['flagged']}")


def _is_finite_number(value) -> bool:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # a JSON integer too large for a float
        return False


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _resolve_spec(name: str, source: str):
    from .registry import get_registry

    try:
        return get_registry().resolve(name)
    except AdscoreError as exc:
        raise ModelFileError(f"{source} was saved by detector {name!r}, which is not installed here "
                             f"({exc}); install the plugin that provides it") from None


def _checked_instance(spec, params: dict, source: str):
    """A detector built from the saved parameters through the registry, parameters checked."""
    from .registry import get_registry

    try:
        with warnings.catch_warnings():  # they were shown when the detector was fitted
            warnings.simplefilter("ignore")
            detector = get_registry().make(spec.name, **params)
            if hasattr(detector, "check_params"):
                detector.check_params()
    except UnknownDetectorError as exc:  # an ensemble member that is not installed
        raise ModelFileError(f"{source} needs a detector that is not installed here ({exc}); "
                             "install the plugin that provides it") from None
    except DeviceError:
        raise
    except (ParameterError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{source} holds invalid parameters for {spec.name}: {exc}; {REFIT_ADVICE}") from None
    return detector


def _restore_fitted(detector, state: dict, tensors: dict, source: str) -> None:
    """``detector._restore_fitted_state``, with every failure a :class:`ModelFileError`."""
    try:
        detector._restore_fitted_state(state, tensors)
    except InconsistentModelError as exc:
        raise inconsistent(source, str(exc)) from None
    except ModelFileError as exc:  # from a nested member, which names itself
        raise ModelFileError(f"{source}: {exc}") from None
    except ParameterError as exc:  # parameters that only fail with the data's width, e.g. input_shape
        raise inconsistent(source, f"its parameters do not fit the features it was fitted on ({exc})") from None
    except AdscoreError:
        raise
    except STATE_ERRORS as exc:  # the safety net behind the explicit checks
        raise inconsistent(source, describe_exception(exc)) from None


def _n_features(detector) -> int | None:
    """The number of features ``detector`` was fitted on, where it (or its scikit-learn estimator) records it."""
    for holder in (detector, getattr(detector, "detector_", None), getattr(detector, "neigh_", None)):
        value = getattr(holder, "n_features_in_", None)
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
    return None


def _check_training_scores(detector, source: str) -> None:
    try:
        scores = np.asarray(detector.decision_scores_, dtype=np.float64)
    except (AttributeError, TypeError, ValueError) as exc:
        raise inconsistent(source, f"it has no usable training scores ({describe_exception(exc)})") from None
    if scores.ndim != 1 or scores.size == 0 or not np.isfinite(scores).all():
        raise inconsistent(source, "its training scores must be a non-empty 1-D array of finite numbers")


def _check_scores_data(detector, n_features: int | None, source: str) -> None:
    """Score two rows of zeros: what the file holds must be able to score data."""
    if n_features is None:
        return
    try:
        scores = np.asarray(detector.decision_function(np.zeros((2, n_features))))
    except DeviceError:
        raise
    except (AdscoreError, *STATE_ERRORS) as exc:
        raise inconsistent(source, f"it cannot score data ({describe_exception(exc)})") from None
    if scores.shape != (2,):
        raise inconsistent(source, f"it scores 2 rows as an array of shape {scores.shape}")


def require_int(state: dict, key: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """``state[key]`` as an int within bounds, or an :class:`InconsistentModelError`."""
    value = state.get(key)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InconsistentModelError(f"state entry {key!r} must be an integer, got {_short(value)}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f"{minimum if minimum is not None else '-inf'}..{maximum if maximum is not None else 'inf'}"
        raise InconsistentModelError(f"state entry {key!r} is {value}, outside {bounds}")
    return int(value)


def require_tensor(tensors: dict, name: str, shape: tuple | None = None, ndim: int | None = None,
                   finite: bool = True, positive: bool = False, nonempty: bool = True) -> torch.Tensor:
    """``tensors[name]`` checked for presence, a real dtype, shape and values.

    ``shape`` may hold None for "any length" in a dimension. Failures are an
    :class:`InconsistentModelError` naming the tensor.
    """
    if name not in tensors:
        raise InconsistentModelError(f"tensor {name!r} is missing")
    tensor = tensors[name]
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise InconsistentModelError(f"tensor {name!r} has dtype {tensor.dtype}, expected real numbers")
    actual = tuple(tensor.shape)
    if shape is not None and (len(actual) != len(shape)
                              or any(want is not None and got != want for got, want in zip(actual, shape))):
        wanted = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        raise InconsistentModelError(f"tensor {name!r} has shape {actual}, expected {wanted}")
    if ndim is not None and len(actual) != ndim:
        raise InconsistentModelError(f"tensor {name!r} has {len(actual)} dimensions, expected {ndim}")
    if nonempty and tensor.numel() == 0:
        raise InconsistentModelError(f"tensor {name!r} is empty")
    if tensor.is_floating_point() and finite and not bool(torch.isfinite(tensor).all()):
        raise InconsistentModelError(f"tensor {name!r} holds NaN or infinite values")
    if positive and tensor.numel() and not bool((tensor > 0).all()):
        raise InconsistentModelError(f"tensor {name!r} must be positive")
    return tensor


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
            if set(value) == {"__tuple__"} and isinstance(value["__tuple__"], list):
                return tuple(decode(v) for v in value["__tuple__"])
            return {k: decode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [decode(v) for v in value]
        return value

    return {k: decode(v) for k, v in params.items()}


def _current_names(cls, params: dict, source: str) -> dict:
    """Parameters saved under a name the class has since renamed (``renamed_parameters``), renamed."""
    renamed = getattr(cls, "renamed_parameters", {})
    out = {}
    for key, value in params.items():
        new = renamed.get(key)
        if new is not None and new in params:
            raise inconsistent(source, f"its parameters hold both {key!r} and its new name {new!r}")
        out[new or key] = value
    return out


def _with_earlier_defaults(cls, params: dict) -> dict:
    """Parameters added since a file was written (``earlier_defaults``), set to what that file was fitted with."""
    return {**getattr(cls, "earlier_defaults", {}), **params}


def _feature_names(detector):
    names = getattr(detector, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


# --------------------------------------------------------------------------
# PyOD / scikit-learn detectors through skops


def _skops_tensors(detector, name: str) -> dict:
    if hasattr(detector, "series_windows_"):  # saved in the metadata, not in the skops payload
        detector = copy.copy(detector)
        del detector.series_windows_
    return {"skops": skops_tensor(detector, f"detector {name!r}")}


def skops_tensor(obj, what: str) -> torch.Tensor:
    """``obj`` (a fitted PyOD detector) as a skops payload in a uint8 tensor.

    Refuses, naming the types, a state that :func:`skops_object` would not load back.
    """
    import skops.io

    payload = skops.io.dumps(obj)
    # never write a file that load_detector would refuse
    root, nodes = skops_node_types(payload, what)
    refused = refused_nodes(root, nodes, type(obj))
    if refused:
        raise AdscoreError(f"cannot save {what}: its fitted state holds object types adscore does "
                           f"not load back: {list_refused(refused)}; choose other parameters (e.g. another "
                           "metric), or report the types if these parameters should be supported")
    return torch.frombuffer(bytearray(payload), dtype=torch.uint8)


def skops_object(tensors: dict, key: str, expected_cls, source: str):
    """The ``expected_cls`` object in the skops payload ``tensors[key]``, after the allow-list check.

    The payload's types are checked against :data:`SKOPS_ALLOWED_NODES` (exact names)
    before skops builds anything, and the built object's compiled index arrays are
    checked before it is used; any problem is a :class:`ModelFileError`.
    """
    import skops.io

    payload = _skops_payload(tensors, source, key)
    trusted = check_skops_payload(payload, expected_cls, source)
    try:
        obj = skops.io.loads(payload, trusted=trusted)
    except Exception as exc:
        raise ModelFileError(f"{source} is damaged ({describe_exception(exc)}); {REFIT_ADVICE}") from None
    if type(obj) is not expected_cls:
        raise ModelFileError(f"{source} holds a {type(obj).__name__}, not the "
                             f"{expected_cls.__name__} its metadata names; {REFIT_ADVICE}")
    check_compiled_structures(obj, source)
    return obj


def _skops_payload(tensors: dict, source: str, key: str) -> bytes:
    tensor = tensors.get(key)
    if tensor is None:
        raise inconsistent(source, f"tensor {key!r} (the detector's fitted state) is missing")
    if tensor.dtype != torch.uint8 or tensor.dim() != 1:
        raise inconsistent(source, f"tensor {key!r} must be 1-D uint8 bytes, got {tensor.dtype} "
                                    f"of shape {tuple(tensor.shape)}")
    return tensor.numpy().tobytes()


def _check_skops_params(detector, saved: dict, name: str, source: str) -> None:
    try:
        actual = _jsonable_params(detector.get_params(deep=False), name)
    except Exception as exc:
        raise inconsistent(source, f"its PyOD state has unusable parameters ({describe_exception(exc)})") from None
    if actual != saved:
        differ = sorted(k for k in set(actual) | set(saved) if actual.get(k, ...) != saved.get(k, ...))
        raise inconsistent(source, f"its parameters ({', '.join(differ)}) differ from those of its PyOD state")


def _version_of(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"
