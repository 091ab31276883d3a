"""``adscore fit``: fit a detector or an ensemble and save it."""
from __future__ import annotations

import contextlib
import time
from datetime import datetime, timezone

import click

from ..columns import split_names
from ..errors import ParameterError
from ..params import Assignment, distribute, parse_assignments
from ._config import config_option, params_with_config
from ._progress import watched_fit
from .series import check_series_fit, fit_series_from_file, series_fit_option_decorators
from ._common import (build_detector, complete_detector, data_options, echo_err, fit_detector, same_detector,
                      sign_key_option, signing_key)


@click.command()
@click.argument("data")
@click.option("--detector", "-d", "detectors", multiple=True, metavar="NAME", shell_complete=complete_detector,
              help="Detector to fit: a name from `adscore plugins` or a PyOD class path "
                   "(pyod.models.knn.KNN). Repeat for an ensemble.")
@click.option("--param", "-p", "params", multiple=True, metavar="[DETECTOR.]KEY=VALUE", callback=params_with_config,
              help="Detector parameter: KEY=VALUE for every detector that has it, DETECTOR.KEY=VALUE for "
                   "one (ensemble.KEY for the ensemble's own), e.g. -p lam=0.5 -p hidden_dims=[64,32]. "
                   "`adscore params NAME` lists them. Repeatable.")
@config_option
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
@click.option("--label-column", metavar="NAME",
              help="0/1 label column: never a feature; `evaluate` and `threshold` use it without asking.")
@click.option("--contamination", type=float,
              help="Expected anomaly fraction (sets the threshold) [default: the detector's, 0.1 for PyOD's; "
                   "0.01 in series mode].")
@click.option("--seed", type=int, help="random_state, for reproducible fits.")
@click.option("--device", help="auto, cpu, cuda or cuda:N (autoencoder detectors).")
@click.option("--verbose", "-v", is_flag=True,
              help="Also print each epoch's loss (and validation loss) on stderr, in pipes too.")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress bar and no notes on stderr (the bar is shown only on a terminal anyway).")
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
        backbone, image_shape, label_column, contamination, seed, device, verbose, quiet, sample, engine, scheduler,
        time_column, window, stride, fold, gaps, output, sign_key_file):
    """Fit a detector, or an ensemble of several, on DATA and save it to a model file.

    The id (--id-column), excluded (--exclude) and label (--label-column) columns are
    remembered in the model file: score, explain, evaluate and threshold reuse them.

    Several --detector options with --combine build an ensemble saved as one model
    file; -p KEY=VALUE then sets KEY on every member that has it, -p toll.lam=0.5 on
    one member, and -p ensemble.KEY=VALUE the ensemble's own parameters (e.g.
    ensemble.n_jobs=3).

    \b
    Examples:
      adscore fit --detector toll --id-column id --label-column label data.csv -o toll.adscore
      adscore fit -d ae -p epochs=100 -p hidden_dims=[128,64] --exclude label data.csv -o ae.adscore
      adscore fit -d pyod.models.knn.KNN -p n_neighbors=20 --exclude id data.csv -o knn.adscore
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
    model, and `adscore score` then gives one score per time point. Anomalies in a
    stream are rare: unless --contamination (or -p contamination=) says otherwise,
    the threshold flags 1% of the training series' points.
    """
    import numpy as np

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
    assignments = parse_assignments(params)
    shape = parse_image_shape(image_shape) if image_shape is not None else None
    if backbone is not None:
        if len(detectors) > 1:
            raise ParameterError("--backbone sets one detector's layers; in an ensemble give it per member, "
                                 f"e.g. -p {detectors[0]}.backbone={backbone}")
        assignments.append(Assignment(None, "backbone", backbone, f"backbone={backbone}"))
    if sample is not None and is_image_source(data):
        raise ParameterError("--sample draws rows from CSV or Parquet files; image data are read whole: drop --sample")
    if contamination is None and window is not None:  # series mode: alarms are rare events
        from ..windows import SERIES_CONTAMINATION

        default_contamination = SERIES_CONTAMINATION
    else:
        default_contamination = None
    name, detector = _detector_from_options(detectors, assignments, combine, normalize, weights, seed, device,
                                            contamination, default_contamination)
    note = (lambda message: None) if quiet else echo_err
    if check_series_fit(window, time_column, sample, engine):
        seconds, n_points = fit_series_from_file(data, name, detector, columns, exclude, id_columns, label_column,
                                                 time_column, window, stride, fold, gaps, fit_detector, note)
        detector.fit_info_ = fit_record(detector, n_points, seconds, exclude, id_columns, label_column)
        save_detector(detector, output, signing_key=key)
        note(f"fitted in {seconds:.2f}s; threshold {detector.threshold_:.6g} flags "
             f"{int(np.sum(detector.labels_))} of {len(detector.labels_)} training windows, point threshold "
             f"{detector.series_windows_.point_scale[1]:.6g} ({detector.series_windows_.fold} fold); "
             f"saved {output}")
        return
    if engine == "dask" and name != "ensemble":
        raise ParameterError("--engine dask fits the members of an ensemble in parallel: give several "
                             "--detector options with --combine, or drop --engine dask")
    X, feature_names, sampled = _training_data(data, name, detector, sample, seed, columns, exclude, id_columns,
                                               label_column, shape, verbose and not quiet, note)
    members = list(detector.detectors) if name == "ensemble" else None
    with _fitting_engine(engine, scheduler, detector, assignments, note), watched_fit(quiet, verbose, members):
        started = time.perf_counter()  # the fit, not a cluster's start
        fit_detector(name, detector, X)
    seconds = time.perf_counter() - started
    detector.feature_names_in_ = np.asarray(feature_names, dtype=object)
    if sampled is not None:
        detector.fit_sample_ = sampled
    detector.fit_info_ = fit_record(detector, X.shape[0], seconds, exclude, id_columns, label_column)
    save_detector(detector, output, signing_key=key)
    note(f"fitted in {seconds:.2f}s; threshold {detector.threshold_:.6g} flags {int(np.sum(detector.labels_))} "
         f"of {len(detector.labels_)} training rows; saved {output}")
    if sampled is not None and sampled["rows"] < sampled["of"]:
        note(f"fitted on a random sample of {sampled['rows']} of {sampled['of']} rows (seed {sampled['seed']})")
    elif sampled is not None:
        note(f"fitted on all {sampled['of']} rows: --sample {sample} is not smaller than the data")


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


def _detector_from_options(names, assignments, combine, normalize, weights, seed, device, contamination,
                           default_contamination=None):
    """(registered name, unfitted detector): one detector, or an ensemble of several.

    ``default_contamination`` applies where neither --contamination nor -p sets one.
    """
    if not names:
        raise ParameterError("choose a detector with --detector NAME (`adscore plugins` lists them)")
    if len(names) > 1 or combine or normalize or weights:
        return _build_ensemble(list(names), assignments, combine, normalize, weights, seed, device,
                               contamination if contamination is not None else default_contamination)
    saveable(names[0])
    own = distribute(assignments, list(names), {names[0]: None}, same_detector)[names[0]]
    return build_detector(names[0], own, seed, device, contamination, default_contamination)


def _training_data(data, name, detector, sample, seed, columns, exclude, id_columns, label_column, image_shape,
                   verbose, note):
    """(X, feature names, sample description or None) from DATA, all of it or a --sample of it.

    DATA may hold images (a .npy/.npz array or a folder): an image backbone then takes
    their shape.
    """
    from ..data import read_training_table
    from ..images import is_image_source

    if sample is None:
        table = read_training_table(data, columns, exclude, id_columns, label_column=label_column,
                                    image_shape=image_shape)
        if table.image_shape is None and is_image_source(data):
            _infer_image_shape(detector, table)
        _give_image_shape(detector, table.image_shape)
        what = (f"images of {'x'.join(map(str, table.image_shape))} (C x H x W)" if table.image_shape
                else f"rows x {table.X.shape[1]} features")
        note(f"fitting {name} on {table.X.shape[0]} {what} ...")
        return table.X, table.feature_names, None
    from ..streaming import sample_file

    not_features = [*exclude, *([label_column] if label_column else [])]
    X, feature_names, sampled = sample_file(data, sample, seed, columns, not_features, id_columns, verbose)
    note(f"fitting {name} on a random sample of {sampled['rows']} of {sampled['of']} rows x {X.shape[1]} "
         f"features (seed {sampled['seed']}) ...")
    return X, feature_names, sampled


def _fitting_engine(engine, scheduler, detector, assignments, note):
    """Where the fit runs: here, or (ensemble members) on a Dask cluster through joblib."""
    if engine != "dask":
        return contextlib.nullcontext()
    from ..dask import joblib_on_dask

    if not any(a.target and a.target.strip().lower() == "ensemble" and a.key == "n_jobs" for a in assignments):
        detector.n_jobs = -1  # every member at once, as far as the cluster's threads go
    return joblib_on_dask(scheduler, note=note)


def fit_record(detector, n_rows, seconds, exclude, id_columns, label_column) -> dict:
    """What ``fit_info_`` keeps of a command-line fit, for later commands and ``adscore info``."""
    record = {
        "id_columns": split_names(id_columns),
        "exclude": split_names(exclude),
        "label_column": label_column or None,
        "n_rows": int(n_rows),
        "fitted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "fit_seconds": round(float(seconds), 3),
    }
    contamination = getattr(detector, "contamination", None)
    if isinstance(contamination, (int, float)) and not isinstance(contamination, bool):
        record["threshold_source"] = {"method": "contamination", "contamination": float(contamination)}
    return record


def saveable(name) -> str:
    """The registered name of --detector ``name``: only registered detectors can be saved as models."""
    from ..registry import find_detector

    found = find_detector(name)
    if found.registered is None:
        raise ParameterError(f"{name} is not registered with adscore, so a model of it cannot be saved; "
                             "`adscore benchmark` compares any PyOD class, `adscore plugins` lists what fit takes")
    return found.registered


def _build_ensemble(names, assignments, combine, normalize, weights, seed, device, contamination):
    """An Ensemble from `fit` options; --param prefixes name a member or `ensemble`."""
    from ..registry import build_detector as build, get_registry

    if len(names) < 2:
        raise ParameterError("--combine, --normalize and --weights build an ensemble: give two or more "
                             "--detector options")
    if combine is None:
        raise ParameterError("several --detector options build an ensemble: choose how to combine their "
                             "scores with --combine mean|max|median|aom|moa|weighted")
    members = [saveable(n) for n in names]
    registry = get_registry()
    accepted = {m: set(registry.resolve(m).parameters()) for m in members}
    given = distribute(assignments, members, accepted, same_detector, own="ensemble")
    ensemble_params = given.pop("ensemble")
    for member in members:
        if device is not None and "device" in accepted[member]:
            given[member].setdefault("device", device)
    if device is not None and not any("device" in accepted[m] for m in members):
        raise ParameterError("--device applies to autoencoder detectors, and no member is one")
    if weights is not None:
        try:
            ensemble_params["weights"] = [float(w) for w in weights.split(",")]
        except ValueError:
            raise ParameterError(f"--weights expects comma-separated numbers, got {weights!r}") from None
    ensemble_params.update(combine=combine, detectors=tuple(members),
                           detector_params={m: p for m, p in given.items() if p})
    if normalize:
        ensemble_params["normalize"] = normalize
    detector = build("ensemble", ensemble_params, defaults={"random_state": seed, "contamination": contamination})
    return "ensemble", detector
