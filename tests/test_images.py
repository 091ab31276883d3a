"""Images: the convolutional backbones, global pixel scaling, image readers, persistence, CLI."""
import io
import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import pyod_ae_ext
from pyod_ae_ext.backbones_image import image_shape
from pyod_ae_ext.data import read_scoring_table, read_training_table
from pyod_ae_ext.errors import DataError, ModelFileError, ParameterError
from pyod_ae_ext.images import parse_image_shape, pixel_names, read_images
from pyod_ae_ext.persistence import read_model_file, write_model_file

FAMILIES = ["ae", "toll", "rdae-l1", "rdae-l21", "vae", "ksparse-ae", "deep-ocsvm", "deep-svdd"]
FAMILY_PARAMS = {"ksparse-ae": {"tied": False, "k": 2}}
TINY = dict(backbone="conv", hidden_dims=(4, 8), latent_dim=3, epochs=2, random_state=0)


def _images(n=60, shape=(1, 8, 8), seed=0):
    """Images of a soft bright blob at a random place on a dim noisy background, flat rows."""
    rng = np.random.default_rng(seed)
    channels, height, width = shape
    rows, cols = np.mgrid[0:height, 0:width]
    centres = rng.uniform(0, [height, width], size=(n, 2))
    blob = np.exp(-((rows - centres[:, 0, None, None]) ** 2 + (cols - centres[:, 1, None, None]) ** 2) / 2)
    images = 200 * blob[:, None] + rng.uniform(0, 20, size=(n, channels, height, width))
    return images.reshape(n, -1)


def _make(name, **params):
    return pyod_ae_ext.make_detector(name, **{**TINY, "n_members": 1, **FAMILY_PARAMS.get(name, {}), **params})


# --------------------------------------------------------------------------
# every family, conv backbone


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_fits_and_scores_with_the_conv_backbone(name):
    X = _images()
    detector = _make(name).fit(X)
    assert any(isinstance(m, nn.Conv2d) for m in detector.net_.modules())
    scores = detector.decision_function(_images(10, seed=1))
    assert scores.shape == (10,) and np.isfinite(scores).all()
    # a row's score never depends on the rows scored with it
    one_by_one = np.concatenate([detector.decision_function(row[None]) for row in _images(10, seed=1)])
    np.testing.assert_allclose(one_by_one, scores, rtol=1e-5, atol=1e-6)


def test_vae_with_per_pixel_variance_decodes_two_blocks_per_pixel():
    detector = _make("vae", variance="sample").fit(_images())
    x = detector.network_input(_images(3, seed=2))
    with torch.inference_mode():
        out = detector.net_.decoder(detector.net_.encode(x)[0])
    assert out.shape == (3, 2 * 64)
    assert np.isfinite(detector.decision_function(_images(3, seed=2))).all()


def test_same_seed_same_scores_on_the_cpu():
    X = _images()
    first = _make("toll", device="cpu").fit(X).decision_scores_
    again = _make("toll", device="cpu").fit(X).decision_scores_
    np.testing.assert_array_equal(first, again)


# --------------------------------------------------------------------------
# properties only a convolutional autoencoder has


def _conv_part(sequential):
    """The layers of an encoder before its Flatten (flat row -> feature map)."""
    stop = next(i for i, m in enumerate(sequential) if isinstance(m, nn.Flatten))
    return sequential[:stop]


def _shift_right(images, pixels):
    shifted = np.zeros_like(images)
    shifted[..., pixels:] = images[..., :-pixels]
    return shifted


def test_the_encoder_is_translation_equivariant_through_the_flat_row():
    """Shifting an image by 4 pixels (two stride-2 layers) shifts the last feature map by one cell.

    The images go in as flat channel-first rows, so this also checks that the backbone
    reshapes rows as (C, H, W): a wrong reshape scrambles the shift. A network without
    shared, local filters (the MLP) has no such map at all, and a one-pixel shift, which
    is not a multiple of the stride, must not give a clean one-cell shift.
    """
    shape = (2, 12, 20)  # two channels, not square: channel/height/width order matters
    detector = _make("ae", input_shape=shape, device="cpu").fit(_images(60, shape))
    encoder_maps = _conv_part(detector.net_.encoder).eval()
    images = _images(4, shape, seed=3).reshape(4, *shape)
    images[..., -4:] = 0.0  # nothing leaves the image when shifted

    def feature_map(batch):
        with torch.inference_mode():
            return encoder_maps(torch.as_tensor(batch.reshape(len(batch), -1), dtype=torch.float32)).numpy()

    original, shifted = feature_map(images), feature_map(_shift_right(images, 4))
    assert original.shape == (4, 8, 3, 5)
    # away from the left border (zero padding), cell j of the shifted map is cell j-1 of the original
    np.testing.assert_allclose(shifted[..., 2:], original[..., 1:-1], rtol=1e-5, atol=1e-5)
    one_pixel = feature_map(_shift_right(images, 1))
    assert not np.allclose(one_pixel[..., 2:], original[..., 1:-1], rtol=1e-3, atol=1e-3)


def test_the_decoder_is_translation_equivariant():
    """Shifting the decoder's first feature map by one cell shifts the decoded image by 4 pixels.

    Compared away from the right border, where the transposed convolutions' cropping
    (padding) differs.
    """
    shape = (1, 16, 16)
    decoder = _make("ae", input_shape=shape, device="cpu").fit(_images(60, shape)).net_.decoder.eval()
    start = next(i for i, m in enumerate(decoder) if isinstance(m, nn.Unflatten)) + 1
    upsampling = decoder[start:]
    maps = torch.zeros(2, 8, 4, 4)
    maps[:, :, 1:3, 0:2] = torch.randn(2, 8, 2, 2, generator=torch.Generator().manual_seed(0))
    moved = torch.roll(maps, 1, dims=3)
    with torch.inference_mode():
        image = upsampling(maps).reshape(2, 16, 16).numpy()
        image_moved = upsampling(moved).reshape(2, 16, 16).numpy()
    np.testing.assert_allclose(image_moved[..., 4:-1], image[..., :-5], rtol=1e-5, atol=1e-5)
    assert not np.allclose(image_moved, image, rtol=1e-3, atol=1e-3)


def test_convolution_weights_do_not_grow_with_the_image():
    def conv_parameters(shape):
        net = _make("ae", input_shape=shape).fit(_images(20, shape)).net_
        return sum(p.numel() for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
                   for p in m.parameters())

    assert conv_parameters((1, 8, 8)) == conv_parameters((1, 24, 16)) > 0


@pytest.mark.parametrize("shape", [(1, 7, 9), (3, 5, 6), (1, 1, 13), (2, 28, 28)])
def test_any_height_and_width_reconstruct_to_the_same_size(shape):
    detector = _make("ae", input_shape=shape, hidden_dims=(4, 8, 8)).fit(_images(20, shape))
    x = detector.network_input(_images(2, shape))
    with torch.inference_mode():
        _, recon = detector.net_(x)
    assert recon.shape == x.shape


# --------------------------------------------------------------------------
# shapes and parameters


def test_square_grey_images_are_inferred_and_other_widths_refused():
    detector = _make("ae")
    assert image_shape(detector, 64) == (1, 8, 8)
    with pytest.raises(ParameterError, match=r"cannot infer the image shape of 60 features.*input_shape"):
        _make("ae").fit(np.random.default_rng(0).normal(size=(20, 60)))


@pytest.mark.parametrize("bad, match", [((1, 8, 9), "holds 72 pixel values but the data have 64"),
                                        ((8, 8), r"needs input_shape=\(C, H, W\)")])
def test_a_wrong_input_shape_is_refused(bad, match):
    with pytest.raises(ParameterError, match=match):
        _make("ae", input_shape=bad).fit(_images())


def test_conv_needs_at_least_one_convolution():
    with pytest.raises(ParameterError, match="hidden_dims as channel counts"):
        _make("ae", hidden_dims=()).fit(_images())


def test_bias_free_conv_network_has_no_additive_constant():
    detector = _make("deep-svdd", device="cpu").fit(_images())
    names = [name for name, _ in detector.net_.named_parameters()]
    assert names and not any("bias" in name for name in names)
    encoder = detector.net_.encoder.eval()
    with torch.inference_mode():
        assert torch.equal(encoder(torch.zeros(2, 64)), torch.zeros(2, TINY["latent_dim"]))
    decoder = detector.make_decoder(3, 64, bias=False)
    assert not any("bias" in name for name, _ in decoder.named_parameters())
    with_norm = _make("deep-svdd", batch_norm=True).fit(_images())
    norms = [m for m in with_norm.net_.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and not any(m.affine for m in norms)


# --------------------------------------------------------------------------
# the Toll paper's MNIST network


def test_toll_mnist_preset_is_the_papers_network():
    detector = pyod_ae_ext.make_detector("toll", n_members=1, backbone="toll-mnist", latent_dim=128)
    encoder = detector.make_encoder(784, 128)
    convs = [m for m in encoder if isinstance(m, nn.Conv2d)]
    assert [(m.out_channels, m.kernel_size, m.stride) for m in convs] == [
        (64, (4, 4), (1, 1)), (128, (4, 4), (1, 1)), (256, (4, 4), (2, 2)), (512, (4, 4), (1, 1)),
        (64, (4, 4), (1, 1))]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in encoder) == 4
    assert all(m.negative_slope == 0.2 for m in encoder if isinstance(m, nn.LeakyReLU))
    with torch.inference_mode():
        assert _conv_part(encoder)(torch.zeros(2, 784)).shape == (2, 64, 4, 4)
        assert detector.make_decoder(128, 784)(torch.zeros(2, 128)).shape == (2, 784)


@pytest.mark.parametrize("shape", [(1, 23, 25), (3, 22, 30)])
def test_toll_mnist_preset_restores_other_sizes(shape):
    n = int(np.prod(shape))
    detector = pyod_ae_ext.make_detector("toll", n_members=1, backbone="toll-mnist", input_shape=shape)
    with torch.inference_mode():
        code = detector.make_encoder(n, 8).eval()(torch.zeros(2, n))
        assert detector.make_decoder(8, n, n_outputs=2).eval()(code).shape == (2, 2 * n)


def test_toll_mnist_preset_refuses_small_images():
    with pytest.raises(ParameterError, match="at least 22 x 22"):
        pyod_ae_ext.make_detector("toll", n_members=1, backbone="toll-mnist").fit(_images())


# --------------------------------------------------------------------------
# global pixel scaling


def test_conv_scales_pixels_globally_and_mlp_per_feature():
    X = _images()
    conv = _make("ae").fit(X)
    np.testing.assert_allclose(conv.scaler_mean_, np.full(64, X.mean()))
    np.testing.assert_allclose(conv.scaler_scale_, np.full(64, X.std()))
    assert conv.scaling() == "global"
    mlp = pyod_ae_ext.make_detector("ae", n_members=1, epochs=1, random_state=0).fit(X)
    assert mlp.scaling() == "feature" and np.ptp(mlp.scaler_mean_) > 0
    forced = pyod_ae_ext.make_detector("ae", n_members=1, standardize="global", epochs=1, random_state=0).fit(X)
    np.testing.assert_allclose(forced.scaler_mean_, conv.scaler_mean_)
    per_pixel = _make("ae", standardize="feature").fit(X)
    np.testing.assert_allclose(per_pixel.scaler_mean_, mlp.scaler_mean_)


def test_constant_images_get_unit_scale():
    detector = _make("ae").fit(np.full((10, 64), 7.0))
    assert (detector.scaler_scale_ == 1.0).all() and (detector.scaler_mean_ == 7.0).all()


@pytest.mark.parametrize("bad", ["pixel", 1, None])
def test_standardize_must_be_a_known_choice(bad):
    with pytest.raises(ParameterError, match="standardize must be True, False, 'feature' or 'global'"):
        _make("ae", standardize=bad).fit(_images())


# --------------------------------------------------------------------------
# persistence


@pytest.mark.parametrize("name", ["toll", "vae", "deep-svdd"])
def test_conv_models_round_trip(name, tmp_path):
    shape = (3, 6, 5)
    X = _images(40, shape)
    detector = _make(name, input_shape=shape).fit(X)
    detector.save(tmp_path / "m.adscore")
    loaded = pyod_ae_ext.load(tmp_path / "m.adscore")
    assert loaded.input_shape == shape and loaded.backbone == "conv"
    np.testing.assert_array_equal(loaded.decision_function(X), detector.decision_function(X))


def _rewritten(path, edit):
    meta, tensors = read_model_file(path)
    edit(meta, tensors)
    write_model_file(path, meta, tensors)
    return path


def test_a_model_whose_global_scale_varies_by_pixel_is_refused(tmp_path):
    path = tmp_path / "m.adscore"
    _make("ae").fit(_images()).save(path)

    def edit(meta, tensors):
        tensors["scaler.scale"] = tensors["scaler.scale"].clone()
        tensors["scaler.scale"][3] *= 2
    with pytest.raises(ModelFileError, match="scales globally"):
        pyod_ae_ext.load(_rewritten(path, edit))


def test_a_model_whose_image_shape_does_not_fit_its_features_is_refused(tmp_path):
    path = tmp_path / "m.adscore"
    _make("ae", input_shape=(1, 8, 8)).fit(_images()).save(path)

    def edit(meta, tensors):
        meta["params"]["input_shape"] = {"__tuple__": [1, 4, 4]}
    with pytest.raises(ModelFileError, match="holds 16 pixel values but the data have 64"):
        pyod_ae_ext.load(_rewritten(path, edit))


# --------------------------------------------------------------------------
# readers


def test_npz_layouts_become_channel_first_rows(tmp_path):
    rng = np.random.default_rng(0)
    chw = rng.integers(0, 255, size=(5, 3, 4, 6)).astype(np.uint8)
    np.savez(tmp_path / "last.npz", X=chw.transpose(0, 2, 3, 1), y=np.array([0, 0, 1, 0, 0]))
    np.savez(tmp_path / "first.npz", images=chw)
    np.save(tmp_path / "grey.npy", chw[:, 0])
    for name in ("last.npz", "first.npz"):
        table = read_images(tmp_path / name)
        assert table.image_shape == (3, 4, 6)
        np.testing.assert_array_equal(table.X, chw.reshape(5, -1))
    labelled = read_training_table(str(tmp_path / "last.npz"), label_column="y")
    assert labelled.labels.tolist() == [0, 0, 1, 0, 0]
    grey = read_images(tmp_path / "grey.npy")
    assert grey.image_shape == (1, 4, 6) and grey.feature_names[:2] == ["pixel_0_0", "pixel_0_1"]
    np.testing.assert_array_equal(grey.X, chw[:, 0].reshape(5, -1))


def test_flat_arrays_are_features_or_take_an_image_shape(tmp_path):
    np.save(tmp_path / "flat.npy", np.arange(24.0).reshape(2, 12))
    plain = read_images(tmp_path / "flat.npy")
    assert plain.image_shape is None and plain.feature_names[:2] == ["x0", "x1"]
    assert read_images(tmp_path / "flat.npy", (1, 3, 4)).image_shape == (1, 3, 4)
    with pytest.raises(DataError, match="holds 9 values but the rows"):
        read_images(tmp_path / "flat.npy", (1, 3, 3))


def test_png_folder_is_read_in_name_order_with_file_ids(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 255, size=(3, 5, 7)).astype(np.uint8)
    for k, image in enumerate(grey):
        Image.fromarray(image).save(tmp_path / f"img{2 - k}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    table = read_images(tmp_path)
    assert table.image_shape == (1, 5, 7)
    assert table.ids["file"].tolist() == ["img0.png", "img1.png", "img2.png"]
    np.testing.assert_array_equal(table.X, grey[::-1].reshape(3, -1))


def test_colour_images_give_three_channels(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    rgb = np.random.default_rng(1).integers(0, 255, size=(4, 6, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "b.png")  # grey: converted to RGB beside a colour image
    table = read_images(tmp_path)
    assert table.image_shape == (3, 4, 6)
    np.testing.assert_array_equal(table.X[0], rgb.transpose(2, 0, 1).reshape(-1))
    np.testing.assert_array_equal(table.X[1], np.repeat(rgb[..., 0][None], 3, axis=0).reshape(-1))


def test_folder_errors(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    with pytest.raises(DataError, match="holds no .png"):
        read_images(tmp_path)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((5, 4), np.uint8)).save(tmp_path / "b.png")
    with pytest.raises(DataError, match="must all have one size: a.png is 4x4 pixels, b.png is 4x5"):
        read_images(tmp_path)
    (tmp_path / "b.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="b.png is not a readable image"):
        read_images(tmp_path)


def test_flat_csv_pixel_columns_with_an_image_shape(tmp_path):
    X = _images(6, (1, 4, 4)).round(3)
    pd.DataFrame(X, columns=[f"p{k}" for k in range(16)]).assign(id=range(6)).to_csv(tmp_path / "px.csv",
                                                                                     index=False)
    table = read_training_table(str(tmp_path / "px.csv"), exclude=["id"], image_shape=(1, 4, 4))
    assert table.image_shape == (1, 4, 4) and table.feature_names[0] == "p0"
    np.testing.assert_allclose(table.X, X)
    with pytest.raises(DataError, match="holds 9 pixel values but the data have 16"):
        read_training_table(str(tmp_path / "px.csv"), exclude=["id"], image_shape=(1, 3, 3))


def test_scoring_images_match_the_model_by_shape(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((2, 4, 4)))
    table = read_scoring_table(str(tmp_path / "a.npy"), [f"p{k}" for k in range(16)], image_shape=(1, 4, 4))
    assert table.feature_names[0] == "p0"
    with pytest.raises(DataError, match=r"are 1,4,4 \(C,H,W\), not 1,3,3"):
        read_scoring_table(str(tmp_path / "a.npy"), [f"p{k}" for k in range(9)], image_shape=(1, 3, 3))


@pytest.mark.parametrize("text, shape", [("1,28,28", (1, 28, 28)), ("28x28", (1, 28, 28)),
                                         (" 3, 32 ,32 ", (3, 32, 32)), ("32X16", (1, 32, 16))])
def test_parse_image_shape(text, shape):
    assert parse_image_shape(text) == shape


@pytest.mark.parametrize("text", ["28", "0,28,28", "a,b,c", "1,2,3,4", ""])
def test_bad_image_shapes_are_refused(text):
    with pytest.raises(ParameterError, match="--image-shape expects C,H,W or HxW"):
        parse_image_shape(text)


def test_pixel_names():
    assert pixel_names((1, 2, 2)) == ["pixel_0_0", "pixel_0_1", "pixel_1_0", "pixel_1_1"]
    assert pixel_names((2, 1, 1)) == ["pixel_0_0_0", "pixel_1_0_0"]


def test_non_finite_pixels_are_named(tmp_path):
    images = np.zeros((3, 2, 2))
    images[1, 0, 1] = np.nan
    np.save(tmp_path / "nan.npy", images)
    with pytest.raises(DataError, match=r"row 1 has a non-finite value \(nan\) in 'pixel_0_1'"):
        read_images(tmp_path / "nan.npy")


def test_objects_in_npz_are_refused(tmp_path):
    np.savez(tmp_path / "o.npz", X=np.array([[1, "a"]], dtype=object))
    with pytest.raises(DataError, match="not a readable NumPy"):
        read_images(tmp_path / "o.npz")


# --------------------------------------------------------------------------
# command line


@pytest.fixture
def image_files(tmp_path):
    """train.npz (normal blobs), test.npz (three with a bright bar, labels y), the test images as PNGs."""
    train = _images(120, (1, 12, 12)).reshape(120, 12, 12).astype(np.uint8)
    test = _images(12, (1, 12, 12), seed=4).reshape(12, 12, 12)
    test[:3, 6, :] = 255
    test = test.astype(np.uint8)
    np.savez(tmp_path / "train.npz", X=train)
    np.savez(tmp_path / "test.npz", X=test, y=np.r_[np.ones(3), np.zeros(9)].astype(int))
    pd.DataFrame(train.reshape(120, -1), columns=[f"px{k}" for k in range(144)]).to_csv(tmp_path / "flat.csv",
                                                                                          index=False)
    Image = pytest.importorskip("PIL.Image")
    (tmp_path / "pngs").mkdir()
    for k, image in enumerate(test):
        Image.fromarray(image).save(tmp_path / "pngs" / f"im{k:02d}.png")
    return tmp_path


FIT_CONV = ["fit", "-d", "toll", "--backbone", "conv", "-p", "hidden_dims=[4,8]", "-p", "epochs=10", "--seed", "0"]


def test_cli_fits_scores_and_evaluates_images(image_files, runner, monkeypatch):
    from pyod_ae_ext.cli import cli

    monkeypatch.chdir(image_files)
    result = runner.invoke(cli, [*FIT_CONV, "train.npz", "-o", "m.adscore"])
    assert result.exit_code == 0, result.output
    assert "120 images of 1x12x12" in result.stderr
    model = pyod_ae_ext.load("m.adscore")
    assert model.input_shape == (1, 12, 12) and model.backbone == "conv"
    from_npz = runner.invoke(cli, ["score", "-m", "m.adscore", "test.npz"])
    from_png = runner.invoke(cli, ["score", "-m", "m.adscore", "pngs"])
    assert from_npz.exit_code == 0 and from_png.exit_code == 0, from_npz.output + from_png.output
    npz_scores = pd.read_csv(io.StringIO(from_npz.stdout))
    png_scores = pd.read_csv(io.StringIO(from_png.stdout))
    assert png_scores["file"].tolist() == [f"im{k:02d}.png" for k in range(12)]
    np.testing.assert_allclose(png_scores["anomaly_score"], npz_scores["anomaly_score"])
    test = np.load(image_files / "test.npz")["X"].reshape(12, -1)
    np.testing.assert_allclose(npz_scores["anomaly_score"], model.decision_function(test))
    evaluated = runner.invoke(cli, ["evaluate", "-m", "m.adscore", "--label-column", "y", "--json", "test.npz"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["roc_auc"] == 1.0  # the bars stand out


def test_cli_explain_plots_images(image_files, runner, monkeypatch):
    pytest.importorskip("matplotlib")
    from pyod_ae_ext.cli import cli

    monkeypatch.chdir(image_files)
    assert runner.invoke(cli, [*FIT_CONV, "train.npz", "-o", "m.adscore"]).exit_code == 0
    result = runner.invoke(cli, ["explain", "-m", "m.adscore", "--top", "3", "--plot", "why.png", "pngs"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(line for line in lines if "top features" in line)
    assert header.split()[:2] == ["row", "file"]  # a folder's file names are the id column
    rows = lines[lines.index(header) + 1:lines.index(header) + 4]
    assert all(row.split()[1].startswith("im0") for row in rows) and "pixel_6_" in result.stdout
    from PIL import Image

    with Image.open(image_files / "why.png") as png:
        width, height = png.size
    assert height > 2 * width  # one row of panels per image, eight images


def test_cli_flat_pixel_columns_with_image_shape(image_files, runner, monkeypatch):
    from pyod_ae_ext.cli import cli

    monkeypatch.chdir(image_files)
    result = runner.invoke(cli, [*FIT_CONV, "--image-shape", "12x12", "flat.csv", "-o", "m.adscore"])
    assert result.exit_code == 0, result.output
    model = pyod_ae_ext.load("m.adscore")
    assert model.input_shape == (1, 12, 12) and model.feature_names_in_[0] == "px0"


@pytest.mark.parametrize("args, fragments", [
    (["fit", "-d", "toll", "--backbone", "conv", "--image-shape", "1,5,5", "flat.csv", "-o", "x.adscore"],
     ("image shape 1,5,5 holds 25 pixel values", "144 feature columns")),
    (["fit", "-d", "toll", "--backbone", "conv", "--image-shape", "3x", "train.npz", "-o", "x.adscore"],
     ("--image-shape expects C,H,W or HxW",)),
    (["fit", "-d", "toll", "--backbone", "conv", "--image-shape", "3,12,12", "train.npz", "-o", "x.adscore"],
     ("are 1,12,12 (C,H,W), not 3,12,12",)),
    (["fit", "-d", "toll", "--backbone", "conv", "-p", "input_shape=[1,11,13]", "train.npz", "-o", "x.adscore"],
     ("input_shape=(1, 11, 13) holds 143 pixel values", "144 features")),
    (["fit", "-d", "toll", "--backbone", "conv", "-p", "standardize='pixel'", "train.npz", "-o", "x.adscore"],
     ("standardize must be",)),
    (["fit", "-d", "toll", "--backbone", "conv", "--exclude", "y", "train.npz", "-o", "x.adscore"],
     ("image data", "drop --exclude")),
])
def test_cli_bad_image_input_is_one_error_line(image_files, runner, monkeypatch, args, fragments):
    from helpers import assert_clean_error
    from pyod_ae_ext.cli import cli

    monkeypatch.chdir(image_files)
    assert_clean_error(runner.invoke(cli, args), *fragments)
    assert not (image_files / "x.adscore").exists()


def test_cli_scoring_images_of_another_size_is_one_error_line(image_files, runner, monkeypatch):
    from helpers import assert_clean_error
    from pyod_ae_ext.cli import cli

    monkeypatch.chdir(image_files)
    np.save(image_files / "small.npy", np.zeros((4, 6, 6), np.uint8))
    assert runner.invoke(cli, [*FIT_CONV, "train.npz", "-o", "m.adscore"]).exit_code == 0
    assert_clean_error(runner.invoke(cli, ["score", "-m", "m.adscore", "small.npy", "-o", "s.csv"]),
                       "are 1,6,6 (C,H,W), not 1,12,12")
    assert not (image_files / "s.csv").exists()


def test_missing_pillow_is_a_clear_error(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def without_pil(name, *args, **kwargs):
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError("No module named 'PIL'")
        return real_import(name, *args, **kwargs)

    (tmp_path / "a.png").write_bytes(b"\x89PNG")
    monkeypatch.setattr(builtins, "__import__", without_pil)
    with pytest.raises(DataError, match=r'needs Pillow, which is not installed: pip install "pyod-ae-ext\[image\]"'):
        read_images(tmp_path)


def _contract_images():
    """200 training images, 60 test images whose first 10 carry a bright bar (the anomalies)."""
    train = _images(200, (1, 8, 8))
    test = _images(60, (1, 8, 8), seed=7).reshape(60, 8, 8)
    test[:10, 4, :] = 255.0
    return train, test.reshape(60, -1)


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_with_the_conv_backbone_honours_the_contract(name):
    from pyod_ae_ext.testing import check_detector

    check_detector(_make(name, epochs=4), data=_contract_images())


# --------------------------------------------------------------------------
# the MNIST benchmark


def _run_mnist_benchmark(*args, env=None):
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    return subprocess.run([sys.executable, "-m", "benchmarks.mnist_conv", *args], cwd=repo, capture_output=True,
                          text=True, timeout=600, env={**os.environ, **(env or {})})


def test_mnist_benchmark_skips_without_the_data(tmp_path):
    done = _run_mnist_benchmark("--quick", env={"ADSCORE_DATASETS": str(tmp_path / "none")})
    assert done.returncode == 0 and "skipped: benchmark data not found" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_mnist_benchmark_quick_run(tmp_path):
    import os
    from pathlib import Path

    root = Path(os.environ.get("ADSCORE_DATASETS") or Path(__file__).resolve().parents[2] / "shared" / "datasets")
    if not (root / "mnist" / "mnist_digit0.npz").is_file():
        pytest.skip(f"MNIST digits not found under {root} (set ADSCORE_DATASETS)")
    done = _run_mnist_benchmark("--quick", "--threads", "1", "--json", str(tmp_path / "cells.json"))
    assert done.returncode == 0, done.stderr[-2000:]
    cells = json.loads((tmp_path / "cells.json").read_text())["cells"]
    assert {c["detector"] for c in cells} == {"toll conv", "toll conv, paper's score", "toll mlp",
                                              "toll mlp, paper's score", "knn", "iforest"}
    assert {c["digit"] for c in cells} == {0, 1} and all(0.5 < c["roc_auc"] <= 1 for c in cells)
    assert "| **mean** |" in done.stdout
    half = _run_mnist_benchmark("--quick", "--conv-only", "--threads", "1", "--fit-fraction", "0.5", "--json",
                                str(tmp_path / "half.json"))
    assert half.returncode == 0, half.stderr[-2000:]
    fewer = json.loads((tmp_path / "half.json").read_text())["cells"]
    for digit in (0, 1):
        n_fit = {c["n_fit"] for c in cells if c["digit"] == digit}
        n_half = {c["n_fit"] for c in fewer if c["digit"] == digit}
        n_test = {c["n_test"] for c in cells if c["digit"] == digit}
        assert n_half == {round(n_fit.pop() / 2)} and {c["n_test"] for c in fewer if c["digit"] == digit} == n_test


def test_the_papers_split_fits_on_six_sevenths_of_the_normal_images_and_scores_every_anomaly():
    from benchmarks.mnist_conv import PAPER_FIT_SHARE, paper_split

    y = np.zeros(7000, dtype=int)
    y[np.random.default_rng(0).choice(7000, 1000, replace=False)] = 1
    fit, test = paper_split(y, seed=3)
    assert len(np.intersect1d(fit, test)) == 0 and len(fit) + len(test) == len(y)
    assert (y[fit] == 0).all() and len(fit) == round(PAPER_FIT_SHARE * 6000) == 5143
    assert set(np.flatnonzero(y == 1)) <= set(test)
    assert not np.array_equal(fit, paper_split(y, seed=4)[0])
    np.testing.assert_array_equal(fit, paper_split(y, seed=3)[0])


def test_mnist_benchmark_refuses_a_fit_fraction_outside_zero_to_one():
    done = _run_mnist_benchmark("--fit-fraction", "1.5")
    assert done.returncode == 2 and "--fit-fraction must be in (0, 1], got 1.5" in done.stderr


# --------------------------------------------------------------------------
# reconstructions and the image plot's panels


def test_reconstruct_returns_the_networks_output_in_pixel_units():
    X = _images()
    detector = _make("ae").fit(X)
    with torch.inference_mode():
        _, recon = detector.net_(detector.network_input(X[:5]))
    expected = recon.double().cpu().numpy() * detector.scaler_scale_ + detector.scaler_mean_
    np.testing.assert_allclose(detector.reconstruct(X[:5]), expected, rtol=1e-6)
    squared = ((detector.reconstruct(X[:5]) - X[:5]) / detector.scaler_scale_) ** 2
    np.testing.assert_allclose(squared, detector.feature_contributions(X[:5]), rtol=1e-4, atol=1e-6)


def test_ksparse_reconstructs_with_its_scoring_support():
    detector = _make("ksparse-ae", alpha=1.5).fit(_images())
    squared = ((detector.reconstruct(_images()[:4]) - _images()[:4]) / detector.scaler_scale_) ** 2
    np.testing.assert_allclose(squared.sum(axis=1), detector.family_score(_images()[:4]), rtol=1e-4)


def test_bernoulli_vae_reconstructs_probabilities():
    X = _images() / 255.0
    detector = _make("vae", likelihood="bernoulli").fit(X)
    recon = detector.reconstruct(X[:4])
    assert ((recon > 0) & (recon < 1)).all()


def test_image_panels_fall_back_where_a_family_has_less():
    from pyod_ae_ext.image_plots import image_panels

    X = _images()
    svdd = image_panels(_make("deep-svdd").fit(X), X[:3], (1, 8, 8))
    assert svdd["reconstructions"] is None and svdd["errors"] is None and svdd["inputs"].shape == (3, 1, 8, 8)
    with pytest.raises(NotImplementedError):
        _make("deep-svdd").fit(X).reconstruct(X[:3])
    wasserstein = image_panels(_make("vae", score="wasserstein").fit(X), X[:3], (1, 8, 8))
    assert wasserstein["error_title"].startswith("squared error") and wasserstein["errors"].shape == (3, 8, 8)
    toll = image_panels(_make("toll").fit(X), X[:3], (1, 8, 8))
    assert toll["error_title"] == "per-pixel contribution" and toll["reconstructions"].shape == (3, 1, 8, 8)


def test_activity_penalty_counts_every_unit_of_a_feature_map():
    detector = _make("ae", activity_l1=0.5).fit(_images())
    x = detector.network_input(_images(4, seed=3))
    net = detector.net_.eval()
    with torch.inference_mode():
        plain = detector.row_loss(net, x, x).mean()
        maps = net.encoder[:3](x)  # Unflatten, Conv2d, ReLU: the first hidden activation
        second = net.encoder[:5](x)
        code = net.encoder(x)
        expected = plain + 0.5 * sum(a.abs().reshape(4, -1).sum(1).mean() for a in (maps, second, code))
        assert torch.isclose(detector.batch_loss(net, x), expected, rtol=1e-5)


def test_cli_flat_array_with_an_image_backbone_gets_pixel_names(tmp_path, runner, monkeypatch):
    from helpers import assert_clean_error
    from pyod_ae_ext.cli import cli

    monkeypatch.chdir(tmp_path)
    np.savez("flat.npz", X=_images(40, (1, 4, 4)), y=np.zeros(40, dtype=int))
    result = runner.invoke(cli, ["fit", "-d", "toll", "--backbone", "conv", "-p", "epochs=1", "flat.npz",
                                 "-o", "m.adscore"])
    assert result.exit_code == 0, result.output
    model = pyod_ae_ext.load("m.adscore")
    assert model.input_shape == (1, 4, 4) and list(model.feature_names_in_[:2]) == ["pixel_0_0", "pixel_0_1"]
    np.savez("flat15.npz", X=np.zeros((10, 15)))
    assert_clean_error(runner.invoke(cli, ["fit", "-d", "toll", "--backbone", "conv", "flat15.npz", "-o", "x.adscore"]),
                       "cannot infer the image shape of 15 features")


def test_hidden_dims_auto_is_the_backbones_own_default():
    from pyod_ae_ext.engine import DEFAULT_HIDDEN_DIMS

    mlp = pyod_ae_ext.make_detector("ae")
    conv = pyod_ae_ext.make_detector("ae", backbone="conv")
    assert mlp.hidden_dims == conv.hidden_dims == "auto"
    assert mlp.hidden_widths() == DEFAULT_HIDDEN_DIMS == (64, 32)
    assert conv.hidden_widths() == (32, 64, 128)
    channels = [m.out_channels for m in conv.set_params(n_members=1).build_network(64).encoder
                if isinstance(m, torch.nn.Conv2d)]
    assert channels == [32, 64, 128]
    assert pyod_ae_ext.make_detector("ae", backbone="conv", hidden_dims=(8,)).hidden_widths() == (8,)
    with pytest.raises(ParameterError, match="'auto' or a sequence"):
        pyod_ae_ext.make_detector("ae", hidden_dims="wide").fit(np.zeros((4, 2)))
