"""The backbone seam: every family builds its layers through the detector's backbone."""
import numpy as np
import pytest
from torch import nn

import pyod_ae_ext
from pyod_ae_ext.backbones import BACKBONES, MLPBackbone, get_backbone, register_backbone
from pyod_ae_ext.errors import ParameterError

FAMILIES = ["ae", "toll", "rdae-l1", "rdae-l21", "vae", "ksparse-ae", "deep-ocsvm", "deep-svdd"]


class _Marker(nn.Identity):
    """An identity layer a test can find in a built network."""


class MarkedMLP(MLPBackbone):
    """The MLP backbone with a marker layer in front of every encoder and decoder."""

    name = "marked-mlp"

    def encoder(self, detector, n_features, out_dim, bias=True):
        return nn.Sequential(_Marker(), *super().encoder(detector, n_features, out_dim, bias))

    def decoder(self, detector, in_dim, n_features, n_outputs=1, bias=True):
        return nn.Sequential(_Marker(), *super().decoder(detector, in_dim, n_features, n_outputs, bias))


@pytest.fixture
def marked_backbone():
    register_backbone(MarkedMLP())
    yield "marked-mlp"
    BACKBONES.pop("marked-mlp")


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_builds_its_layers_through_the_backbone(name, marked_backbone):
    X = np.random.default_rng(0).normal(size=(64, 5))
    params = {"tied": False} if name == "ksparse-ae" else {}
    detector = pyod_ae_ext.make_detector(name, backbone=marked_backbone, epochs=2, random_state=0, n_members=1,
                                         latent_knn_weight=0.0, **params).fit(X)
    markers = [m for m in detector.net_.modules() if isinstance(m, _Marker)]
    assert markers, f"{name} did not use the backbone's layers"
    plain = pyod_ae_ext.make_detector(name, epochs=2, random_state=0, n_members=1, latent_knn_weight=0.0,
                                      **params).fit(X)
    # the marker is an identity and draws no random numbers: same scores as the plain MLP
    np.testing.assert_allclose(detector.decision_scores_, plain.decision_scores_, rtol=1e-5, atol=1e-6)


def test_unknown_backbone_is_refused_with_the_choices():
    with pytest.raises(ParameterError, match=r"backbone must be one of \[.*'mlp'.*\], got 'transformer'"):
        pyod_ae_ext.make_detector("ae", backbone="transformer").fit(np.zeros((10, 3)))


def test_input_shape_with_the_mlp_backbone_is_refused():
    with pytest.raises(ParameterError, match="input_shape"):
        pyod_ae_ext.make_detector("ae", input_shape=(1, 2, 2)).fit(np.random.default_rng(0).normal(size=(10, 4)))


@pytest.mark.parametrize("bad", [(0, 2), "28x28", (), (2.5,), (True, 3)])
def test_malformed_input_shape_is_refused(bad):
    with pytest.raises(ParameterError, match="input_shape must be None or a sequence of positive integers"):
        pyod_ae_ext.make_detector("ae", input_shape=bad).fit(np.zeros((10, 4)))


def test_tied_ksparse_needs_the_mlp_backbone(marked_backbone):
    with pytest.raises(ParameterError, match="tied=True .* backbone='mlp'"):
        pyod_ae_ext.make_detector("ksparse-ae", backbone=marked_backbone).fit(np.zeros((10, 4)))


def test_register_backbone_checks_the_contract():
    with pytest.raises(TypeError, match="'decoder'"):
        register_backbone(type("Half", (), {"name": "half", "check": None, "encoder": None})())
    assert get_backbone("mlp") is BACKBONES["mlp"]
