"""``adscore score``: score data with a saved model, streamed in batches."""
from __future__ import annotations

import click

from ..errors import ParameterError
from ._common import echo_err, load_model, model_features, output_format, sign_key_option


@click.command()
@click.argument("data")
@click.option("-m", "--model", required=True, type=click.Path(dir_okay=False), help="Model file from `adscore fit`.")
@click.option("--id-column", "id_columns", multiple=True, metavar="NAME", help="Identifier column(s) to copy.")
@click.option("-o", "--output", default="-", show_default=True,
              help="Output file (.csv, .json or .parquet); - for stdout.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "parquet"]),
              help="Output format (default: from the file extension, else csv).")
@click.option("--top", type=click.IntRange(min=1), help="Only the N highest-scoring rows, highest first.")
@click.option("--batch-rows", type=click.IntRange(min=1), default=65536, show_default=True, metavar="N",
              help="Rows read and scored at a time (memory grows with N, not with DATA).")
@click.option("--engine", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="local: stream DATA through this process; dask: score partitions on a Dask cluster "
                   "(DATA may then be a glob of Parquet or CSV files; needs pyod-ae-ext[dask]).")
@click.option("--scheduler", metavar="ADDRESS",
              help="With --engine dask: the Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: a local cluster).")
@click.option("--verbose", "-v", is_flag=True, help="Show progress on stderr even when it is not a terminal.")
@sign_key_option
def score(data, model, id_columns, output, fmt, top, batch_rows, engine, scheduler, verbose, sign_key_file):
    """Score DATA with a saved model: id columns, score, label, probability.

    A model fitted in series mode (`fit --window`) reads DATA as one series and gives
    one score per time point (the time column first), with its saved window settings.

    The model's feature columns are taken by name (missing ones are an error, extra
    ones are ignored). `label` is 1 where the score exceeds the model's threshold and
    `probability` is PyOD's linear outlier probability.

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
    from ..outputs import check_output_path

    inputs = [data, model, sign_key_file]
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
    detector = load_model(model, sign_key_file)
    if getattr(detector, "series_windows_", None) is not None:
        from .series import score_series_file

        if engine != "local":
            raise ParameterError("a series model scores one series locally: drop --engine dask")
        score_series_file(detector, data, id_columns, output, fmt, top, echo_err)
        return
    features = model_features(detector)
    from ..images import is_image_source

    if is_image_source(data):
        if engine == "dask":
            raise ParameterError("--engine dask scores CSV or Parquet files; score image data with --engine local")
        _score_images(detector, data, features, id_columns, output, fmt, top, verbose)
        return
    if engine == "dask":
        from ..dask import scored_files

        with scored_files(detector, data, features, id_columns, scheduler, note=echo_err) as scored:
            streaming.write_results(scored, output, fmt, detector, top, streaming.progress_for(None, verbose))
        return
    with streaming.open_source(data) as source:
        ids = streaming.scoring_columns(source.columns, features, id_columns, note=echo_err)
        batches = streaming.prefetch(streaming.iter_batches(source, features, ids, batch_rows))
        scored = streaming.score_batches(detector, batches, note=echo_err)
        streaming.write_results(scored, output, fmt, detector, top, streaming.progress_for(source, verbose))




def _score_images(detector, data, features, id_columns, output, fmt, top, verbose):
    """Score a .npy/.npz array or a folder of images (read whole); ids are the file names of a folder."""
    import numpy as np
    import pyarrow as pa

    from .. import streaming
    from ..backbones_image import model_image_shape
    from ..data import read_scoring_table

    table = read_scoring_table(data, features, id_columns, image_shape=model_image_shape(detector))
    scores = np.asarray(detector.decision_function(table.X), dtype=np.float64).ravel()
    ids = pa.Table.from_pandas(table.ids, preserve_index=False) if table.ids is not None else None
    streaming.write_results([streaming.Scored(ids, scores, 0)], output, fmt, detector, top,
                            streaming.progress_for(None, verbose))
