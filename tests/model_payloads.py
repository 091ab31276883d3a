"""Crafted model files that adscore must refuse, for the persistence and CLI tests.

Every crafted file has a *recomputed* content hash, so it passes the integrity check:
the point is that the hash detects corruption, not malice. Use::

    from model_payloads import MALICIOUS_KINDS, write_malicious_model

    @pytest.mark.parametrize("kind", MALICIOUS_KINDS)
    def test_refused(kind, tmp_path):
        marker = tmp_path / "marker"
        model = write_malicious_model(tmp_path / "evil.adscore", kind, marker)
        ...  # loading `model` must fail with ModelFileError, and `marker` must never exist

- :data:`MALICIOUS_KINDS`: skops payloads holding a type outside the allow-list; most
  of them run code (creating ``marker``) when loaded by skops with every listed type
  trusted (:data:`CODE_RUNNING_KINDS`), and several were accepted by adscore's former
  rule of trusting every ``builtins.``/``numpy.``/``scipy.``/``sklearn.`` type
  (:data:`OLD_RULE_KINDS`, see :func:`load_with_old_prefix_rule`).
- :data:`MALFORMED_PAYLOAD_KINDS`: skops archives with extra or compressed members,
  missing arrays, another top-level class, absurd nesting, out-of-range tree indices.
- :data:`INCONSISTENT_KINDS`: metadata or tensors that do not describe a working
  detector (``kind -> fragment of the expected error message``).
- :func:`rewrite_model`: edit any model file's metadata/tensors and recompute its hash.
"""
from __future__ import annotations

import copy
import functools
import io
import json
import math
import struct
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import skops.io
import torch

from pyod_ae_ext import persistence

MALICIOUS_KINDS = (
    "eval",                # ConstructorFromReduceNode builtins.eval("open(MARKER, 'w')...")
    "exec",                # ConstructorFromReduceNode builtins.exec(...)
    "os_system",           # ConstructorFromReduceNode os.system("touch MARKER")
    "numpy_savetxt",       # ConstructorFromReduceNode numpy.savetxt(MARKER, [[1.0]]): a numpy function writing a file
    "function_exec",       # FunctionNode builtins.exec as a dict key type: exec(key)
    "numpy_function",      # FunctionNode numpy.load as a dict key type: numpy.load(MARKER)
    "ndarray_eval",        # NdArrayNode whose type is builtins.eval: eval(array of the code's bytes)
    "ndarray_subprocess",  # NdArrayNode whose type is subprocess.run: run(["python", "-c", ...])
    "list_subprocess",     # ListNode whose type is subprocess.run
    "sklearn_pipeline",    # ObjectNode sklearn.pipeline.Pipeline: a scikit-learn type not in the allow-list
)
#: Kinds that create ``marker`` when skops loads them trusting every type it lists.
CODE_RUNNING_KINDS = ("eval", "exec", "os_system", "numpy_savetxt", "function_exec", "ndarray_eval",
                      "ndarray_subprocess", "list_subprocess")
#: Kinds the former prefix rule (builtins./numpy./scipy./sklearn./pyod./collections.) let through.
OLD_RULE_KINDS = ("eval", "exec", "numpy_savetxt", "function_exec", "numpy_function", "ndarray_eval",
                  "sklearn_pipeline")
#: The refused type each kind names in adscore's error message.
REFUSED_TYPE = {
    "eval": "builtins.eval (via ConstructorFromReduceNode)",
    "exec": "builtins.exec (via ConstructorFromReduceNode)",
    "os_system": "os.system (via ConstructorFromReduceNode)",
    "numpy_savetxt": "numpy.savetxt (via ConstructorFromReduceNode)",
    "function_exec": "builtins.exec (via FunctionNode)",
    "numpy_function": "numpy.load (via FunctionNode)",
    "ndarray_eval": "builtins.eval (via NdArrayNode)",
    "ndarray_subprocess": "subprocess.run (via NdArrayNode)",
    "list_subprocess": "subprocess.run (via ListNode)",
    "sklearn_pipeline": "sklearn.pipeline.Pipeline (via ObjectNode)",
}

#: kind -> fragment of adscore's error message
MALFORMED_PAYLOAD_KINDS = {
    "extra_member": "unexpected members in its skops archive",
    "compressed_member": "compressed members",
    "missing_array": "its skops archive lacks",
    "object_array": "holds an object array",
    "wrong_top_level": "where its metadata names pyod.models.iforest.IForest",
    "deep_schema": "nested deeper than",
    "not_a_zip": "not a skops archive",
    "tree_index_out_of_range": "child or feature indices out of range",
    "neighbour_index_out_of_range": "sample indices out of range",
    "metric_weights_mismatch": "distance metric that does not fit its data",
    "training_scores_nan": "training scores must be a non-empty 1-D array of finite numbers",
}

#: kind -> fragment of adscore's error message
INCONSISTENT_KINDS = {
    "threshold_nan": "'threshold' must be a finite number",
    "threshold_string": "'threshold' must be a finite number",
    "threshold_huge_integer": "'threshold' must be a finite number",
    "detector_not_string": "'detector' must be a detector name",
    "params_not_dict": "'params' must be an object",
    "feature_names_not_strings": "'feature_names' must be a list of strings",
    "feature_names_wrong_count": "names 3 features but was fitted on 5",
    "unknown_param": "holds invalid parameters for toll: unknown parameter(s) 'bogus'",
    "invalid_param": "holds invalid parameters for toll: lr",
    "wrong_param_type": "holds invalid parameters for toll",
    "state_not_dict": "'state' must be an object",
    "state_entry_missing": "state entry 'n_features_in' must be an integer",
    "state_entry_wrong_type": "state entry 'seed' must be an integer",
    "skops_state_for_autoencoder": "its state is a PyOD/skops state, but detector 'toll' does not use one",
    "missing_tensor": "tensor 'scaler.mean' is missing",
    "scaler_wrong_length": "tensor 'scaler.scale' has shape (4,), expected (5,)",
    "scaler_zero_scale": "tensor 'scaler.scale' must be positive",
    "scores_2d": "tensor 'decision_scores' has 2 dimensions, expected 1",
    "scores_nan": "tensor 'decision_scores' holds NaN or infinite values",
    "weights_wrong_shape": "its network weights do not fit a Toll",
    "weights_missing": "its network weights do not fit a Toll",
    "extra_tensor_wrong_shape": "it cannot score data",
    "skops_params_differ": "(n_estimators) differ from those of its PyOD state",
    "skops_tensor_missing": "tensor 'skops' (the detector's fitted state) is missing",
    "ensemble_member_count": "it must hold one saved detector per member",
    "ensemble_member_renamed": "member 1 is saved as 'ensemble', not as 'iforest'",
    "ensemble_bad_member": "ensemble member 'toll' is inconsistent: tensor 'scaler.mean'",
    "ensemble_bad_normalizer": "tensor 'norm.scale' has shape",
    "ensemble_bad_buckets": "needs buckets of member indices",
}

_CODE = "open({marker!r}, 'w').write('x')"


# --------------------------------------------------------------------------
# reading and rewriting model files without verification


def read_raw_model(path) -> tuple[dict, dict]:
    """(metadata, tensors) of a model file as stored, hash and signature included, unchecked."""
    from safetensors.torch import load

    data = Path(path).read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_len])
    return json.loads(header["__metadata__"]["adscore"]), dict(load(data))


def rewrite_model(path, edit=None, *, sign_with=None, target=None) -> Path:
    """Apply ``edit(meta, tensors)`` (in place) to a model file and recompute its hash.

    A signature already in the file is kept unchanged (so it no longer matches), unless
    ``sign_with`` gives a key to sign the rewritten file with. Written to ``target``
    (default: ``path``).
    """
    meta, tensors = read_raw_model(path)
    meta.pop("content_sha256", None)
    if sign_with is not None:
        meta.pop("hmac_sha256", None)
    if edit is not None:
        edit(meta, tensors)
    target = Path(target or path)
    persistence.write_model_file(target, meta, tensors, signing_key=sign_with)
    return target


def write_model(path, detector, signing_key=None) -> Path:
    """Save ``detector`` without consulting ``$ADSCORE_SIGNING_KEY`` (signed only with ``signing_key``)."""
    meta, tensors = persistence.detector_to_state(detector)
    persistence.write_model_file(path, meta, tensors, signing_key=signing_key)
    return Path(path)


# --------------------------------------------------------------------------
# fitted detectors to start from (cached: fitting is the slow part)


def _data(n_features=5, rows=120, seed=0):
    return np.random.RandomState(seed).normal(size=(rows, n_features))


@functools.lru_cache(maxsize=None)
def _fitted(name: str):
    from helpers import fast_detector

    params = {"iforest": dict(n_estimators=3, random_state=0), "knn": dict(algorithm="kd_tree"),
              "knn_minkowski": dict(metric="minkowski", p=3),
              "toll": dict(epochs=2, hidden_dims=(8,), latent_dim=2, random_state=0),
              "ensemble": dict(detectors=["toll", "iforest"], combine="aom", n_buckets=2, random_state=0,
                               detector_params={"toll": dict(epochs=2, hidden_dims=(8,), latent_dim=2, n_members=1),
                                                "iforest": dict(n_estimators=3)})}[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyOD's KNN warns about `algorithm`
        return fast_detector(name.split("_")[0], **params).fit(_data())


def fitted_detector(name: str):
    """A small detector fitted on 120 x 5 normal data: iforest, knn, toll or ensemble (a copy)."""
    return copy.deepcopy(_fitted(name))


# --------------------------------------------------------------------------
# skops payloads


def skops_schema(payload: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        return json.loads(archive.read("schema.json"))


def replace_members(payload: bytes, replace: dict, compression=zipfile.ZIP_STORED) -> bytes:
    """A copy of the skops archive with members replaced or added (``name -> bytes``; None drops)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(payload)) as source, zipfile.ZipFile(out, "w", compression) as target:
        for name in source.namelist():
            if name not in replace:
                target.writestr(name, source.read(name))
        for name, data in replace.items():
            if data is not None:
                target.writestr(name, data)
    return out.getvalue()


def with_schema(payload: bytes, schema: dict, extra: dict | None = None) -> bytes:
    return replace_members(payload, {"schema.json": json.dumps(schema).encode(), **(extra or {})})


def _json(value) -> dict:
    return {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode",
            "content": json.dumps(value), "is_json": True}


def _tuple(*items) -> dict:
    return {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode", "content": list(items)}


def _list(*items, module="builtins", cls="list") -> dict:
    return {"__class__": cls, "__module__": module, "__loader__": "ListNode", "content": list(items)}


def _str_type() -> dict:
    return {"__class__": "str", "__module__": "builtins", "__loader__": "TypeNode"}


def _call(module: str, function: str, *args) -> dict:
    return {"__class__": function, "__module__": module, "__loader__": "ConstructorFromReduceNode",
            "content": _tuple(*args)}


def _dict_with_key_type(key: str, key_type: dict) -> dict:
    """A DictNode whose only key is converted with ``key_type`` (called as ``key_type(key)``)."""
    return {"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode",
            "content": {key: _json(1)}, "key_types": _list(key_type)}


def _object_npy() -> bytes:
    """A .npy file of one object (pickled) cell; numpy refuses to write one without pickle."""
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += " " * (-(10 + len(header) + 1) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 8


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _python_command(marker) -> list:
    return [sys.executable, "-c", _CODE.format(marker=str(marker))]


def _malicious_node(kind: str, marker) -> tuple[dict, dict]:
    """(node, extra zip members) for ``kind``."""
    code = _CODE.format(marker=str(marker))
    if kind == "eval":
        return _call("builtins", "eval", _json(code)), {}
    if kind == "exec":
        return _call("builtins", "exec", _json(code)), {}
    if kind == "os_system":
        return _call("os", "system", _json(f"touch '{marker}'")), {}
    if kind == "numpy_savetxt":
        return _call("numpy", "savetxt", _json(str(marker)), _json([[1.0]])), {}
    if kind == "function_exec":
        return _dict_with_key_type(code, {"__class__": "exec", "__module__": "builtins",
                                          "__loader__": "FunctionNode"}), {}
    if kind == "numpy_function":
        return _dict_with_key_type(str(marker), {"__class__": "load", "__module__": "numpy",
                                                 "__loader__": "FunctionNode"}), {}
    if kind in ("ndarray_eval", "ndarray_subprocess"):
        module, cls = ("builtins", "eval") if kind == "ndarray_eval" else ("subprocess", "run")
        # eval reads an array's buffer as source code: one bytes cell is exactly the code
        content = np.array([code.encode()]) if kind == "ndarray_eval" else np.array(_python_command(marker))
        node = {"__class__": cls, "__module__": module, "__loader__": "NdArrayNode", "type": "numpy",
                "file": "crafted.npy"}
        return node, {"crafted.npy": _npy(content)}
    if kind == "list_subprocess":
        return _list(*map(_json, _python_command(marker)), module="subprocess", cls="run"), {}
    if kind == "sklearn_pipeline":
        steps = {"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode",
                 "content": {"steps": _list()}, "key_types": _list(_str_type())}
        return {"__class__": "Pipeline", "__module__": "sklearn.pipeline", "__loader__": "ObjectNode",
                "content": steps}, {}
    raise ValueError(f"unknown kind {kind!r}; one of {MALICIOUS_KINDS}")


def _add_attribute(schema: dict, name: str, node: dict) -> dict:
    """The top-level object's schema with one more attribute (last, as DictNode expects)."""
    schema = copy.deepcopy(schema)
    attrs = schema["content"]
    attrs["content"][name] = node
    attrs["key_types"]["content"].append(_str_type())
    return schema


@functools.lru_cache(maxsize=None)
def iforest_payload() -> bytes:
    """The skops payload of a small fitted PyOD IForest."""
    return skops.io.dumps(_fitted("iforest"))


def malicious_skops_payload(kind: str, marker) -> bytes:
    """A real IForest payload with one crafted attribute of ``kind`` (see :data:`MALICIOUS_KINDS`)."""
    payload = iforest_payload()
    node, extra = _malicious_node(kind, marker)
    return with_schema(payload, _add_attribute(skops_schema(payload), "crafted_", node), extra)


def _write_iforest_with_payload(path, payload: bytes, signing_key=None) -> Path:
    meta, _ = persistence.detector_to_state(_fitted("iforest"))
    tensors = {"skops": torch.frombuffer(bytearray(payload), dtype=torch.uint8)}
    persistence.write_model_file(path, meta, tensors, signing_key=signing_key)
    return Path(path)


def write_malicious_model(path, kind: str, marker, signing_key=None) -> Path:
    """A hash-valid ``iforest`` model file whose skops payload holds a crafted node of ``kind``.

    Loaded by plain skops (trusting what it lists), the :data:`CODE_RUNNING_KINDS` create
    the file ``marker``. ``signing_key`` signs the crafted file, as a careless key holder
    would: the allow-list must refuse it all the same.
    """
    return _write_iforest_with_payload(path, malicious_skops_payload(kind, marker), signing_key)


def load_with_old_prefix_rule(payload: bytes):
    """Load ``payload`` as adscore did before the exact allow-list (for the sanity tests)."""
    prefixes = ("sklearn.", "pyod.", "numpy.", "scipy.", "builtins.", "collections.")
    types = skops.io.get_untrusted_types(data=payload)
    untrusted = [t for t in types if not t.startswith(prefixes) and t != "pyod.models.iforest.IForest"]
    if untrusted:
        raise ValueError(f"refused by the old rule: {untrusted}")
    return skops.io.loads(payload, trusted=types)


# --------------------------------------------------------------------------
# malformed skops archives


def _nodes(schema: dict, predicate) -> list:
    """Every dict in the schema for which ``predicate`` holds."""
    found, stack = [], [schema]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if predicate(value):
                found.append(value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return found


def _first_file(schema: dict, predicate) -> str:
    return _nodes(schema, predicate)[0]["file"]


def _tree_nodes_files(schema: dict) -> list:
    return [tree["content"]["content"]["nodes"]["file"]
            for tree in _nodes(schema, lambda n: n.get("__loader__") == "TreeNode")]


def malformed_skops_payload(kind: str) -> tuple[str, bytes]:
    """(detector name, payload) for ``kind`` (see :data:`MALFORMED_PAYLOAD_KINDS`)."""
    payload = iforest_payload()
    schema = skops_schema(payload)
    if kind == "extra_member":
        return "iforest", replace_members(payload, {"extra.bin": b"\0" * 16})
    if kind == "compressed_member":
        return "iforest", replace_members(payload, {}, compression=zipfile.ZIP_DEFLATED)
    if kind == "missing_array":
        return "iforest", replace_members(payload, {_first_file(schema, lambda n: "file" in n): None})
    if kind == "object_array":
        name = _first_file(schema, lambda n: "file" in n)
        return "iforest", replace_members(payload, {name: _object_npy()})
    if kind == "wrong_top_level":
        return "iforest", skops.io.dumps(_fitted("knn"))
    if kind == "deep_schema":
        node = _json(0)
        for _ in range(100):
            node = _list(node)
        return "iforest", with_schema(payload, _add_attribute(schema, "deep_", node))
    if kind == "not_a_zip":
        return "iforest", b"PK\x03\x04 this is not a zip archive"
    if kind == "tree_index_out_of_range":
        replaced = {}
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            for name in _tree_nodes_files(schema):
                nodes = np.load(io.BytesIO(archive.read(name)), allow_pickle=False)
                nodes["left_child"][0] = 10**6
                replaced[name] = _npy(nodes)
        return "iforest", replace_members(payload, replaced)
    if kind == "neighbour_index_out_of_range":
        payload = skops.io.dumps(_fitted("knn"))
        schema = skops_schema(payload)
        index_node = schema["content"]["content"]["tree_"]["content"]["content"][1]  # (data, idx_array, ...)
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            idx = np.load(io.BytesIO(archive.read(index_node["file"])), allow_pickle=False)
        idx[0] = 10**6
        return "knn", replace_members(payload, {index_node["file"]: _npy(idx)})
    if kind == "metric_weights_mismatch":  # one weight for five features
        payload = skops.io.dumps(_fitted("knn_minkowski"))
        metrics = _nodes(skops_schema(payload), lambda n: n.get("__class__") == "MinkowskiDistance64")
        # every copy: skops resolves repeated objects (same __id__) to the first one it meets
        weights = {metric["content"]["content"][1]["file"]: _npy(np.ones(1)) for metric in metrics}
        return "knn_minkowski", replace_members(payload, weights)
    if kind == "training_scores_nan":
        scores = schema["content"]["content"]["decision_scores_"]["file"]
        return "iforest", replace_members(payload, {scores: _npy(np.full(120, np.nan))})
    raise ValueError(f"unknown kind {kind!r}; one of {tuple(MALFORMED_PAYLOAD_KINDS)}")


def write_malformed_payload_model(path, kind: str) -> Path:
    """A hash-valid model file whose skops payload is malformed as ``kind`` says."""
    name, payload = malformed_skops_payload(kind)
    meta, _ = persistence.detector_to_state(_fitted(name))
    tensors = {"skops": torch.frombuffer(bytearray(payload), dtype=torch.uint8)}
    persistence.write_model_file(path, meta, tensors)
    return Path(path)


# --------------------------------------------------------------------------
# hash-valid but inconsistent files


def _set(key, value):
    def edit(meta, tensors):
        meta[key] = value
    return edit


def _state(key, value=None, delete=False):
    def edit(meta, tensors):
        if delete:
            del meta["state"][key]
        else:
            meta["state"][key] = value
    return edit


def _param(key, value):
    def edit(meta, tensors):
        meta["params"][key] = value
    return edit


def _tensor(name, make=None):
    def edit(meta, tensors):
        if make is None:
            del tensors[name]
        else:
            tensors[name] = make(tensors[name])
    return edit


def _first_weight(meta, tensors):
    name = next(k for k in sorted(tensors) if k.startswith("net.") and k.endswith("weight"))
    tensors[name] = torch.zeros(tuple(s + 1 for s in tensors[name].shape))


def _drop_weights(meta, tensors):
    for name in [k for k in tensors if k.startswith("net.")]:
        del tensors[name]


def _nan_first(t):
    t = t.clone()
    t[0] = float("nan")
    return t


def _member_edit(edit):
    def apply(meta, tensors):
        edit(meta["state"], tensors)
    return apply


_INCONSISTENT_EDITS = {
    "threshold_nan": ("toll", _set("threshold", math.nan)),
    "threshold_string": ("toll", _set("threshold", "high")),
    "threshold_huge_integer": ("toll", _set("threshold", 10**400)),
    "detector_not_string": ("toll", _set("detector", 5)),
    "params_not_dict": ("toll", _set("params", [])),
    "feature_names_not_strings": ("toll", _set("feature_names", [1, 2, 3, 4, 5])),
    "feature_names_wrong_count": ("toll", _set("feature_names", ["a", "b", "c"])),
    "unknown_param": ("toll", _param("bogus", 1)),
    "invalid_param": ("toll", _param("lr", -1.0)),
    "wrong_param_type": ("toll", _param("hidden_dims", "wide")),
    "state_not_dict": ("toll", _set("state", 3)),
    "state_entry_missing": ("toll", _state("n_features_in", delete=True)),
    "state_entry_wrong_type": ("toll", _state("seed", "seven")),
    "skops_state_for_autoencoder": ("toll", _set("state", {"skops": True})),
    "missing_tensor": ("toll", _tensor("scaler.mean")),
    "scaler_wrong_length": ("toll", _tensor("scaler.scale", lambda t: t[:-1].clone())),
    "scaler_zero_scale": ("toll", _tensor("scaler.scale", lambda t: torch.zeros_like(t))),
    "scores_2d": ("toll", _tensor("decision_scores", lambda t: t.reshape(-1, 1).clone())),
    "scores_nan": ("toll", _tensor("decision_scores", _nan_first)),
    "weights_wrong_shape": ("toll", _first_weight),
    "weights_missing": ("toll", _drop_weights),
    "skops_params_differ": ("iforest", _param("n_estimators", 7)),
    "skops_tensor_missing": ("iforest", _tensor("skops")),
}


def _ensemble_edit(kind):
    def edit(meta, tensors):
        state = meta["state"]
        if kind == "ensemble_member_count":
            state["members"] = state["members"][:1]
        elif kind == "ensemble_member_renamed":
            state["members"][1]["detector"] = "ensemble"
        elif kind == "ensemble_bad_member":
            tensors["member0.scaler.mean"] = tensors["member0.scaler.mean"][:-1].clone()
        elif kind == "ensemble_bad_normalizer":
            tensors["norm.scale"] = torch.ones(5, dtype=torch.float64)
        elif kind == "ensemble_bad_buckets":
            state["buckets"] = [[0, 7]]
    return edit


def write_inconsistent_model(path, kind: str) -> Path:
    """A hash-valid model file whose content is inconsistent as ``kind`` says (see :data:`INCONSISTENT_KINDS`)."""
    if kind.startswith("ensemble_"):
        name, edit = "ensemble", _ensemble_edit(kind)
    elif kind == "extra_tensor_wrong_shape":
        name, edit = "toll", None
    else:
        name, edit = _INCONSISTENT_EDITS[kind]
    source = write_model(Path(path), _fitted(name))
    if kind == "extra_tensor_wrong_shape":
        return _vae_extra_wrong_shape(path)
    return rewrite_model(source, edit)


def _vae_extra_wrong_shape(path) -> Path:
    """A Wasserstein-scoring VAE whose reference set has the wrong shape: only scoring notices."""
    from helpers import fast_detector

    detector = fast_detector("vae", score_method="wasserstein", epochs=1, hidden_dims=(8,), latent_dim=2).fit(_data())
    write_model(path, detector)

    def edit(meta, tensors):
        tensors["extra.reference_mu"] = torch.zeros(3, 7)
    return rewrite_model(path, edit)
