"""Model files from others: the skops allow-list, crafted payloads, signing, inconsistent content."""
import json

import numpy as np
import pytest
import skops.io
import torch
from safetensors.torch import save

import pyod_ae_ext
from pyod_ae_ext import persistence, skops_guard
from pyod_ae_ext.errors import AdscoreError, ModelFileError
from pyod_ae_ext.plugins.pyod_baselines import BASELINES

from model_payloads import (  # tests/ helpers
    CODE_RUNNING_KINDS,
    INCONSISTENT_KINDS,
    MALFORMED_PAYLOAD_KINDS,
    MALICIOUS_KINDS,
    OLD_RULE_KINDS,
    REFUSED_TYPE,
    fitted_detector,
    load_with_old_prefix_rule,
    malicious_skops_payload,
    read_raw_model,
    rewrite_model,
    write_inconsistent_model,
    write_malformed_payload_model,
    write_malicious_model,
    write_model,
)

KEY = b"0123456789abcdef-test-key"
OTHER_KEY = b"fedcba9876543210-other-key"


@pytest.fixture(autouse=True)
def no_key_in_environment(monkeypatch):
    monkeypatch.delenv(persistence.SIGNING_KEY_ENV, raising=False)


@pytest.fixture
def no_skops_loading(monkeypatch):
    """Fail the test if skops is asked to build (or even audit) anything."""
    def forbidden(*args, **kwargs):
        raise AssertionError("skops was called on a payload adscore should have refused first")

    monkeypatch.setattr(skops.io, "loads", forbidden)
    monkeypatch.setattr(skops.io, "get_untrusted_types", forbidden)


# --------------------------------------------------------------------------
# the allow-list covers what the registered PyOD baselines hold


def _data(kind):
    rng = np.random.RandomState(1)
    if kind == "wide":
        return rng.normal(size=(60, 40)), rng.normal(size=(10, 40))
    if kind == "discrete":
        return rng.randint(0, 4, size=(80, 3)).astype(float), rng.randint(0, 4, size=(10, 3)).astype(float)
    return rng.normal(size=(80, 4)), rng.normal(size=(10, 4))


VARIANTS = (
    [(name, {}, "small") for name in BASELINES]
    + [(name, {}, "wide") for name in BASELINES]
    + [("knn", dict(metric="manhattan"), "small"), ("knn", dict(metric="minkowski", p=3), "small"),
       ("knn", dict(metric="chebyshev"), "small"), ("knn", dict(algorithm="ball_tree"), "small"),
       ("knn", dict(algorithm="kd_tree", metric="manhattan"), "small"), ("knn", dict(algorithm="brute"), "small"),
       ("knn", dict(method="mean"), "discrete"), ("lof", dict(metric="manhattan"), "small"),
       ("lof", dict(algorithm="ball_tree"), "small"), ("lof", dict(algorithm="brute"), "discrete"),
       ("iforest", dict(max_features=0.5, bootstrap=True, n_estimators=10), "small"),
       ("ocsvm", dict(kernel="linear"), "small"), ("pca", dict(n_components=2, whiten=True), "small"),
       ("gmm", dict(n_components=2, covariance_type="diag"), "small"), ("hbos", dict(n_bins="auto"), "discrete")]
)


@pytest.mark.filterwarnings("ignore:algorithm parameter is deprecated:FutureWarning")
@pytest.mark.parametrize("name, params, data", VARIANTS,
                         ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in p.items()) or 'default'}-{d}"
                              for n, p, d in VARIANTS])
def test_registered_baselines_fit_the_allow_list_and_round_trip(name, params, data, tmp_path):
    X, X_new = _data(data)
    detector = pyod_ae_ext.make_detector(name, **params).fit(X)
    root, nodes = skops_guard.skops_node_types(skops.io.dumps(detector))
    assert root == ("ObjectNode", f"{type(detector).__module__}.{type(detector).__qualname__}")
    assert nodes | {root} <= skops_guard.SKOPS_ALLOWED_NODES
    path = tmp_path / "model.adscore"
    pyod_ae_ext.save(detector, path)
    loaded = pyod_ae_ext.load(path)
    assert type(loaded) is type(detector)
    np.testing.assert_array_equal(loaded.decision_function(X_new), detector.decision_function(X_new))
    assert loaded.threshold_ == detector.threshold_


def test_allow_list_is_exact_and_calls_nothing():
    loaders = {loader for loader, _ in skops_guard.SKOPS_ALLOWED_NODES}
    assert loaders == {"DictNode", "JsonNode", "ListNode", "TupleNode", "TypeNode", "NdArrayNode", "ObjectNode",
                       "TreeNode"}
    for _, name in skops_guard.SKOPS_ALLOWED_NODES:
        module = name.rsplit(".", 1)[0]
        assert module in ("builtins", "numpy") or module.startswith(("pyod.models.", "sklearn.")), name
        assert not name.endswith((".eval", ".exec", ".getattr", ".__import__", ".open", ".load", ".save"))
    builtin_types = {name for _, name in skops_guard.SKOPS_ALLOWED_NODES if name.startswith("builtins.")}
    assert builtin_types == {"builtins.dict", "builtins.str", "builtins.list", "builtins.tuple"}
    numpy_types = {name for _, name in skops_guard.SKOPS_ALLOWED_NODES if name.startswith("numpy.")}
    assert numpy_types <= {"numpy.ndarray", "numpy.float64", "numpy.float32", "numpy.int64", "numpy.int32",
                           "numpy.bool_", "numpy.bool"}


def test_saving_refuses_a_state_that_would_not_load_back(tmp_path, monkeypatch):
    detector = fitted_detector("knn")  # a KD-tree
    narrower = skops_guard.SKOPS_ALLOWED_NODES - {("ObjectNode", "sklearn.neighbors._kd_tree.KDTree")}
    monkeypatch.setattr(skops_guard, "SKOPS_ALLOWED_NODES", narrower)
    with pytest.raises(AdscoreError, match="cannot save detector 'knn': its fitted state holds object types "
                                           r"adscore does not load back: sklearn.neighbors._kd_tree.KDTree \(via "
                                           r"ObjectNode\); choose other parameters"):
        pyod_ae_ext.save(detector, tmp_path / "knn.adscore")
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------
# crafted payloads: genuine (they run code elsewhere), refused here


@pytest.mark.parametrize("kind", CODE_RUNNING_KINDS)
def test_crafted_payload_runs_code_when_skops_trusts_what_it_lists(kind, tmp_path):
    # sanity check of the helpers: the payload is a real exploit, not just an odd type name
    marker = tmp_path / "marker"
    payload = malicious_skops_payload(kind, marker)
    skops.io.loads(payload, trusted=skops.io.get_untrusted_types(data=payload))
    assert marker.exists()


@pytest.mark.filterwarnings("ignore::UserWarning")  # scikit-learn: a Pipeline "from version pre-0.18"
@pytest.mark.parametrize("kind", OLD_RULE_KINDS)
def test_crafted_payload_passed_the_former_prefix_rule(kind, tmp_path):
    marker = tmp_path / "marker"
    payload = malicious_skops_payload(kind, marker)
    if kind == "numpy_function":  # numpy.load gets called on the path the file chose
        with pytest.raises(FileNotFoundError, match=str(marker)):
            load_with_old_prefix_rule(payload)
        return
    loaded = load_with_old_prefix_rule(payload)
    assert hasattr(loaded, "crafted_")
    assert marker.exists() == (kind in CODE_RUNNING_KINDS)


@pytest.mark.parametrize("load", [pyod_ae_ext.load, persistence.load_detector], ids=["api", "persistence"])
@pytest.mark.parametrize("kind", MALICIOUS_KINDS)
def test_crafted_payload_is_refused_before_skops_runs(kind, load, tmp_path, no_skops_loading):
    marker = tmp_path / "marker"
    path = write_malicious_model(tmp_path / "evil.adscore", kind, marker)
    with pytest.raises(ModelFileError) as error:
        load(path)
    assert str(error.value) == (f"{path} contains object types adscore does not load: {REFUSED_TYPE[kind]}; "
                                "only files saved by adscore from the registered PyOD detectors are accepted")
    assert not marker.exists()


def test_crafted_payload_is_refused_even_when_signed(tmp_path, no_skops_loading):
    # a key holder who signs a file they did not make: the allow-list still holds
    marker = tmp_path / "marker"
    path = write_malicious_model(tmp_path / "evil.adscore", "eval", marker, signing_key=KEY)
    assert persistence.read_metadata(path, signing_key=KEY)["signature_verified"]
    with pytest.raises(ModelFileError, match=r"builtins.eval \(via ConstructorFromReduceNode\)"):
        pyod_ae_ext.load(path, signing_key=KEY)
    assert not marker.exists()


def test_crafted_payload_in_an_ensemble_member_is_refused(tmp_path, no_skops_loading):
    marker = tmp_path / "marker"
    path = write_model(tmp_path / "ensemble.adscore", fitted_detector("ensemble"))
    payload = malicious_skops_payload("exec", marker)

    def swap(meta, tensors):
        tensors["member1.skops"] = torch.frombuffer(bytearray(payload), dtype=torch.uint8)
    rewrite_model(path, swap)
    with pytest.raises(ModelFileError, match=f"^{path}: ensemble member 'iforest' contains object types adscore "
                                             r"does not load: builtins.exec \(via ConstructorFromReduceNode\)"):
        pyod_ae_ext.load(path)
    assert not marker.exists()


@pytest.fixture(scope="module")
def latent_iforest_model(tmp_path_factory):
    """An autoencoder whose latent score is an Isolation Forest on its codes (a nested PyOD state)."""
    from pyod_ae_ext.plugins.autoencoder import AutoEncoder

    X = np.random.RandomState(0).normal(size=(120, 5))
    detector = AutoEncoder(latent_detector="iforest", n_members=1, epochs=2, random_state=0).fit(X)
    return write_model(tmp_path_factory.mktemp("latent") / "ae.adscore", detector)


def _with_latent_payload(source, target, payload: bytes):
    def swap(meta, tensors):
        tensors["latent.detector"] = torch.frombuffer(bytearray(payload), dtype=torch.uint8)
    return rewrite_model(source, swap, target=target)


def test_crafted_payload_as_a_latent_detector_is_refused(latent_iforest_model, tmp_path, no_skops_loading):
    marker = tmp_path / "marker"
    payload = malicious_skops_payload("exec", marker)
    path = _with_latent_payload(latent_iforest_model, tmp_path / "evil.adscore", payload)
    with pytest.raises(ModelFileError, match=f"^{path}: its latent detector 'iforest' contains object types adscore "
                                             r"does not load: builtins.exec \(via ConstructorFromReduceNode\)"):
        pyod_ae_ext.load(path)
    assert not marker.exists()


def test_a_latent_detector_of_another_class_or_width_is_refused(latent_iforest_model, tmp_path):
    from pyod.models.iforest import IForest
    from pyod.models.knn import KNN

    knn = skops.io.dumps(KNN().fit(np.random.RandomState(0).normal(size=(30, 8))))
    path = _with_latent_payload(latent_iforest_model, tmp_path / "knn.adscore", knn)
    with pytest.raises(ModelFileError, match="holds a pyod.models.knn.KNN where its metadata names pyod"):
        pyod_ae_ext.load(path)
    narrow = skops.io.dumps(IForest(n_estimators=5).fit(np.random.RandomState(0).normal(size=(30, 3))))
    path = _with_latent_payload(latent_iforest_model, tmp_path / "narrow.adscore", narrow)
    with pytest.raises(ModelFileError, match="its latent detector 'iforest' cannot score codes of width 8"):
        pyod_ae_ext.load(path)
    assert pyod_ae_ext.load(latent_iforest_model).latent_detector_.n_estimators == 100


@pytest.mark.parametrize("kind", MALFORMED_PAYLOAD_KINDS)
def test_malformed_payload_is_refused(kind, tmp_path):
    path = write_malformed_payload_model(tmp_path / "odd.adscore", kind)
    with pytest.raises(ModelFileError) as error:
        pyod_ae_ext.load(path)
    assert str(error.value).startswith(str(path))
    assert MALFORMED_PAYLOAD_KINDS[kind] in str(error.value)


# --------------------------------------------------------------------------
# hash-valid but inconsistent content


@pytest.mark.parametrize("kind", INCONSISTENT_KINDS)
def test_inconsistent_content_is_a_model_file_error(kind, tmp_path):
    path = write_inconsistent_model(tmp_path / "odd.adscore", kind)
    with pytest.raises(ModelFileError) as error:
        pyod_ae_ext.load(path)
    message = str(error.value)
    assert message.startswith(str(path)) and INCONSISTENT_KINDS[kind] in message, message
    assert message.endswith("refit and save the model again")


def test_inconsistent_metadata_is_refused_by_read_metadata(tmp_path):
    path = write_inconsistent_model(tmp_path / "odd.adscore", "threshold_string")
    with pytest.raises(ModelFileError, match="'threshold' must be a finite number"):
        persistence.read_metadata(path)


def test_tensor_names_with_the_hash_separator_are_refused(tmp_path):
    with pytest.raises(AdscoreError, match="must not contain '|'"):
        persistence.write_model_file(tmp_path / "x", {"format": "adscore-model"}, {"a|b": torch.zeros(1)})
    path = write_model(tmp_path / "toll.adscore", fitted_detector("toll"))
    meta, tensors = read_raw_model(path)
    tensors["net|x"] = torch.zeros(1)
    meta["content_sha256"] = persistence._content_hash(meta, tensors)
    path.write_bytes(save(tensors, metadata={"adscore": json.dumps(meta)}))
    with pytest.raises(ModelFileError, match="tensor names containing '|'"):
        pyod_ae_ext.load(path)


# --------------------------------------------------------------------------
# signing


@pytest.fixture
def toll():
    return fitted_detector("toll")


def test_signed_file_loads_with_its_key(toll, tmp_path):
    path = tmp_path / "toll.adscore"
    pyod_ae_ext.save(toll, path, signing_key=KEY)
    meta, _ = read_raw_model(path)
    assert len(meta["hmac_sha256"]) == 64
    loaded = pyod_ae_ext.load(path, signing_key=KEY)
    X = np.random.RandomState(3).normal(size=(7, 5))
    np.testing.assert_array_equal(loaded.decision_function(X), toll.decision_function(X))
    info = persistence.read_metadata(path, signing_key=KEY)
    assert info["signed"] and info["signature_verified"]
    assert "hmac_sha256" not in info and info["content_sha256"] == meta["content_sha256"]


def test_without_a_key_signed_and_unsigned_files_both_load(toll, tmp_path):
    signed, unsigned = tmp_path / "signed.adscore", tmp_path / "unsigned.adscore"
    pyod_ae_ext.save(toll, signed, signing_key=KEY)
    pyod_ae_ext.save(toll, unsigned)
    pyod_ae_ext.load(signed)
    pyod_ae_ext.load(unsigned)
    assert persistence.read_metadata(signed) | {"signed": None} == persistence.read_metadata(unsigned) | {"signed": None}
    assert persistence.read_metadata(signed)["signed"] and not persistence.read_metadata(signed)["signature_verified"]
    assert not persistence.read_metadata(unsigned)["signed"]


def test_str_and_bytes_keys_are_the_same_key(toll, tmp_path):
    path = tmp_path / "toll.adscore"
    pyod_ae_ext.save(toll, path, signing_key=KEY.decode())
    pyod_ae_ext.load(path, signing_key=KEY)


def test_unsigned_file_is_refused_when_a_key_is_set(toll, tmp_path):
    path = tmp_path / "toll.adscore"
    pyod_ae_ext.save(toll, path)
    expected = (f"{path} is not signed, but a signing key is configured (ADSCORE_SIGNING_KEY / --sign-key-file): "
                "it was saved without the key")
    for call in (pyod_ae_ext.load, persistence.load_detector, persistence.read_metadata):
        with pytest.raises(ModelFileError) as error:
            call(path, signing_key=KEY)
        assert str(error.value).startswith(expected)


def test_file_signed_with_another_key_is_refused(toll, tmp_path):
    path = tmp_path / "toll.adscore"
    pyod_ae_ext.save(toll, path, signing_key=OTHER_KEY)
    rewrite_model(path, sign_with=OTHER_KEY)  # re-signing with any other key does not help either
    for call in (pyod_ae_ext.load, persistence.read_metadata):
        with pytest.raises(ModelFileError, match=f"^{path}: signature does not match the configured key "
                                                 r"\(ADSCORE_SIGNING_KEY / --sign-key-file\)"):
            call(path, signing_key=KEY)


def test_signed_file_tampered_and_rehashed_is_refused(toll, tmp_path):
    path = tmp_path / "toll.adscore"
    pyod_ae_ext.save(toll, path, signing_key=KEY)

    def lower_threshold(meta, tensors):
        meta["threshold"] = -1e9  # every row an anomaly
    rewrite_model(path, lower_threshold)  # the content hash is valid again, the signature is not
    with pytest.raises(ModelFileError, match="signature does not match the configured key"):
        pyod_ae_ext.load(path, signing_key=KEY)
    assert pyod_ae_ext.load(path).threshold_ == -1e9  # without a key nothing is verified


def test_tampered_ensemble_member_breaks_the_one_signature(tmp_path):
    path = tmp_path / "ensemble.adscore"
    pyod_ae_ext.save(fitted_detector("ensemble"), path, signing_key=KEY)
    pyod_ae_ext.load(path, signing_key=KEY)

    def scale_member(meta, tensors):
        tensors["member0.scaler.scale"] = tensors["member0.scaler.scale"] * 2
    rewrite_model(path, scale_member)
    with pytest.raises(ModelFileError, match="signature does not match"):
        pyod_ae_ext.load(path, signing_key=KEY)


def test_malformed_signature_field_is_a_mismatch(toll, tmp_path):
    path = tmp_path / "toll.adscore"
    pyod_ae_ext.save(toll, path, signing_key=KEY)
    for value in (12345, "", "\udcff" * 64, None):
        def set_signature(meta, tensors, value=value):
            meta["hmac_sha256"] = value
        rewrite_model(path, set_signature)
        expected = "is not signed" if value is None else "signature does not match"
        with pytest.raises(ModelFileError, match=expected):
            pyod_ae_ext.load(path, signing_key=KEY)


def test_key_from_the_environment(toll, tmp_path, monkeypatch):
    unsigned = tmp_path / "unsigned.adscore"
    pyod_ae_ext.save(toll, unsigned)
    monkeypatch.setenv("ADSCORE_SIGNING_KEY", KEY.decode())
    path = tmp_path / "toll.adscore"
    toll.save(path)  # signed with the environment's key
    assert type(toll).load(path) is not None
    assert persistence.read_metadata(path)["signature_verified"]
    with pytest.raises(ModelFileError, match="is not signed, but a signing key is configured"):
        pyod_ae_ext.load(unsigned)
    with pytest.raises(ModelFileError, match="signature does not match"):
        pyod_ae_ext.load(path, signing_key=OTHER_KEY)  # an explicit key wins over the environment
    monkeypatch.delenv("ADSCORE_SIGNING_KEY")
    pyod_ae_ext.load(unsigned)


def test_ensemble_save_and_load_methods_sign(tmp_path):
    from pyod_ae_ext.ensemble import Ensemble

    path = tmp_path / "ensemble.adscore"
    fitted_detector("ensemble").save(path, signing_key=KEY)
    assert isinstance(Ensemble.load(path, signing_key=KEY), Ensemble)
    with pytest.raises(ModelFileError, match="signature does not match"):
        Ensemble.load(path, signing_key=OTHER_KEY)


@pytest.mark.parametrize("key", [b"short", "", b"x" * 15])
def test_short_keys_are_refused(key, toll, tmp_path):
    with pytest.raises(AdscoreError, match=r"a signing key must be at least 16 bytes \(generate one with"):
        pyod_ae_ext.save(toll, tmp_path / "toll.adscore", signing_key=key)
    assert not list(tmp_path.iterdir())


def test_short_or_empty_key_in_the_environment_is_refused(toll, tmp_path, monkeypatch):
    path = tmp_path / "toll.adscore"
    pyod_ae_ext.save(toll, path)
    for value in ("", "tooshort"):
        monkeypatch.setenv("ADSCORE_SIGNING_KEY", value)
        with pytest.raises(AdscoreError, match=rf"\$ADSCORE_SIGNING_KEY is {len(value)} bytes long; .*unset it"):
            pyod_ae_ext.load(path)


def test_key_of_the_wrong_type_is_refused(toll, tmp_path):
    with pytest.raises(AdscoreError, match="signing_key must be bytes or str, got int"):
        pyod_ae_ext.save(toll, tmp_path / "toll.adscore", signing_key=1234567890123456)


def test_read_signing_key_file(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY + b"\n")
    assert persistence.read_signing_key_file(key_file) == KEY
    key_file.write_bytes(KEY + b"\r\n")
    assert persistence.read_signing_key_file(key_file) == KEY
    key_file.write_bytes(KEY + b"\n\n")  # only one newline is stripped: the key is what the file holds
    assert persistence.read_signing_key_file(key_file) == KEY + b"\n"
    key_file.write_bytes(b"\n")
    with pytest.raises(AdscoreError, match=f"signing key file {key_file} is empty; write a secret of at least 16 "
                                           "bytes into it"):
        persistence.read_signing_key_file(key_file)
    key_file.write_bytes(b"short\n")
    with pytest.raises(AdscoreError, match=f"signing key file {key_file} is 5 bytes long"):
        persistence.read_signing_key_file(key_file)
    for unreadable in (tmp_path / "missing", tmp_path):
        with pytest.raises(AdscoreError, match=f"cannot read signing key file {unreadable}: .*check the path"):
            persistence.read_signing_key_file(unreadable)


def test_key_file_and_save_agree(toll, tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(KEY.decode() + "\n")
    path = tmp_path / "toll.adscore"
    pyod_ae_ext.save(toll, path, signing_key=persistence.read_signing_key_file(key_file))
    pyod_ae_ext.load(path, signing_key=KEY)
