"""What a skops payload inside a model file may contain, checked before skops reads it.

PyOD's classic detectors are stored as skops payloads (scikit-learn objects rebuilt
from a JSON schema, never a pickle). skops itself builds whatever types a caller
trusts, and some of its node kinds call the named type or function while loading
(``ConstructorFromReduceNode``, ``FunctionNode``; ``NdArrayNode`` calls its type on the
array). So every node of the schema is checked here against an exact allow-list of
(node kind, fully qualified type) pairs before skops sees the payload, the archive may
hold only the schema and the arrays it names, and scikit-learn's compiled structures
(tree, neighbour and SVM index arrays, which its C code does not bounds-check) are
checked after loading.
"""
from __future__ import annotations

import io
import json
import math
import numbers
import zipfile

import numpy as np

from .errors import (REFIT_ADVICE, STATE_ERRORS, InconsistentModelError, ModelFileError, describe_exception,
                     inconsistent)

#: (skops loader, fully qualified type) pairs a skops payload may contain: what the
#: registered PyOD baselines hold after ``fit``, measured over several data shapes and
#: parameter variants, plus a few NumPy scalar types. Exact names, never prefixes: an
#: NdArrayNode calls its type on the array, so the pair matters, not the type alone.
SKOPS_ALLOWED_NODES = frozenset({
    ("DictNode", "builtins.dict"),
    ("JsonNode", "builtins.str"),
    ("ListNode", "builtins.list"),
    ("TupleNode", "builtins.tuple"),
    ("TypeNode", "builtins.str"),
    ("NdArrayNode", "numpy.ndarray"),
    ("NdArrayNode", "numpy.float64"),
    ("NdArrayNode", "numpy.float32"),
    ("NdArrayNode", "numpy.int64"),
    ("NdArrayNode", "numpy.int32"),
    ("NdArrayNode", "numpy.bool_"),  # NumPy 1.x name
    ("NdArrayNode", "numpy.bool"),  # NumPy 2.x name
    *(("ObjectNode", f"pyod.models.{module}.{cls}") for module, cls in (
        ("copod", "COPOD"), ("ecod", "ECOD"), ("gmm", "GMM"), ("hbos", "HBOS"), ("iforest", "IForest"),
        ("inne", "INNE"), ("knn", "KNN"), ("loda", "LODA"), ("lof", "LOF"), ("mcd", "MCD"),
        ("ocsvm", "OCSVM"), ("pca", "PCA"))),
    ("ObjectNode", "sklearn.covariance._robust_covariance.MinCovDet"),
    ("ObjectNode", "sklearn.decomposition._pca.PCA"),
    ("ObjectNode", "sklearn.ensemble._iforest.IsolationForest"),
    ("ObjectNode", "sklearn.metrics._dist_metrics.ChebyshevDistance64"),
    ("ObjectNode", "sklearn.metrics._dist_metrics.EuclideanDistance64"),
    ("ObjectNode", "sklearn.metrics._dist_metrics.ManhattanDistance64"),
    ("ObjectNode", "sklearn.metrics._dist_metrics.MinkowskiDistance64"),
    ("ObjectNode", "sklearn.mixture._gaussian_mixture.GaussianMixture"),
    ("ObjectNode", "sklearn.neighbors._ball_tree.BallTree"),
    ("ObjectNode", "sklearn.neighbors._kd_tree.KDTree"),
    ("ObjectNode", "sklearn.neighbors._lof.LocalOutlierFactor"),
    ("ObjectNode", "sklearn.neighbors._unsupervised.NearestNeighbors"),
    ("ObjectNode", "sklearn.preprocessing._data.StandardScaler"),
    ("ObjectNode", "sklearn.svm._classes.OneClassSVM"),
    ("ObjectNode", "sklearn.tree._classes.ExtraTreeRegressor"),
    ("TreeNode", "sklearn.tree._tree.Tree"),
})
_SKOPS_ALLOWED_TYPES = frozenset(name for _, name in SKOPS_ALLOWED_NODES)
_SKOPS_SCHEMA = "schema.json"
_SKOPS_MAX_SCHEMA_BYTES = 256 * 1024 * 1024
_SKOPS_MAX_DEPTH = 64  # the baselines nest at most 16 deep
_SKOPS_MAX_NODES = 10_000_000
_SKOPS_ONLY = "only files saved by adscore from the registered PyOD detectors are accepted"


def check_skops_payload(payload: bytes, expected_cls, source: str = "skops payload") -> list[str]:
    """Check a skops payload against :data:`SKOPS_ALLOWED_NODES` without building anything.

    Parameters
    ----------
    payload : bytes
        The skops zip archive.
    expected_cls : type
        The registered detector class that must be the top-level object. It is
        accepted there (and only there) even when not in the allow-list: it is code
        the user installed as a plugin.
    source : str
        How errors name the file.

    Returns
    -------
    list of str
        The types skops itself would not trust by default, all of them allowed: what to
        pass as ``skops.io.loads(payload, trusted=...)``.

    Raises
    ------
    ModelFileError
        A type outside the allow-list, another top-level class, unexpected or
        compressed zip members, or a malformed archive.
    """
    import skops.io

    registered = _qualified_name(expected_cls)
    root, nodes = skops_node_types(payload, source)
    refused = refused_nodes(root, nodes, expected_cls)
    if refused:
        raise ModelFileError(f"{source} contains object types adscore does not load: {list_refused(refused)}; "
                             f"{_SKOPS_ONLY}")
    if root != ("ObjectNode", registered):
        raise inconsistent(source, f"it holds a {root[1]} where its metadata names {registered}")
    try:
        untrusted = skops.io.get_untrusted_types(data=payload)
    except Exception as exc:
        raise ModelFileError(f"{source} is damaged ({describe_exception(exc)}); {REFIT_ADVICE}") from None
    unexpected = [t for t in untrusted if t not in _SKOPS_ALLOWED_TYPES and t != registered]
    if unexpected:  # cannot happen when the schema walk is complete; refuse rather than trust
        raise ModelFileError(f"{source} contains object types adscore does not load: "
                             f"{', '.join(unexpected)}; {_SKOPS_ONLY}")
    return untrusted


def _qualified_name(cls) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def refused_nodes(root: tuple, nodes: set, expected_cls) -> list:
    """(type, loader) of every node outside the allow-list, the top-level one first."""
    refused = sorted((name, loader) for loader, name in nodes if (loader, name) not in SKOPS_ALLOWED_NODES)
    if root != ("ObjectNode", _qualified_name(expected_cls)) and root not in SKOPS_ALLOWED_NODES:
        refused.insert(0, (root[1], root[0]))
    return refused


def list_refused(refused: list) -> str:
    listed = ", ".join(f"{name} (via {loader})" for name, loader in refused[:10])
    return listed + (f" and {len(refused) - 10} more" if len(refused) > 10 else "")


def skops_node_types(payload: bytes, source: str = "skops payload") -> tuple[tuple, set]:
    """The (loader, type) pair of the top-level object and the set of all the others.

    Reads only the zip directory, ``schema.json`` and the ``.npy`` headers; checks
    the archive's shape on the way (see :func:`check_skops_payload`).
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(payload))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ModelFileError(f"{source} is damaged: its PyOD state is not a skops archive ({exc}); "
                             f"{REFIT_ADVICE}") from None
    with archive:
        schema = _read_schema(archive, source)
        root, nodes, files = _walk_schema(schema, source)
        _check_members(archive, files, source)
    return root, nodes


def _read_schema(archive: zipfile.ZipFile, source: str) -> dict:
    infos = archive.infolist()
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        raise ModelFileError(f"{source} is damaged: its skops archive repeats member names; {REFIT_ADVICE}")
    # adscore's payloads are stored uncompressed; refusing compression rules out zip bombs
    compressed = [info.filename for info in infos if info.compress_type != zipfile.ZIP_STORED]
    if compressed:
        raise ModelFileError(f"{source} has compressed members in its skops archive "
                             f"({', '.join(compressed[:5])}), which adscore never writes; {_SKOPS_ONLY}")
    if _SKOPS_SCHEMA not in names:
        raise ModelFileError(f"{source} is damaged: its skops archive has no {_SKOPS_SCHEMA}; {REFIT_ADVICE}")
    if archive.getinfo(_SKOPS_SCHEMA).file_size > _SKOPS_MAX_SCHEMA_BYTES:
        raise ModelFileError(f"{source} has a skops schema larger than {_SKOPS_MAX_SCHEMA_BYTES} bytes; "
                             f"{_SKOPS_ONLY}")
    try:
        schema = json.loads(archive.read(_SKOPS_SCHEMA))
    except (ValueError, RecursionError, zipfile.BadZipFile, OSError) as exc:
        raise ModelFileError(f"{source} is damaged: unreadable skops schema ({describe_exception(exc)}); "
                             f"{REFIT_ADVICE}") from None
    if not isinstance(schema, dict):
        raise ModelFileError(f"{source} is damaged: its skops schema is not an object; {REFIT_ADVICE}")
    return schema


def _walk_schema(schema: dict, source: str) -> tuple[tuple, set, set]:
    """(root pair, other pairs, referenced array files): every dict with ``__loader__`` is a node."""
    root = _node_pair(schema, source)
    nodes, files = set(), set()
    stack = [(value, 1) for value in schema.values()]
    count = 0
    while stack:
        value, depth = stack.pop()
        if depth > _SKOPS_MAX_DEPTH:
            raise ModelFileError(f"{source} has a skops schema nested deeper than {_SKOPS_MAX_DEPTH} levels; "
                                 f"{_SKOPS_ONLY}")
        if isinstance(value, dict):
            if "__loader__" in value:
                count += 1
                if count > _SKOPS_MAX_NODES:
                    raise ModelFileError(f"{source} has more than {_SKOPS_MAX_NODES} objects in its skops "
                                         f"schema; {_SKOPS_ONLY}")
                nodes.add(_node_pair(value, source))
                if value.get("__loader__") == "NdArrayNode" and value.get("type") == "numpy":
                    files.add(value.get("file"))
            stack.extend((child, depth + 1) for child in value.values())
        elif isinstance(value, list):
            stack.extend((child, depth + 1) for child in value)
    if root[0] == "NdArrayNode" and schema.get("type") == "numpy":
        files.add(schema.get("file"))
    if not all(isinstance(name, str) for name in files):
        raise ModelFileError(f"{source} is damaged: an array in its skops schema has no file name; {REFIT_ADVICE}")
    return root, nodes, files


def _node_pair(node: dict, source: str) -> tuple[str, str]:
    loader, module, cls = node.get("__loader__"), node.get("__module__"), node.get("__class__")
    if not all(isinstance(part, str) for part in (loader, module, cls)):
        raise ModelFileError(f"{source} is damaged: a skops schema entry lacks its loader, module or "
                             f"class name; {REFIT_ADVICE}")
    return loader, f"{module}.{cls}"


def _check_members(archive: zipfile.ZipFile, files: set, source: str) -> None:
    """Only schema.json and the arrays it refers to, each a plain .npy of the size its header says."""
    names = set(archive.namelist())
    extra = sorted(names - files - {_SKOPS_SCHEMA})
    if extra:
        raise ModelFileError(f"{source} has unexpected members in its skops archive ({', '.join(extra[:5])}); "
                             f"{_SKOPS_ONLY}")
    missing = sorted(files - names)
    if missing:
        raise ModelFileError(f"{source} is damaged: its skops archive lacks {', '.join(missing[:5])}; {REFIT_ADVICE}")
    for name in sorted(files):
        _check_npy(archive, name, source)


def _check_npy(archive: zipfile.ZipFile, name: str, source: str) -> None:
    from numpy.lib import format as npy

    try:
        stream = io.BytesIO(archive.read(name))
        version = npy.read_magic(stream)
        read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, _, dtype = read_header(stream)
    except (ValueError, OSError, SyntaxError, zipfile.BadZipFile) as exc:
        raise ModelFileError(f"{source} is damaged: array {name} is not a .npy file ({describe_exception(exc)}); "
                             f"{REFIT_ADVICE}") from None
    if dtype.hasobject:
        raise ModelFileError(f"{source} holds an object array ({name}); {_SKOPS_ONLY}")
    expected = dtype.itemsize * math.prod(shape)
    actual = len(stream.getbuffer()) - stream.tell()
    if expected != actual:
        raise ModelFileError(f"{source} is damaged: array {name} declares {expected} bytes but holds {actual}; "
                             f"{REFIT_ADVICE}")


# --------------------------------------------------------------------------
# scikit-learn's compiled structures index memory without bounds checks


def check_compiled_structures(detector, source: str) -> None:
    """Check the index arrays of every decision tree and neighbour index in ``detector``.

    scikit-learn follows a tree's child and feature indices, a KD/ball tree's sample
    indices and an SVM's support counts in compiled code without bounds checks, so an
    out-of-range index in a crafted file would read (or write) outside the arrays.
    """
    from sklearn.neighbors._ball_tree import BallTree
    from sklearn.neighbors._kd_tree import KDTree
    from sklearn.svm import OneClassSVM
    from sklearn.tree._tree import Tree

    try:
        for item in _object_graph(detector):
            if isinstance(item, Tree):
                _check_decision_tree(item)
            elif isinstance(item, (KDTree, BallTree)):
                _check_neighbour_tree(item)
            elif isinstance(item, OneClassSVM):
                _check_svm(item)
        _check_isolation_forests(detector)
    except InconsistentModelError as exc:
        raise inconsistent(source, str(exc)) from None
    except STATE_ERRORS as exc:
        raise inconsistent(source, describe_exception(exc)) from None


def _object_graph(root):
    """Every object reachable from ``root`` through attributes, lists, tuples and dicts."""
    seen, stack = set(), [root]
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, (str, bytes, numbers.Number, np.ndarray, type(None))):
            continue
        seen.add(id(item))
        yield item
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif hasattr(item, "__dict__"):
            stack.extend(vars(item).values())


def _check_decision_tree(tree) -> None:
    count = int(tree.node_count)
    if not 0 < count <= int(tree.capacity):  # before reading the node array, which has `capacity` entries
        raise InconsistentModelError(f"a decision tree claims {count} nodes in room for {tree.capacity}")
    left = np.asarray(tree.children_left, dtype=np.int64)
    right = np.asarray(tree.children_right, dtype=np.int64)
    feature = np.asarray(tree.feature, dtype=np.int64)
    index = np.arange(count)
    leaf = left == -1
    # scikit-learn numbers children after their parent, so these bounds also exclude cycles
    inner_ok = (left > index) & (left < count) & (right > index) & (right < count) \
        & (feature >= 0) & (feature < int(tree.n_features))
    if not np.all(np.where(leaf, right == -1, inner_ok)):
        raise InconsistentModelError("a decision tree has child or feature indices out of range")
    if int(tree.n_outputs) != 1:
        raise InconsistentModelError(f"a decision tree has {tree.n_outputs} outputs, expected 1")


def _check_isolation_forests(detector) -> None:
    from sklearn.ensemble import IsolationForest

    for forest in (item for item in _object_graph(detector) if isinstance(item, IsolationForest)):
        n_features = int(forest.n_features_in_)
        if len(forest.estimators_) != len(forest.estimators_features_):
            raise InconsistentModelError("an isolation forest lists a different number of trees and feature sets")
        for tree, features in zip(forest.estimators_, forest.estimators_features_):
            features = np.asarray(features)
            if features.ndim != 1 or not np.all((features >= 0) & (features < n_features)):
                raise InconsistentModelError("an isolation forest has feature indices out of range")
            if int(tree.tree_.n_features) != len(features):
                raise InconsistentModelError("an isolation forest tree has a different width than its features")


def _check_neighbour_tree(tree) -> None:
    data, idx, nodes, bounds = (np.asarray(a) for a in tree.get_arrays())
    metric = tree.__getstate__()[11]
    if type(metric).__name__ == "MinkowskiDistance64":  # a weighted one reads one weight per feature
        p, weights = metric.__getstate__()[:2]
        if np.asarray(weights).size not in (0, data.shape[1]) or not 1 <= p < math.inf:
            raise InconsistentModelError("a neighbour index has a distance metric that does not fit its data")
    if data.ndim != 2 or idx.ndim != 1 or len(idx) != len(data):
        raise InconsistentModelError("a neighbour index has inconsistent data and index arrays")
    if not np.array_equal(np.sort(idx.astype(np.int64)), np.arange(len(data))):
        raise InconsistentModelError("a neighbour index has sample indices out of range")
    n_nodes = len(nodes)
    if n_nodes == 0 or bounds.ndim != 3 or bounds.shape[1:] != (n_nodes, data.shape[1]):
        raise InconsistentModelError("a neighbour index has node arrays of the wrong shape")
    start, end = nodes["idx_start"].astype(np.int64), nodes["idx_end"].astype(np.int64)
    inner = np.flatnonzero(nodes["is_leaf"] == 0)
    if np.any(start < 0) or np.any(start > end) or np.any(end > len(data)) or np.any(2 * inner + 2 >= n_nodes):
        raise InconsistentModelError("a neighbour index has node ranges out of bounds")


def _check_svm(svm) -> None:
    # libsvm sizes a one-class model by its support vectors; the other arrays must follow
    vectors, support, dual = (np.asarray(a) for a in (svm.support_vectors_, svm.support_, svm._dual_coef_))
    n = vectors.shape[0] if vectors.ndim == 2 else -1
    if (n < 1 or vectors.shape[1] != int(svm.n_features_in_) or support.shape != (n,)
            or dual.shape != (1, n) or np.asarray(svm._intercept_).shape != (1,)):
        raise InconsistentModelError("a one-class SVM has support-vector arrays of inconsistent sizes")
