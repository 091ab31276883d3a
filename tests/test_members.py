"""Members: many networks of one family in one detector (pyod_ae_ext.members)."""
import numpy as np
import pytest
import torch

import pyod_ae_ext
from pyod_ae_ext.errors import InconsistentModelError, ModelFileError, ParameterError, TrainingError
from pyod_ae_ext.plugins.autoencoder import AutoEncoder
from pyod_ae_ext.training import Callback
from pyod_ae_ext.persistence import read_model_file, write_model_file
from pyod_ae_ext.testing import check_detector

FAMILIES = ["ae", "toll", "rdae-l1", "rdae-l21", "vae", "ksparse-ae", "deep-ocsvm", "deep-svdd"]
# Families whose loss draws no random numbers by default, so a member trained in the
# batch must equal the member trained alone.
DETERMINISTIC_LOSS = ["ae", "toll", "rdae-l1", "rdae-l21", "ksparse-ae", "deep-ocsvm", "deep-svdd"]


@pytest.fixture(scope="module")
def X():
    rng = np.random.default_rng(0)
    return np.vstack([rng.normal(size=(200, 6)), rng.normal(4, 1, size=(10, 6))])


def _fit(name, X, **params):
    return pyod_ae_ext.make_detector(name, **{"epochs": 3, "random_state": 0, "n_members": 1,
                                              "member_subsample": None, **params}).fit(X)


@pytest.mark.parametrize("name", DETERMINISTIC_LOSS)
def test_a_member_trained_in_the_batch_is_the_member_trained_alone(name, X, capsys):
    detector = _fit(name, X, n_members=3, verbose=True)
    assert "training together" in capsys.readouterr().err
    for k, member in enumerate(detector.members_):
        alone = _fit(name, X, random_state=detector.member_params_[k]["random_state"])
        np.testing.assert_allclose(member.decision_function(X), alone.decision_function(X), rtol=1e-4, atol=1e-5)
        assert member.history_["loss"] == pytest.approx(alone.history_["loss"], rel=1e-4)


def test_members_differ_and_the_score_is_the_mean_of_standardised_member_scores(X):
    detector = _fit("ae", X, n_members=3)
    scores = np.column_stack([m.decision_function(X) for m in detector.members_])
    assert not np.allclose(scores[:, 0], scores[:, 1])  # own seeds: different networks
    training = np.column_stack([m.decision_scores_ for m in detector.members_])
    standardised = (scores - training.mean(axis=0)) / training.std(axis=0)
    np.testing.assert_allclose(detector.decision_function(X), standardised.mean(axis=1), rtol=1e-6, atol=1e-9)
    # training rows are scored as the members scored them when fitting (own code not a neighbour)
    expected = ((training - training.mean(axis=0)) / training.std(axis=0)).mean(axis=1)
    np.testing.assert_allclose(detector.decision_scores_, expected, rtol=1e-9, atol=1e-12)


def test_training_scores_of_rows_outside_a_members_subsample_are_its_new_data_scores(X):
    detector = _fit("ae", X, n_members=2, member_subsample=0.5, latent_knn_weight=0.0)
    # without the latent term a member scores its training rows as new data: all rows alike
    np.testing.assert_allclose(detector.decision_scores_, detector.decision_function(X), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_fits_members_and_scores_rows_independently(name, X):
    detector = _fit(name, X, n_members=2, member_subsample=0.5)
    assert len(detector.members_) == 2 and detector.member_sample_sizes_ == [105, 105]
    full = detector.decision_function(X)
    np.testing.assert_allclose(detector.decision_function(X[:7]), full[:7], rtol=1e-6, atol=1e-9)
    again = _fit(name, X, n_members=2, member_subsample=0.5)
    np.testing.assert_array_equal(again.decision_function(X), full)
    assert full[-10:].mean() > full[:200].mean()  # the shifted rows score higher


def test_subsamples_are_drawn_per_member(X):
    detector = _fit("ae", X, n_members=3, member_subsample=50)
    assert detector.member_sample_sizes_ == [50, 50, 50]
    firsts = [m.decision_scores_[:5].tolist() for m in detector.members_]
    assert firsts[0] != firsts[1]


def test_member_params_make_a_hyperparameter_ensemble(X, capsys):
    detector = _fit("ae", X, n_members=3, verbose=True,
                    member_params=[{"latent_dim": 2}, {"latent_dim": 2}, {"latent_dim": 4, "hidden_dims": (8,)}])
    err = capsys.readouterr().err
    assert "members 1, 2 of 3: training together" in err and "member 3/3: training alone" in err
    assert [m.latent_dim for m in detector.members_] == [2, 2, 4]
    assert detector.members_[2].hidden_dims == (8,)
    assert detector.member_params_[2]["latent_dim"] == 4


@pytest.mark.parametrize("params, message", [
    ({"n_members": 0}, "n_members"),
    ({"n_members": 2, "member_subsample": 1.5}, "member_subsample"),
    ({"n_members": 2, "member_subsample": 1}, "member_subsample"),
    ({"n_members": 2, "member_params": [{}]}, "list of 2 dicts"),
    ({"n_members": 2, "member_params": [{}, {"random_state": 3}]}, "'random_state'"),
    ({"n_members": 2, "member_params": [{}, {"latent_dim": 0}]}, r"member_params\[1\]: latent_dim"),
])
def test_bad_member_parameters_are_refused_before_fitting(params, message):
    with pytest.raises(ParameterError, match=message):
        pyod_ae_ext.make_detector("ae", **params).fit(np.zeros((3, 2)))


def test_explanations_add_up_over_members(X):
    detector = _fit("ae", X, n_members=2, latent_knn_weight=0.0)
    contributions = detector.feature_contributions(X[:20])
    np.testing.assert_allclose(contributions.sum(axis=1), detector.family_score(X[:20]), rtol=1e-5)
    spreads = detector.member_standardisers_[:, 1]
    expected = np.mean([m.decision_function(X[:20]) / s for m, s in zip(detector.members_, spreads)], axis=0)
    np.testing.assert_allclose(detector.family_score(X[:20]), expected, rtol=1e-6)


def test_rdae_members_keep_their_own_decomposition(X):
    detector = _fit("rdae-l21", X, n_members=2)
    assert not hasattr(detector, "S_")
    with pytest.raises(AttributeError, match=r"members_\[k\]\.L_\); n_members=1"):
        detector.L_
    for member in detector.members_:
        np.testing.assert_allclose(member.L_ + member.S_, X)


def test_save_and_load_give_the_same_scores(tmp_path, X):
    detector = _fit("toll", X, n_members=3, member_subsample=0.8)
    path = tmp_path / "members.adscore"
    detector.save(path)
    loaded = pyod_ae_ext.load(path)
    np.testing.assert_array_equal(loaded.decision_function(X), detector.decision_function(X))
    assert loaded.member_params_ == detector.member_params_
    assert loaded.member_sample_sizes_ == detector.member_sample_sizes_


def test_a_member_that_is_not_the_detector_is_refused(tmp_path, X):
    detector = _fit("ae", X, n_members=2)
    path = tmp_path / "members.adscore"
    detector.save(path)
    meta, tensors = read_model_file(path)
    meta["state"]["members"][1]["params"]["latent_dim"] = 3  # a member the detector would not build
    write_model_file(path, meta, tensors)
    with pytest.raises(ModelFileError, match="member 2"):
        pyod_ae_ext.load(path)


def test_single_network_methods_name_the_members(X):
    detector = _fit("vae", X, n_members=2)
    with pytest.raises(ParameterError, match="members_"):
        detector.network_input(X)


def test_refitting_with_one_network_forgets_the_members(X):
    detector = _fit("ae", X, n_members=2)
    detector.set_params(n_members=1).fit(X)
    assert not hasattr(detector, "members_")
    np.testing.assert_array_equal(detector.decision_function(X), _fit("ae", X).decision_function(X))


@pytest.mark.parametrize("name", [*FAMILIES, "vrae"])
def test_every_family_with_members_passes_the_contract_kit(name):
    """The contract suite (tests/test_contract.py) runs every family with one network; here with two."""
    check_detector(pyod_ae_ext.make_detector(name, n_members=2, member_subsample=0.8, epochs=2, random_state=0))


def test_inconsistent_standardisers_are_refused():
    from pyod_ae_ext.members import restore_members

    detector = pyod_ae_ext.make_detector("ae", n_members=2)
    with pytest.raises(InconsistentModelError, match="members"):
        restore_members(detector, {"n_features_in": 3, "members": [], "member_params": [],
                                   "member_sample_sizes": []}, {})


class _StopAfterSeedEpochs(Callback):
    """Stops a member after 1-3 epochs, depending on its seed: members of one batch stop at different times."""

    batch_safe = True

    def __init__(self, epochs):
        self.epochs = epochs

    def on_epoch_end(self, loop, epoch, logs):
        if epoch + 1 == self.epochs:
            loop.stop_training = True


class _EarlyStoppingAE(AutoEncoder):
    def training_callbacks(self, X):
        return [_StopAfterSeedEpochs(1 + self.random_state % 3)]


def test_a_member_stopped_by_its_callback_keeps_its_weights_while_the_batch_trains_on(X, capsys):
    params = {"epochs": 5, "member_subsample": None, "latent_knn_weight": 0.0}
    detector = _EarlyStoppingAE(**params, n_members=4, random_state=1, verbose=True).fit(X)
    assert "training together" in capsys.readouterr().err
    lengths = [len(m.history_["loss"]) for m in detector.members_]
    assert len(set(lengths)) > 1 and max(lengths) <= 3
    for member in detector.members_:
        alone = _EarlyStoppingAE(**params, n_members=1, random_state=member.random_state).fit(X)
        assert member.history_["loss"] == pytest.approx(alone.history_["loss"], rel=1e-4)
        np.testing.assert_allclose(member.decision_function(X), alone.decision_function(X), rtol=1e-4, atol=1e-5)


class _GrowingRows(Callback):
    batch_safe = True  # wrongly: members' row counts drift apart

    def on_epoch_end(self, loop, epoch, logs):
        loop.train = torch.cat([loop.train, loop.train[:loop.detector.random_state % 2]])


class _GrowingAE(AutoEncoder):
    def training_callbacks(self, X):
        return [_GrowingRows()]


def test_a_callback_that_breaks_the_stacked_shape_is_a_clear_error(X):
    detector = _GrowingAE(epochs=3, n_members=4, member_subsample=None, random_state=1)
    seeds = np.random.RandomState(1).randint(np.iinfo(np.int32).max, size=4)  # as fit_members draws them
    assert len(set(seeds % 2)) == 2
    with pytest.raises(TrainingError, match="batch_safe"):
        detector.fit(X)
