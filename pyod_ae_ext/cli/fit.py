"""``adscore fit``: fit a detector or an ensemble and save it."""
from __future__ import annotations

import time

import click
import numpy as np

from ..errors import ParameterError
from .series import check_series_fit, fit_series_from_file, series_fit_option_decorators
from ._common import (build_detector, data_options, echo_err, fit_detector, parse_params, read_config,
                      sign_key_option, signing_key)


@click.command()
@click.argument("data")
@click.option("--detector", "-d", "detectors", multiple=True, metavar="NAME",
              help="Detector to fit (see `adscore plugins`).")
@click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE",
              help="Detector parameter, e.g. -p lam=0.5 -p hidden_dims=[64,32]. Repeatable.")
@click.option("--config", type=click.Path(dir_okay=False), help="TOML file with `detector` and [params].")
@click.option("--combine", type=click.Choice(["mean", "max", "median", "aom", "moa", "weighted"]),
              help="With several --detector options: how the ensemble combines their scores.")
@click.option("--normalize", type=click.Choice(["zscore", "rank", "minmax"]),
              help="Ensemble: per-member score normalisation fitted on training scores [default: zscore].")
@click.option("--weights", metavar="W1,W2,...", help="Ensemble with --combine weighted: one weight per detector.")
@data_options
@click.option("--backbone", metavar="NAME",
              help="Autoencoder layers: mlp (default), conv (convolutional, for images) or toll-mnist "
                   "(the Toll paper's MNIST network); same as -p backbone=NAME.")
@click.option("--image-shape", metavar="C,H,W",
              help="Shape of one image (C,H,W or HxW) for flat pixel rows: CSV/Parquet pixel columns or flat "
                   "arrays; image files and (N,H,W[,C]) arrays carry their own.")
@click.option("--contamination", type=float, help="Expected anomaly fraction (sets the threshold).")
@click.option("--seed", type=int, help="random_state, for reproducible fits.")
@click.option("--device", help="auto, cpu, cuda or cuda:N (autoencoder detectors).")
@click.option("--verbose", "-v", is_flag=True, help="Show training progress on stderr.")
@click.option("--sample", type=click.IntRange(min=2), metavar="N",
              help="Fit on a random sample of N rows drawn in one pass over DATA (seeded by --seed), "
                   "so DATA may be larger than memory.")
@click.option("--engine", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="dask: fit the members of an ensemble in parallel on a Dask cluster (joblib's dask "
                   "backend; needs pyod-ae-ext[dask]).")
@click.option("--scheduler", metavar="ADDRESS",
              help="With --engine dask: the Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: a local cluster).")
@series_fit_option_decorators
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Model file to write.")
@sign_key_option
def fit(data, detectors, params, config, combine, normalize, weights, columns, exclude, id_columns,
        backbone, image_shape, contamination, seed, device, verbose, sample, engine, scheduler, time_column, window,
        stride, fold, gaps, output, sign_key_file):
    """Fit a detector, or an ensemble of several, on DATA and save it to a model file.

    Several --detector options with --combine build an ensemble saved as one model
    file; each --param then names its detector (-p toll.lam=0.5), and
    -p ensemble.KEY=VALUE sets the ensemble's own parameters (e.g. ensemble.n_jobs=3).

    \b
    Examples:
      adscore fit --detector toll data.csv -o toll.adscore
      adscore fit -d ae -p epochs=100 -p hidden_dims=[128,64] --exclude label data.csv -o ae.adscore
      cat data.csv | adscore fit -d iforest -p n_estimators=300 - -o forest.adscore
      adscore fit -d toll -d iforest -d ecod --combine aom -p toll.lam=0.5 data.csv -o ens.adscore
      adscore fit -d ae --sample 100000 --seed 0 big.parquet -o ae.adscore
      adscore fit -d toll -d iforest --combine mean --engine dask --scheduler tcp://host:8786 data.csv -o ens.adscore
      adscore fit -d toll --backbone conv images.npz -o toll.adscore        # (N,H,W[,C]) images
      adscore fit -d toll --backbone conv --image-shape 1,28,28 --exclude label pixels.csv -o toll.adscore
      adscore fit -d vrae --time-column ts --window 64 --stride 1 series.csv -o vrae.adscore

    DATA may also hold images: a .npy/.npz array or a directory of PNG/JPEG files
    (one image per row, its pixels the features; README, "Images").

    Series mode (--window): DATA is one series (its value columns, aligned) and the
    detector is fitted on its sliding windows; the window settings are saved in the
    model, and `adscore score` then gives one score per time point.
    """
    from ..data import read_training_table
    from ..images import is_image_source, parse_image_shape
    from ..outputs import check_output_path
    from ..persistence import save_detector

    if output == "-":
        raise ParameterError("a model is a binary file, not a stream: give -o MODEL.adscore")
    check_output_path(output, inputs=[data, config, sign_key_file])
    if scheduler is not None and engine != "dask":
        raise ParameterError("--scheduler is for --engine dask: add --engine dask, or drop --scheduler")
    if engine == "dask":
        from ..dask import require_dask

        require_dask()
    key = signing_key(sign_key_file)
    settings = read_config(config) if config else {}
    names = list(detectors) or ([settings["detector"]] if "detector" in settings else [])
    if not names:
        raise ParameterError("choose a detector with --detector NAME (`adscore plugins` lists them)")
    merged = {**settings.get("params", {}), **parse_params(params)}
    shape = parse_image_shape(image_shape) if image_shape is not None else None
    if backbone is not None:
        if len(names) > 1:
            raise ParameterError("--backbone sets one detector's layers; in an ensemble give it per member, "
                                 f"e.g. -p {names[0]}.backbone={backbone}")
        merged["backbone"] = backbone
    if sample is not None and is_image_source(data):
        raise ParameterError("--sample draws rows from CSV or Parquet files; image data are read whole: drop --sample")
    if len(names) > 1 or combine or normalize or weights:
        name, detector = _build_ensemble(names, merged, combine, normalize, weights, seed, device,
                                         contamination, verbose)
    else:
        if verbose:
            merged.setdefault("verbose", True)
        name, detector = build_detector(names[0], merged, seed, device, contamination)
    if check_series_fit(window, time_column, sample, engine):
        seconds = fit_series_from_file(data, name, detector, columns, exclude, id_columns, time_column, window,
                                       stride, fold, gaps, fit_detector, echo_err)
        save_detector(detector, output, signing_key=key)
        echo_err(f"fitted in {seconds:.2f}s; threshold {detector.threshold_:.6g} flags "
                 f"{int(np.sum(detector.labels_))} of {len(detector.labels_)} training windows, point threshold "
                 f"{detector.series_windows_.point_scale[1]:.6g} ({detector.series_windows_.fold} fold); "
                 f"saved {output}")
        return
    if engine == "dask" and name != "ensemble":
        raise ParameterError("--engine dask fits the members of an ensemble in parallel: give several "
                             "--detector options with --combine, or drop --engine dask")
    sampled = None
    if sample is None:
        table = read_training_table(data, columns, exclude, id_columns, image_shape=shape)
        if table.image_shape is None and is_image_source(data):
            _infer_image_shape(detector, table)
        X, feature_names = table.X, table.feature_names
        _give_image_shape(detector, table.image_shape)
        what = (f"images of {'x'.join(map(str, table.image_shape))} (C x H x W)" if table.image_shape
                else f"rows x {X.shape[1]} features")
        echo_err(f"fitting {name} on {X.shape[0]} {what} ...")
    else:
        from ..streaming import sample_file

        X, feature_names, sampled = sample_file(data, sample, seed, columns, exclude, id_columns, verbose)
        echo_err(f"fitting {name} on a random sample of {sampled['rows']} of {sampled['of']} rows x "
                 f"{X.shape[1]} features (seed {sampled['seed']}) ...")
    if engine == "dask":
        from ..dask import joblib_on_dask

        if not any(k.strip().lower() == "ensemble.n_jobs" for k in merged):
            detector.n_jobs = -1  # every member at once, as far as the cluster's threads go
        with joblib_on_dask(scheduler, note=echo_err):
            started = time.perf_counter()  # the fit, not the cluster's start
            fit_detector(name, detector, X)
    else:
        started = time.perf_counter()
        fit_detector(name, detector, X)
    seconds = time.perf_counter() - started
    detector.feature_names_in_ = np.asarray(feature_names, dtype=object)
    if sampled is not None:
        detector.fit_sample_ = sampled
    save_detector(detector, output, signing_key=key)
    flagged = int(np.sum(detector.labels_))
    echo_err(f"fitted in {seconds:.2f}s; threshold {detector.threshold_:.6g} flags {flagged} of "
             f"{len(detector.labels_)} training rows; saved {output}")
    if sampled is not None and sampled["rows"] < sampled["of"]:
        echo_err(f"fitted on a random sample of {sampled['rows']} of {sampled['of']} rows "
                 f"(seed {sampled['seed']})")
    elif sampled is not None:
        echo_err(f"fitted on all {sampled['of']} rows: --sample {sample} is not smaller than the data")


def _infer_image_shape(detector, table) -> None:
    """Flat rows of an array fitted with an image backbone: the inferred square image, its pixel names."""
    from ..backbones_image import image_shape, is_image_backbone
    from ..images import pixel_names

    if is_image_backbone(getattr(detector, "backbone", None)):
        table.image_shape = image_shape(detector, table.X.shape[1])
        table.feature_names = pixel_names(table.image_shape)


def _give_image_shape(detector, shape) -> None:
    """An image backbone without ``input_shape`` takes the shape of the images it is fitted on."""
    from ..backbones_image import is_image_backbone

    if shape is None or getattr(detector, "input_shape", "absent") is not None:
        return
    if is_image_backbone(getattr(detector, "backbone", None)):
        detector.set_params(input_shape=tuple(shape))
        detector.check_params()


def _build_ensemble(names, params, combine, normalize, weights, seed, device, contamination, verbose):
    """An Ensemble from `fit` options; params are prefixed with their detector's name (or `ensemble.`)."""
    from ..registry import get_registry

    if len(names) < 2:
        raise ParameterError("--combine, --normalize and --weights build an ensemble: give two or more "
                             "--detector options")
    if combine is None:
        raise ParameterError("several --detector options build an ensemble: choose how to combine their "
                             "scores with --combine mean|max|median|aom|moa|weighted")
    registry = get_registry()
    members = [registry.resolve(n).name for n in names]
    member_params = {m: {} for m in members}
    ensemble_params = {}
    for key, value in params.items():
        prefix, dot, param = key.partition(".")
        if not dot or not param:
            raise ParameterError(f"with several detectors, prefix each --param with its detector, e.g. "
                                 f"--param {members[0]}.{key}=...; got {key!r}")
        if prefix.strip().lower() == "ensemble":
            ensemble_params[param] = value
            continue
        target = registry.resolve(prefix).name
        if target not in member_params:
            raise ParameterError(f"--param {key}: {prefix!r} is not one of the detectors ({', '.join(members)})")
        member_params[target][param] = value
    for member in members:
        accepted = registry.resolve(member).parameters()
        if device is not None and "device" in accepted:
            member_params[member].setdefault("device", device)
        if verbose and "verbose" in accepted:
            member_params[member].setdefault("verbose", True)
    if device is not None and not any("device" in registry.resolve(m).parameters() for m in members):
        raise ParameterError("--device applies to autoencoder detectors, and no member is one")
    if weights is not None:
        try:
            ensemble_params["weights"] = [float(w) for w in weights.split(",")]
        except ValueError:
            raise ParameterError(f"--weights expects comma-separated numbers, got {weights!r}") from None
    ensemble_params.update(combine=combine, detectors=tuple(members),
                           detector_params={m: p for m, p in member_params.items() if p})
    if normalize:
        ensemble_params["normalize"] = normalize
    if seed is not None:
        ensemble_params.setdefault("random_state", seed)
    if contamination is not None:
        ensemble_params.setdefault("contamination", contamination)
    detector = registry.make("ensemble", **ensemble_params)
    detector.check_params()
    return "ensemble", detector


