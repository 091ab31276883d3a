"""Ensemble: combination rules against hand-computed values, members, seeds, failures, persistence."""
import sys

import joblib
import numpy as np
import pytest
from pyod.models.base import BaseDetector

import pyod_ae_ext
from pyod_ae_ext import hookimpl
from pyod_ae_ext import registry as registry_module
from pyod_ae_ext.ensemble import (Ensemble, apply_normalizer, bucket_assignment, combine_scores,
                                  default_n_buckets, fit_normalizer)
from pyod_ae_ext.errors import AdscoreError, ParameterError, TrainingError
from pyod_ae_ext.persistence import read_model_file

FAST = {"toll": {"epochs": 3, "hidden_dims": [8], "n_members": 1}, "iforest": {"n_estimators": 20}}

S = np.array([[1.0, 4.0, 2.0, 0.0],
              [3.0, 0.0, 5.0, 1.0],
              [2.0, 2.0, 2.0, 8.0]])


# ---- pure combination rules --------------------------------------------------


def test_mean_max_median_weighted_by_hand():
    np.testing.assert_allclose(combine_scores(S, "mean"), [7 / 4, 9 / 4, 14 / 4])
    np.testing.assert_allclose(combine_scores(S, "max"), [4, 5, 8])
    np.testing.assert_allclose(combine_scores(S, "median"), [1.5, 2.0, 2.0])
    # (1*1 + 4*0 + 2*1 + 0*2) / 4, (3 + 0 + 5 + 2) / 4, (2 + 0 + 2 + 16) / 4
    np.testing.assert_allclose(combine_scores(S, "weighted", weights=[1, 0, 1, 2]), [3 / 4, 10 / 4, 20 / 4])


def test_aom_and_moa_by_hand():
    buckets = [[0, 1], [2, 3]]
    # AOM: mean of bucket maxima; MOA: max of bucket means
    np.testing.assert_allclose(combine_scores(S, "aom", buckets=buckets), [(4 + 2) / 2, (3 + 5) / 2, (2 + 8) / 2])
    np.testing.assert_allclose(combine_scores(S, "moa", buckets=buckets), [2.5, 3.0, 5.0])
    uneven = [[3], [0, 2, 1]]
    np.testing.assert_allclose(combine_scores(S, "aom", buckets=uneven), [(0 + 4) / 2, (1 + 5) / 2, (8 + 2) / 2])
    np.testing.assert_allclose(combine_scores(S, "moa", buckets=uneven), [7 / 3, 8 / 3, 8.0])


def test_buckets_are_a_seeded_partition():
    for m, k in ((3, 2), (7, 3), (5, 5), (4, 1)):
        buckets = bucket_assignment(m, k, random_state=3)
        assert sorted(i for b in buckets for i in b) == list(range(m))
        sizes = [len(b) for b in buckets]
        assert len(sizes) == k and max(sizes) - min(sizes) <= 1
        assert buckets == bucket_assignment(m, k, random_state=3)
    assert len({str(bucket_assignment(6, 2, random_state=s)) for s in range(20)}) > 1  # seeds matter
    assert default_n_buckets(3) == 2 and default_n_buckets(20) == 5 and default_n_buckets(1) == 1


def test_same_as_pyod_combination_where_it_applies():
    pytest.importorskip("combo")
    from pyod.models import combination

    rng = np.random.RandomState(0)
    scores = rng.normal(size=(30, 6))
    np.testing.assert_allclose(combine_scores(scores, "mean"), combination.average(scores))
    np.testing.assert_allclose(combine_scores(scores, "max"), combination.maximization(scores))
    np.testing.assert_allclose(combine_scores(scores, "median"), combination.median(scores))
    for method, reference in (("aom", combination.aom), ("moa", combination.moa)):
        buckets = bucket_assignment(6, 3, random_state=4)
        np.testing.assert_allclose(combine_scores(scores, method, buckets=buckets),
                                   reference(scores, n_buckets=3, random_state=4))


def test_normalizers_by_hand():
    train = np.array([[1.0, 10.0], [2.0, 10.0], [3.0, 10.0], [4.0, 10.0]])
    new = np.array([[0.0, 9.0], [2.5, 10.0], [9.0, 11.0]])
    z = fit_normalizer(train, "zscore")
    np.testing.assert_allclose(apply_normalizer(new, "zscore", z)[:, 0], (new[:, 0] - 2.5) / np.sqrt(1.25))
    np.testing.assert_allclose(apply_normalizer(new, "zscore", z)[:, 1], [-1, 0, 1])  # constant: scale 1
    mm = fit_normalizer(train, "minmax")
    np.testing.assert_allclose(apply_normalizer(new, "minmax", mm)[:, 0], [-1 / 3, 0.5, 8 / 3])
    rank = fit_normalizer(train, "rank")
    np.testing.assert_allclose(apply_normalizer(new, "rank", rank), [[0, 0], [0.5, 1], [1, 1]])
    np.testing.assert_allclose(apply_normalizer(train, "rank", rank)[:, 0], [0.25, 0.5, 0.75, 1.0])


# ---- the detector -------------------------------------------------------------


@pytest.mark.parametrize("normalize,combine", [("zscore", "mean"), ("rank", "max"), ("minmax", "aom"),
                                               ("zscore", "moa"), ("rank", "median")])
def test_scores_are_the_combination_of_member_scores(blobs, normalize, combine):
    train, test = blobs
    ens = Ensemble(("toll", "iforest", "ecod"), FAST, normalize=normalize, combine=combine,
                   random_state=0).fit(train)
    raw_train = np.column_stack([m.decision_scores_ for m in ens.members_])
    raw_test = np.column_stack([m.decision_function(test) for m in ens.members_])
    state = fit_normalizer(raw_train, normalize)
    for raw, got in ((raw_train, ens.decision_scores_), (raw_test, ens.decision_function(test))):
        expected = combine_scores(apply_normalizer(raw, normalize, state), combine, buckets=ens.buckets_)
        np.testing.assert_allclose(got, expected)
    assert ens.member_names_ == ["toll", "iforest", "ecod"]
    assert ens.labels_.mean() == pytest.approx(0.1, abs=0.01)
    if combine in ("aom", "moa"):
        assert len(ens.buckets_) == 2


def test_weighted_mean(blobs):
    train, test = blobs
    ens = Ensemble(("toll", "iforest"), FAST, combine="weighted", weights=[3, 1], random_state=0).fit(train)
    member = ens.member_scores(test)
    np.testing.assert_allclose(ens.decision_function(test), (3 * member[:, 0] + member[:, 1]) / 4)


def test_members_get_their_own_seeds_unless_given(blobs):
    train, _ = blobs
    ens = Ensemble(("toll", "iforest", "ecod"), FAST, random_state=5).fit(train)
    seeds = [ens.members_[0].random_state, ens.members_[1].random_state]
    assert all(isinstance(s, int) for s in seeds) and seeds[0] != seeds[1]
    assert ens.members_[0].contamination == 0.1
    again = Ensemble(("toll", "iforest", "ecod"), FAST, random_state=5).fit(train)
    assert [again.members_[0].random_state, again.members_[1].random_state] == seeds
    other = Ensemble(("toll", "iforest"), FAST, random_state=6).fit(train)
    assert other.members_[0].random_state != seeds[0]
    pinned = Ensemble(("toll", "iforest"), {**FAST, "toll": {**FAST["toll"], "random_state": 42}},
                      random_state=5).fit(train)
    assert pinned.members_[0].random_state == 42


def test_parallel_fit_matches_sequential(blobs):
    # joblib's default process pool costs seconds to start on a busy machine; the
    # threading backend runs the same parallel code path (one torch member, so its
    # seeded global RNG is not shared). The process pool was checked by hand.
    train, test = blobs
    one = Ensemble(("toll", "iforest"), FAST, random_state=0, n_jobs=1).fit(train)
    with joblib.parallel_config(backend="threading"):
        two = Ensemble(("toll", "iforest"), FAST, random_state=0, n_jobs=2).fit(train)
    np.testing.assert_array_equal(one.decision_function(test), two.decision_function(test))


def test_aliases_and_alias_keyed_params(blobs):
    train, _ = blobs
    ens = Ensemble(("toll", "isolation-forest"), {"isolation-forest": {"n_estimators": 7}, "toll": FAST["toll"]},
                   random_state=0).fit(train)
    assert ens.member_names_ == ["toll", "iforest"] and len(ens.members_[1].estimators_) == 7


@pytest.mark.parametrize("params,fragment", [
    ({"detectors": ()}, "non-empty"),
    ({"detectors": "toll"}, "non-empty"),
    ({"detectors": ("toll", "toll")}, "more than once"),
    ({"detectors": ("toll", "tol")}, "unknown detector 'tol'"),
    ({"detector_params": {"toll": {"lamda": 1}}}, "'lamda' for detector 'toll'"),
    ({"detector_params": {"toll": {"lam": -1}}}, "ensemble member 'toll': lam must be >= 0"),
    ({"detector_params": {"knn": {"n_neighbors": 3}}}, "not a member"),
    ({"combine": "sum"}, "combine must be one of"),
    ({"normalize": "robust"}, "normalize must be one of"),
    ({"combine": "weighted"}, "needs weights"),
    ({"combine": "weighted", "weights": [1, 2]}, "one number per member"),
    ({"combine": "weighted", "weights": [0, 0, 0]}, "not all be zero"),
    ({"combine": "weighted", "weights": [1, -1, 1]}, "weight must be >= 0"),
    ({"weights": [1, 1, 1]}, "only with combine='weighted'"),
    ({"combine": "aom", "n_buckets": 4}, "n_buckets must be <= 3"),
    ({"contamination": 0.7}, "contamination"),
    ({"n_jobs": 0}, "n_jobs"),
])
def test_bad_parameters_are_named(blobs, params, fragment):
    train, _ = blobs
    with pytest.raises(AdscoreError) as info:
        Ensemble(**params).fit(train)
    assert fragment in str(info.value)


class Broken(BaseDetector):
    def __init__(self, contamination=0.1):
        self.contamination = contamination

    def fit(self, X, y=None):
        raise RuntimeError("disk on fire")

    def decision_function(self, X):
        raise AssertionError


class Shouty(Broken):
    def fit(self, X, y=None):
        raise ValueError("n_neighbors must be positive")


@hookimpl
def register_detectors(register):
    register("broken", Broken, "always fails")
    register("shouty", Shouty, "fails with a ValueError")


def test_a_failing_member_names_itself(blobs, monkeypatch):
    train, _ = blobs
    registry = registry_module.Registry()
    registry.register_plugin(sys.modules[__name__], "broken-plugin")
    monkeypatch.setattr(registry_module, "_registry", registry)
    with pytest.raises(TrainingError, match="ensemble member 'broken' failed: RuntimeError: disk on fire"):
        Ensemble(("iforest", "broken")).fit(train)
    with pytest.raises(ParameterError, match="ensemble member 'shouty' failed: n_neighbors must be positive"):
        Ensemble(("iforest", "shouty")).fit(train)
    with joblib.parallel_config(backend="threading"), pytest.raises(TrainingError, match="'broken' failed"):
        Ensemble(("iforest", "broken"), n_jobs=2).fit(train)


def test_one_safe_file_with_prefixed_member_tensors(blobs, tmp_path):
    train, test = blobs
    ens = Ensemble(("toll", "iforest", "ecod"), FAST, combine="moa", random_state=1).fit(train)
    path = tmp_path / "ens.adscore"
    pyod_ae_ext.save(ens, path)
    meta, tensors = read_model_file(path)
    assert meta["detector"] == "ensemble"
    assert [m["detector"] for m in meta["state"]["members"]] == ["toll", "iforest", "ecod"]
    assert any(k.startswith("member0.net.") for k in tensors) and "member1.skops" in tensors
    loaded = pyod_ae_ext.load(path)
    assert loaded.buckets_ == ens.buckets_
    np.testing.assert_array_equal(loaded.decision_function(test), ens.decision_function(test))
    np.testing.assert_array_equal(loaded.member_scores(test), ens.member_scores(test))
