"""Where the cli-ergonomics command line meets images and the API habits: remembered
columns with image arrays, the new output names for images, both kinds of fit
metadata in one model file, and the VAE's renamed parameter through the one factory."""
import io
import json
import warnings

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from helpers import assert_clean_error

from pyod_ae_ext import persistence
from pyod_ae_ext.cli import cli
from pyod_ae_ext.errors import AdscoreError

FIT_CONV = ["fit", "-d", "ae", "--backbone", "conv", "-p", "hidden_dims=[4,8]", "-p", "latent_dim=4",
            "-p", "epochs=5", "--seed", "0", "--quiet"]


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def images(tmp_path, monkeypatch):
    """60 grey 8x8 images, the first 5 bright (label 1), in images.npz with arrays X and y."""
    rng = np.random.default_rng(0)
    X = rng.random((60, 8, 8)).astype("float32") * 0.2
    X[:5] += 0.8
    y = (np.arange(60) < 5).astype(int)
    np.savez(tmp_path / "images.npz", X=X, y=y)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_an_image_model_remembers_its_label_array(images, runner):
    fitted = runner.invoke(cli, [*FIT_CONV, "--label-column", "y", "images.npz", "-o", "m.adscore"])
    assert fitted.exit_code == 0, fitted.output
    info = persistence.load_detector("m.adscore").fit_info_
    assert info["label_column"] == "y" and info["n_rows"] == 60
    evaluated = runner.invoke(cli, ["evaluate", "-m", "m.adscore", "--json", "images.npz"])  # no --label-column
    assert evaluated.exit_code == 0, evaluated.output
    named = runner.invoke(cli, ["evaluate", "-m", "m.adscore", "--json", "--label-column", "y", "images.npz"])
    assert named.exit_code == 0, named.output
    remembered, given = json.loads(evaluated.stdout), json.loads(named.stdout)
    assert remembered == given and remembered["n_anomalies"] == 5 and remembered["roc_auc"] > 0.9
    threshold = runner.invoke(cli, ["threshold", "-m", "m.adscore", "images.npz", "-o", "t.adscore"])
    assert threshold.exit_code == 0, threshold.output
    report = runner.invoke(cli, ["report", "-m", "m.adscore", "images.npz", "-o", "r.html"])
    assert report.exit_code == 0, report.output


def test_image_scores_use_the_new_output_names(images, runner):
    assert runner.invoke(cli, [*FIT_CONV, "images.npz", "-o", "m.adscore"]).exit_code == 0
    scored = runner.invoke(cli, ["score", "-m", "m.adscore", "--score-name", "s", "images.npz"])
    assert scored.exit_code == 0, scored.output
    frame = pd.read_csv(io.StringIO(scored.stdout))
    assert list(frame.columns) == ["s", "is_anomaly", "anomaly_probability"]
    model = persistence.load_detector("m.adscore")
    np.testing.assert_allclose(frame["s"], model.decision_function(np.load("images.npz")["X"].reshape(60, -1)))
    quiet = runner.invoke(cli, ["score", "-m", "m.adscore", "--quiet", "-v", "images.npz", "-o", "s.csv"])
    assert quiet.exit_code == 0 and quiet.stderr == ""


@pytest.mark.parametrize("command", ["score", "explain", "evaluate"])
def test_column_options_on_images_are_one_clean_error(images, runner, command):
    assert runner.invoke(cli, [*FIT_CONV, "--label-column", "y", "images.npz", "-o", "m.adscore"]).exit_code == 0
    assert_clean_error(runner.invoke(cli, [command, "-m", "m.adscore", "--exclude", "y", "images.npz"]),
                       "no columns to select", "--exclude")


def test_explain_checks_image_shape_against_the_model(images, runner):
    assert runner.invoke(cli, [*FIT_CONV, "images.npz", "-o", "m.adscore"]).exit_code == 0
    assert_clean_error(runner.invoke(cli, ["explain", "-m", "m.adscore", "--image-shape", "1,4,16", "images.npz"]),
                       "differs from the model's image shape")


def test_backbone_with_an_ensemble_is_one_clean_error(images, runner):
    assert_clean_error(runner.invoke(cli, ["fit", "-d", "ae", "-d", "iforest", "--combine", "mean", "--backbone",
                                           "conv", "images.npz", "-o", "m.adscore"]), "-p ae.backbone=conv")


def test_a_sampled_fit_keeps_fit_sample_and_fit_info(tmp_path, runner):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"])
    frame.insert(0, "id", range(300))
    frame.to_csv(tmp_path / "d.csv", index=False)
    model = tmp_path / "m.adscore"
    fitted = runner.invoke(cli, ["fit", "-d", "iforest", "--sample", "100", "--seed", "3", "--id-column", "id",
                                 str(tmp_path / "d.csv"), "-o", str(model)])
    assert fitted.exit_code == 0, fitted.output
    loaded = persistence.load_detector(model)
    assert loaded.fit_sample_ == {"rows": 100, "of": 300, "seed": 3}
    assert loaded.fit_info_["id_columns"] == ["id"] and loaded.fit_info_["n_rows"] == 100


@pytest.mark.parametrize("entry, value, problem", [("fit_info", {"n_rows": -1}, "'n_rows' must be"),
                                                   ("fit_sample", {"rows": 5, "of": 3, "seed": 0}, "fit_sample")])
def test_damaged_fit_records_are_refused_on_save(entry, value, problem):
    import pyod_ae_ext

    detector = pyod_ae_ext.make_detector("iforest", random_state=0).fit(np.random.default_rng(0).normal(size=(50, 2)))
    setattr(detector, f"{entry}_", value)
    with pytest.raises(AdscoreError, match=problem):
        persistence.detector_to_state(detector)


def test_the_factory_takes_the_vae_s_old_score_name_with_a_warning():
    from pyod_ae_ext.registry import build_detector

    with pytest.warns(FutureWarning, match="score_method"):
        vae = build_detector("vae", {"score": "wasserstein"})
    assert vae.get_params()["score_method"] == "wasserstein"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert build_detector("vae", {"score_method": "wasserstein"}).score_method == "wasserstein"
    from pyod_ae_ext.errors import ParameterError

    with pytest.raises(ParameterError, match="scor_method"):
        build_detector("vae", {"scor_method": "wasserstein"})
