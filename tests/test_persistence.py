"""The safe model format: integrity, foreign files, atomic writes, no pickle."""
import json
import os
import pickle
import struct

import numpy as np
import pytest

import pyod_ae_ext
from pyod_ae_ext import outputs, skops_guard
from pyod_ae_ext.errors import ModelFileError
from pyod_ae_ext.plugins.toll import Toll


@pytest.fixture
def saved(blobs, tmp_path):
    detector = Toll(epochs=2, random_state=0, n_members=1).fit(blobs[0])
    path = tmp_path / "toll.adscore"
    detector.save(path)
    return detector, path


def test_file_is_safetensors_with_json_metadata(saved):
    detector, path = saved
    data = path.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_len])
    meta = json.loads(header["__metadata__"]["adscore"])
    assert meta["detector"] == "toll" and meta["params"]["lam"] == 1.0
    assert set(meta["versions"]) >= {"pyod_ae_ext", "torch"}
    assert len(meta["content_sha256"]) == 64
    assert "scaler.mean" in header and "decision_scores" in header
    assert Toll.load(path).get_params() == detector.get_params()


def test_truncated_file(saved):
    _, path = saved
    data = path.read_bytes()
    for cut in (4, 100, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(ModelFileError):
            pyod_ae_ext.load(path)


def test_tampered_tensor_fails_the_hash(saved):
    _, path = saved
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="integrity check"):
        pyod_ae_ext.load(path)


def test_tampered_metadata_fails_the_hash(saved):
    _, path = saved
    data = path.read_bytes()
    tampered = data.replace(b'\\"lam\\": 1.0', b'\\"lam\\": 9.0')
    assert tampered != data
    path.write_bytes(tampered)
    with pytest.raises(ModelFileError, match="integrity check"):
        pyod_ae_ext.load(path)


def test_foreign_files_are_rejected(tmp_path, blobs):
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps({"not": "a model"}))
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    from safetensors.numpy import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": np.zeros(3, dtype=np.float32)}, str(other))
    for path in (pickled, text, other, tmp_path / "missing.adscore"):
        with pytest.raises(ModelFileError, match="not an adscore model|does not exist"):
            pyod_ae_ext.load(path)


def test_wrong_class_on_load(saved):
    _, path = saved
    from pyod_ae_ext.plugins.autoencoder import AutoEncoder

    with pytest.raises(ModelFileError, match="not a AutoEncoder"):
        AutoEncoder.load(path)


def test_interrupted_save_keeps_the_old_file(saved, monkeypatch):
    detector, path = saved
    before = path.read_bytes()

    def explode(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(outputs.os, "replace", explode)
    with pytest.raises(KeyboardInterrupt):
        detector.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_loading_never_unpickles(saved, monkeypatch):
    _, path = saved

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used while loading")

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    pyod_ae_ext.load(path)


def test_pyod_baseline_model_rejects_untrusted_types(blobs, tmp_path, monkeypatch):
    detector = pyod_ae_ext.make_detector("iforest", random_state=0, n_estimators=5).fit(blobs[0])
    path = tmp_path / "forest.adscore"
    pyod_ae_ext.save(detector, path)
    narrower = skops_guard.SKOPS_ALLOWED_NODES - {("ObjectNode", "sklearn.ensemble._iforest.IsolationForest")}
    monkeypatch.setattr(skops_guard, "SKOPS_ALLOWED_NODES", narrower)
    with pytest.raises(ModelFileError, match="object types adscore does not load: "
                                             r"sklearn.ensemble._iforest.IsolationForest \(via ObjectNode\)"):
        pyod_ae_ext.load(path)


def test_unfitted_and_unregistered_detectors_cannot_be_saved(tmp_path):
    with pytest.raises(pyod_ae_ext.AdscoreError, match="unfitted"):
        pyod_ae_ext.save(Toll(), tmp_path / "x.adscore")
    from pyod.models.abod import ABOD

    with pytest.raises(pyod_ae_ext.AdscoreError, match="registered"):
        pyod_ae_ext.save(ABOD(), tmp_path / "x.adscore")
    assert not os.listdir(tmp_path)


def test_saved_files_get_the_usual_permissions(saved):
    _, path = saved
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


@pytest.mark.parametrize("params, n_features", [({"batch_norm": True}, 6),
                                                ({"backbone": "conv", "batch_norm": True, "hidden_dims": (4, 8)}, 64)])
def test_batch_norm_statistics_survive_loading(tmp_path, params, n_features):
    """Loading runs the network once (the latent reference's width check): in eval mode, so that
    BatchNorm's running statistics, and so the scores, stay those of the fit."""
    X = np.random.default_rng(0).uniform(size=(80, n_features))
    detector = Toll(epochs=2, random_state=0, n_members=1, **params).fit(X)
    detector.save(tmp_path / "bn.adscore")
    np.testing.assert_array_equal(pyod_ae_ext.load(tmp_path / "bn.adscore").decision_function(X),
                                  detector.decision_function(X))


def test_a_conv_model_saved_before_latent_space_existed_keeps_its_code_space_score(tmp_path):
    """Files written before ``latent_space`` hold no such parameter; their conv models measured
    codes, which "auto" would now read as features. Loading must keep them on codes."""
    from model_payloads import rewrite_model

    images = np.random.RandomState(0).uniform(0, 255, size=(60, 64))
    detector = Toll(backbone="conv", epochs=1, random_state=0, latent_space="code").fit(images)
    path = tmp_path / "before.adscore"
    detector.save(path)
    rewrite_model(path, lambda meta, tensors: meta["params"].pop("latent_space"))
    loaded = pyod_ae_ext.load(path)
    assert loaded.latent_space == "code" and loaded.latent_reference_.shape == (60, detector.latent_dim)
    np.testing.assert_array_equal(loaded.decision_function(images), detector.decision_function(images))

    features = Toll(backbone="conv", epochs=1, random_state=0).fit(images)
    features.save(path)
    assert pyod_ae_ext.load(path).latent_reference_.shape == (60, 128)
    rewrite_model(path, lambda meta, tensors: meta["params"].pop("latent_space"))
    with pytest.raises(ModelFileError, match="'latent.reference' has points of width 128, the network makes code"):
        pyod_ae_ext.load(path)
