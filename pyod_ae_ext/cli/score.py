"""``adscore score``: score data with a saved model, streamed in batches."""
from __future__ import annotations

import click

from ..columns import split_names
from ..errors import ParameterError
from ._common import (data_options, device_option, echo_err, load_model, model_columns, model_features, output_format,
                      sign_key_option)
from ._config import config_option


@click.command()
@click.argument("data")
@config_option
@click.option("-m", "--model", required=True, type=click.Path(dir_okay=False), help="Model file from `adscore fit`.")
@data_options
@click.option("-o", "--output", default="-", show_default=True,
              help="Output file (.csv, .json or .parquet); - for stdout.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "parquet"]),
              help="Output format (default: from the file extension, else csv).")
@click.option("--top", type=click.IntRange(min=1), help="Only the N highest-scoring rows, highest first.")
@click.option("--probability", "probability_method", type=click.Choice(["linear", "unify"]), default="linear",
              show_default=True,
              help="How PyOD's predict_proba turns a score into the outlier probability: linear = the "
                   "score's place between the lowest (0) and highest (1) training score, clipped; unify = "
                   "Gaussian unification of the training scores (Kriegel et al. 2011), "
                   "erf((score - mean) / (std * sqrt 2)) clipped to [0, 1]. Neither is calibrated.")
@click.option("--score-name", default="anomaly_score", show_default=True, metavar="NAME",
              help="Name of the output score column (higher = more anomalous).")
@click.option("--flag-name", default="is_anomaly", show_default=True, metavar="NAME",
              help="Name of the output 0/1 column: 1 where the score exceeds the model's threshold.")
@click.option("--probability-name", default="anomaly_probability", show_default=True, metavar="NAME",
              help="Name of the output probability column (see --probability).")
@click.option("--batch-rows", type=click.IntRange(min=1), default=65536, show_default=True, metavar="N",
              help="Rows read and scored at a time (memory grows with N, not with DATA).")
@click.option("--engine", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="local: stream DATA through this process; dask: score partitions on a Dask cluster "
                   "(DATA may then be a glob of Parquet or CSV files; needs pyod-ae-ext[dask]).")
@click.option("--scheduler", metavar="ADDRESS",
              help="With --engine dask: the Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: a local cluster).")
@click.option("--verbose", "-v", is_flag=True, help="Show progress on stderr even when it is not a terminal.")
@click.option("--quiet", "-q", is_flag=True, help="No progress and no notes on stderr.")
@device_option
@sign_key_option
def score(data, config, model, columns, exclude, id_columns, output, fmt, top, probability_method, score_name,
          flag_name, probability_name, batch_rows, engine, scheduler, verbose, quiet, device,
          sign_key_file):
    """Score DATA with a saved model: id columns, anomaly_score, is_anomaly, anomaly_probability.

    A model fitted in series mode (`fit --window`) reads DATA as one series and gives
    one score per time point (the time column first), with its saved window settings.

    The model's feature columns are taken by name (missing ones are an error, extra
    ones are ignored). The id columns the model was fitted with are copied to the
    output when DATA has them (--id-column chooses others). `is_anomaly` is 1 where
    the score exceeds the model's threshold; `anomaly_probability` is PyOD's
    predict_proba (see --probability). An output name equal to an id column is an
    error: rename the output with --score-name, --flag-name or --probability-name.

    DATA is read, scored and written in batches of --batch-rows rows, so files larger
    than memory work; CSV may be gzip, zstd, bz2 or lz4 compressed (.csv.gz, .csv.zst).
    An output file appears only when every row is scored (a bad cell anywhere leaves
    none). Progress goes to stderr when it is a terminal, or with -v.

    \b
    Examples:
      adscore score -m toll.adscore new.csv -o scores.csv
      adscore score -m toll.adscore --id-column id --top 20 new.csv
      zcat big.csv.gz | adscore score -m toll.adscore - -o scores.parquet
      adscore score -m toll.adscore --engine dask --scheduler tcp://host:8786 'part-*.parquet' -o s.parquet
      adscore score -m conv.adscore images.npz       # .npy/.npz images, or a folder of PNG/JPEG files

    Image data (a .npy/.npz array, a folder of PNG/JPEG files: its file names become
    the `file` column) are read whole and matched to the model by their shape.
    """
    from .. import streaming
    from ..streaming import OutputColumns
    from ..outputs import check_output_path

    inputs = [data, model, config, sign_key_file]
    if engine == "dask":
        import glob

        inputs += glob.glob(data)
    check_output_path(output, inputs=inputs)
    fmt = output_format(output, fmt)
    if scheduler is not None and engine != "dask":
        raise ParameterError("--scheduler is for --engine dask: add --engine dask, or drop --scheduler")
    if engine == "dask":
        from ..dask import require_dask

        require_dask()
    note = (lambda message: None) if quiet else echo_err
    names = OutputColumns(score_name, flag_name, probability_name, probability_method)
    names.check(split_names(id_columns))
    detector = load_model(model, sign_key_file, device)
    if getattr(detector, "series_windows_", None) is not None:
        from .series import score_series_file

        if engine != "local":
            raise ParameterError("a series model scores one series locally: drop --engine dask")
        score_series_file(detector, data, id_columns, output, fmt, top, note, names)
        return
    features = model_features(detector)
    from ..images import is_image_source

    if is_image_source(data):
        if engine == "dask":
            raise ParameterError("--engine dask scores CSV or Parquet files; score image data with --engine local")
        _score_images(detector, data, features, columns, exclude, id_columns, output, fmt, top, verbose, quiet,
                      names)
        return
    if engine == "dask":
        from ..dask import scored_files

        def columns_for(header):
            chosen = model_columns(detector, header, columns, exclude, id_columns)
            names.check(chosen.id_columns)
            return chosen

        with scored_files(detector, data, features, scheduler=scheduler, note=note,
                          columns_for=columns_for) as scored:
            progress = streaming.progress_for(None, verbose, quiet=quiet)
            streaming.write_results(scored, output, fmt, detector, top, progress, names)
        return
    with streaming.open_source(data) as source:
        chosen = model_columns(detector, source.columns, columns, exclude, id_columns)
        ids = streaming.scoring_columns(source.columns, features, chosen.id_columns, note=note,
                                        known_unused=chosen.known_unused)
        names.check(ids)
        batches = streaming.prefetch(streaming.iter_batches(source, features, ids, batch_rows))
        scored = streaming.score_batches(detector, batches, note=note)
        progress = streaming.progress_for(source, verbose, quiet=quiet)
        streaming.write_results(scored, output, fmt, detector, top, progress, names)


def _score_images(detector, data, features, columns, exclude, id_columns, output, fmt, top, verbose, quiet, names):
    """Score a .npy/.npz array or a folder of images (read whole); ids are the file names of a folder."""
    import numpy as np
    import pyarrow as pa

    from .. import streaming
    from ..backbones_image import model_image_shape
    from ..data import read_scoring_table

    table = read_scoring_table(data, features, id_columns, image_shape=model_image_shape(detector),
                               columns=columns, exclude=exclude)
    scores = np.asarray(detector.decision_function(table.X), dtype=np.float64).ravel()
    ids = pa.Table.from_pandas(table.ids, preserve_index=False) if table.ids is not None else None
    if ids is not None:
        names.check(list(ids.column_names))
    streaming.write_results([streaming.Scored(ids, scores, 0)], output, fmt, detector, top,
                            streaming.progress_for(None, verbose, quiet=quiet), names)
