"""PyOD and scikit-learn habits (issue 13): parameter names, aliases, thresholders, metadata."""
import warnings

import numpy as np
import pytest
from helpers import assert_clean_error, fast_detector
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import pyod_ae_ext
from pyod_ae_ext.cli import cli
from pyod_ae_ext.errors import ModelFileError
from pyod_ae_ext.persistence import load_detector, read_metadata, read_model_file, write_model_file
from pyod_ae_ext.plugins.vae import VAE

SMALL = dict(hidden_dims=(8,), latent_dim=2, epochs=2, random_state=0)


# --------------------------------------------------------------------------
# the VAE's score_method (was `score`, which hid scikit-learn's score method)


def test_vae_score_method_is_a_parameter_and_score_is_not_shadowed():
    vae = VAE(score_method="wasserstein")
    params = vae.get_params()
    assert params["score_method"] == "wasserstein" and "score" not in params
    assert not isinstance(getattr(vae, "score", None), str)
    assert hasattr(vae, "score") == hasattr(pyod_ae_ext.make_detector("ae"), "score")


def test_vae_old_score_name_warns_and_sets_score_method():
    with pytest.warns(FutureWarning, match="score_method"):
        vae = VAE(score="reconstruction_error", **SMALL)
    assert vae.score_method == "reconstruction_error" and "score" not in vae.get_params()
    with pytest.warns(FutureWarning, match="score_method"):
        vae.set_params(score="wasserstein")
    assert vae.score_method == "wasserstein"
    with pytest.warns(FutureWarning), pytest.raises(TypeError, match="score_method only"):
        VAE(score="wasserstein", score_method="reconstruction_error")


def test_vae_clone_and_pipeline_round_trip(rows):
    vae = VAE(score_method="reconstruction_error", **SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation path on the new name
        copy = clone(vae)
        assert copy.get_params() == vae.get_params()
        pipe = Pipeline([("scale", StandardScaler()), ("vae", vae)])
        pipe.set_params(vae__score_method="wasserstein")
        same = clone(pipe)
    assert same.get_params()["vae__score_method"] == "wasserstein"
    same.fit(rows)
    scores = same.decision_function(rows)
    direct = VAE(score_method="wasserstein", **SMALL).fit(StandardScaler().fit_transform(rows))
    np.testing.assert_allclose(scores, direct.decision_scores_, rtol=1e-6)
    np.testing.assert_array_equal(same.predict(rows), direct.labels_)
    # a pipeline ending in the VAE behaves like one ending in any other detector
    ae_pipe = Pipeline([("scale", StandardScaler()), ("ae", fast_detector("ae"))])
    assert hasattr(same, "score") == hasattr(ae_pipe, "score")


def test_vae_old_name_through_registry_and_cli(tmp_path, runner, rows):
    with pytest.warns(FutureWarning):
        vae = pyod_ae_ext.make_detector("vae", score="wasserstein")
    assert vae.score_method == "wasserstein"
    data = tmp_path / "data.csv"
    np.savetxt(data, rows, delimiter=",", header="a,b,c,d", comments="")
    with pytest.warns(FutureWarning, match="vae.score_method"):
        single = runner.invoke(cli, ["fit", "-d", "vae", "-p", "score=reconstruction_error", "-p", "epochs=1",
                                     str(data), "-o", str(tmp_path / "vae.adscore")])
    assert single.exit_code == 0, single.output
    assert read_metadata(tmp_path / "vae.adscore")["params"]["score_method"] == "reconstruction_error"
    with pytest.warns(FutureWarning):
        ensemble = runner.invoke(cli, ["fit", "-d", "vae", "-d", "iforest", "--combine", "mean",
                                       "-p", "vae.score=wasserstein", "-p", "vae.epochs=1",
                                       str(data), "-o", str(tmp_path / "ens.adscore")])
    assert ensemble.exit_code == 0, ensemble.output
    member = load_detector(tmp_path / "ens.adscore").members_[0]
    assert member.score_method == "wasserstein"


def _rename_param(path, old, new, keep=False):
    """Rewrite a model file as an older version would have saved it: parameter ``old`` named ``new``."""
    meta, tensors = read_model_file(path)
    params = meta["params"]
    params[new] = params[old] if keep else params.pop(old)
    write_model_file(path, meta, tensors)


def test_vae_model_file_with_old_score_name_loads(tmp_path, rows):
    fitted = VAE(score_method="reconstruction_error", **SMALL).fit(rows)
    path = tmp_path / "old.adscore"
    fitted.save(path)
    _rename_param(path, "score_method", "score")
    assert "score_method" not in read_metadata(path)["params"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a file is mapped, not sent down the deprecation path
        loaded = load_detector(path)
    assert loaded.score_method == "reconstruction_error"
    np.testing.assert_array_equal(loaded.decision_function(rows), fitted.decision_function(rows))


def test_vae_model_file_with_both_names_is_refused(tmp_path, rows):
    path = tmp_path / "both.adscore"
    VAE(**SMALL).fit(rows).save(path)
    _rename_param(path, "score_method", "score", keep=True)
    with pytest.raises(ModelFileError, match="both 'score' and its new name 'score_method'"):
        load_detector(path)


# --------------------------------------------------------------------------
# PyOD's attribute names: model_ and Deep SVDD's c_


def _autoencoder_families():
    from pyod_ae_ext.engine import AutoEncoderDetector
    from pyod_ae_ext.registry import get_registry

    return [name for name, spec in get_registry().detectors.items() if issubclass(spec.cls, AutoEncoderDetector)]


def test_every_autoencoder_family_is_listed():
    assert {"ae", "toll", "rdae-l1", "rdae-l21", "vae", "ksparse-ae", "deep-ocsvm", "deep-svdd"} \
        <= set(_autoencoder_families())


@pytest.mark.parametrize("name", _autoencoder_families())
def test_model_is_the_fitted_network_and_read_only(name, rows, tmp_path):
    import torch

    detector = fast_detector(name, epochs=1)
    assert not hasattr(detector, "model_")
    detector.fit(rows)
    assert isinstance(detector.model_, torch.nn.Module) and detector.model_ is detector.net_
    with pytest.raises(AttributeError):
        detector.model_ = torch.nn.Linear(1, 1)
    detector.save(tmp_path / "m.adscore")
    loaded = load_detector(tmp_path / "m.adscore")
    assert loaded.model_ is loaded.net_
    torch.testing.assert_close(loaded.model_.state_dict(), detector.model_.state_dict())


@pytest.mark.parametrize("objective", ["one-class", "soft-boundary"])
def test_deep_svdd_centre_and_radius_under_pyods_names(objective, rows):
    import torch

    detector = fast_detector("deep-svdd", objective=objective)
    assert not hasattr(detector, "c_")
    detector.fit(rows)
    centre = detector.c_
    assert isinstance(centre, torch.Tensor) and centre.device == detector.model_.center.device
    np.testing.assert_array_equal(centre.cpu().double().numpy(), detector.center_)
    centre += 1.0  # a copy: the model keeps its centre
    np.testing.assert_array_equal(detector.c_.cpu().double().numpy(), detector.center_)
    with pytest.raises(AttributeError):
        detector.c_ = centre
    # PyOD's Deep SVDD score: squared distance of the network's code to c_
    x = torch.as_tensor((rows - detector.scaler_mean_) / detector.scaler_scale_, dtype=torch.float32,
                        device=detector.c_.device)
    with torch.no_grad():
        distance = (detector.model_.encoder(x) - detector.c_).pow(2).sum(dim=1)
    expected = distance.double().cpu().numpy() - (detector.radius_ ** 2 if objective == "soft-boundary" else 0.0)
    np.testing.assert_allclose(detector.family_score(rows), expected, rtol=1e-5, atol=1e-6)
    assert (detector.radius_ > 0) == (objective == "soft-boundary")


# --------------------------------------------------------------------------
# fit --sample N: the model file says it was fitted on a sample


@pytest.fixture
def data_csv(tmp_path, rows):
    path = tmp_path / "data.csv"
    np.savetxt(path, rows, delimiter=",", header="a,b,c,d", comments="")
    return path


def test_fit_sample_is_recorded_in_the_model_file(runner, data_csv, tmp_path):
    model = tmp_path / "sampled.adscore"
    result = runner.invoke(cli, ["fit", "-d", "ae", "-p", "epochs=1", "--sample", "50", "--seed", "3",
                                 str(data_csv), "-o", str(model)])
    assert result.exit_code == 0, result.output
    assert read_metadata(model)["fit_sample"] == {"rows": 50, "of": 120, "seed": 3}
    assert load_detector(model).fit_sample_ == {"rows": 50, "of": 120, "seed": 3}
    ensemble = tmp_path / "ens.adscore"
    result = runner.invoke(cli, ["fit", "-d", "ae", "-d", "ecod", "--combine", "max", "-p", "ae.epochs=1",
                                 "--sample", "500", "--seed", "1", str(data_csv), "-o", str(ensemble)])
    assert result.exit_code == 0, result.output
    assert load_detector(ensemble).fit_sample_ == {"rows": 120, "of": 120, "seed": 1}
    plain = tmp_path / "plain.adscore"
    assert runner.invoke(cli, ["fit", "-d", "ecod", str(data_csv), "-o", str(plain)]).exit_code == 0
    assert "fit_sample" not in read_metadata(plain) and not hasattr(load_detector(plain), "fit_sample_")


@pytest.mark.parametrize("entry, problem", [
    ({"rows": 60, "of": 120, "seed": 3}, "sample of 60 rows, it has 50 training scores"),
    ({"rows": 50, "of": 40, "seed": 3}, "1 <= rows <= of"),
    ({"rows": 50, "of": 120, "seed": -1}, "fit_sample.seed"),
    ({"rows": 50, "of": 120}, "rows, of and seed"),
    ([50, 120, 3], "rows, of and seed"),
])
def test_fit_sample_entry_is_checked_on_load(entry, problem, runner, data_csv, tmp_path):
    model = tmp_path / "sampled.adscore"
    assert runner.invoke(cli, ["fit", "-d", "ecod", "--sample", "50", "--seed", "3", str(data_csv),
                               "-o", str(model)]).exit_code == 0
    meta, tensors = read_model_file(model)
    meta["fit_sample"] = entry
    write_model_file(model, meta, tensors)
    with pytest.raises(ModelFileError, match=problem):
        load_detector(model)
    assert_clean_error(runner.invoke(cli, ["score", "-m", str(model), str(data_csv)]), problem)


def test_a_wrong_fit_sample_is_not_saved(rows, tmp_path):
    from pyod_ae_ext.errors import AdscoreError

    detector = pyod_ae_ext.make_detector("ecod").fit(rows)
    detector.fit_sample_ = {"rows": 10, "of": 120, "seed": 0}
    with pytest.raises(AdscoreError, match="fit_sample_ is wrong"):
        pyod_ae_ext.save(detector, tmp_path / "m.adscore")
    assert not (tmp_path / "m.adscore").exists()


# --------------------------------------------------------------------------
# predict_proba(method="unify") and the contract kit's checks of PyOD's names


def _broken_detectors():
    from pyod_ae_ext.plugins.autoencoder import AutoEncoder

    class WritableModel(AutoEncoder):
        """model_ as a plain attribute."""

        model_ = None

        def fit(self, X, y=None):
            super().fit(X, y)
            self.model_ = self.net_
            return self

    class StaleProbabilities(AutoEncoder):
        """PyOD's probability statistics that are not those of the training scores."""

        def _process_decision_scores(self):
            super()._process_decision_scores()
            self._mu += 1.0
            return self

    return {"pyod_names": (WritableModel, "model_ is read-only"),
            "probabilities": (StaleProbabilities, "training scores' mean and std")}


@pytest.mark.parametrize("check", ["pyod_names", "probabilities"])
def test_the_kit_checks_pyods_names_and_probabilities(check):
    from pyod_ae_ext.testing import CHECKS, check_detector

    cls, promise = _broken_detectors()[check]
    with pytest.raises(AssertionError, match=promise):
        check_detector(cls(epochs=1, random_state=0, n_members=1), skip=[c for c in CHECKS if c != check])


@pytest.mark.parametrize("seed", ["-1", str(2**63)])
def test_fit_sample_with_a_bad_seed_is_one_clear_error(seed, runner, data_csv, tmp_path):
    result = runner.invoke(cli, ["fit", "-d", "ecod", "--sample", "10", "--seed", seed, str(data_csv),
                                 "-o", str(tmp_path / "m.adscore")])
    assert_clean_error(result, "seed (--seed)")
    assert not (tmp_path / "m.adscore").exists()
