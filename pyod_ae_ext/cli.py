"""The ``adscore`` command line."""
from __future__ import annotations

import ast
import json
import sys
import time
import warnings
from importlib import resources

import click
import numpy as np

from . import __version__
from .errors import AdscoreError, ParameterError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def echo_err(message: str) -> None:
    click.echo(message, err=True)


class AdscoreGroup(click.Group):
    """A click group that turns user errors into one line and exit status 2.

    Commands contributed by plugins (the ``register_commands`` hook) are added the
    first time the group lists or looks up its commands.
    """

    _plugin_commands_loaded = False

    def _load_plugin_commands(self):
        if not self._plugin_commands_loaded:
            type(self)._plugin_commands_loaded = True
            from .registry import get_registry

            get_registry().plugin_manager.hook.register_commands(cli=self)

    def list_commands(self, ctx):
        self._load_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx, cmd_name):
        self._load_plugin_commands()
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except AdscoreError as exc:
            if ctx.meta.get("adscore.debug"):
                raise
            echo_err(f"Error: {exc}")
            ctx.exit(2)
        except KeyboardInterrupt:
            echo_err("Aborted.")
            ctx.exit(130)


@click.group(cls=AdscoreGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="adscore")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx, debug):
    """Fit, score and inspect anomaly detectors on tabular data.

    \b
    A first session:
      adscore example -o example.csv                       # a small labelled data set
      adscore fit --detector toll --id-column id --exclude label example.csv -o toll.adscore
      adscore score -m toll.adscore example.csv --top 10   # CSV on stdout
      adscore plugins                                      # every detector you can --detector

    Data are CSV files with a header row, or Parquet; `-` reads standard input.
    Models are single files of JSON and tensors that never run code when loaded.
    """
    ctx.meta["adscore.debug"] = debug


# --------------------------------------------------------------------------
# parameters


def parse_value(text: str):
    """A --param value: JSON or a Python literal (numbers, true/false, None, lists), else a string."""
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return text


def parse_params(pairs) -> dict:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"--param expects KEY=VALUE, got {pair!r} (e.g. --param lam=0.5)")
        params[key.strip()] = parse_value(value.strip())
    return params


def read_config(path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib
    try:
        with open(path, "rb") as handle:
            config = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ParameterError(f"cannot read config {path}: {exc}") from None
    unknown = set(config) - {"detector", "params"}
    if unknown:
        raise ParameterError(f"config {path}: unknown key(s) {', '.join(sorted(unknown))}; "
                             "expected `detector = \"name\"` and a [params] table")
    if not isinstance(config.get("params", {}), dict):
        raise ParameterError(f"config {path}: `params` must be a table")
    return config


def build_detector(name, params, seed=None, device=None, contamination=None):
    from .registry import get_registry

    registry = get_registry()
    spec = registry.resolve(name)
    accepted = spec.parameters()
    for key, value in (("random_state", seed), ("device", device), ("contamination", contamination)):
        if value is None:
            continue
        if key not in accepted:
            if key != "random_state":
                raise ParameterError(f"detector {spec.name!r} has no {key!r} parameter")
            continue
        params.setdefault(key, value)
    detector = registry.make(spec.name, **params)
    if hasattr(detector, "check_params"):
        detector.check_params()
    return spec.name, detector


def fit_detector(name, detector, X):
    try:
        detector.fit(X)
    except AdscoreError:
        raise
    except (ValueError, TypeError) as exc:  # PyOD/sklearn parameter validation
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ParameterError(f"detector {name!r} could not be fitted: {message}") from exc
    return detector


# --------------------------------------------------------------------------
# commands

_data_options = [
    click.option("--columns", multiple=True, metavar="A,B,...",
                 help="Use only these feature columns (repeat or comma-separate)."),
    click.option("--exclude", multiple=True, metavar="A,B,...", help="Columns that are not features."),
    click.option("--id-column", "id_columns", multiple=True, metavar="NAME",
                 help="Identifier column(s): never features, copied to score output."),
]


def data_options(func):
    for option in reversed(_data_options):
        func = option(func)
    return func


sign_key_option = click.option(
    "--sign-key-file", type=click.Path(dir_okay=False), metavar="FILE",
    help="Shared secret for HMAC-signed model files (default: $ADSCORE_SIGNING_KEY). "
         "When a key is set, models are signed on save and unsigned or re-signed files are refused.")


def signing_key(key_file):
    """The key from --sign-key-file, or None so that persistence falls back to $ADSCORE_SIGNING_KEY."""
    if key_file is None:
        return None
    from .persistence import read_signing_key_file

    return read_signing_key_file(key_file)


def load_model(model, key_file=None):
    """Load a model file given on the command line, verifying its signature when a key is set."""
    from .persistence import load_detector

    return load_detector(model, signing_key=signing_key(key_file))


@cli.command()
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
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Model file to write.")
@sign_key_option
def fit(data, detectors, params, config, combine, normalize, weights, columns, exclude, id_columns,
        contamination, seed, device, verbose, sample, engine, scheduler, output, sign_key_file):
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
    """
    from .data import read_frame, select_training_table
    from .outputs import check_output_path
    from .persistence import save_detector

    if output == "-":
        raise ParameterError("a model is a binary file, not a stream: give -o MODEL.adscore")
    check_output_path(output, inputs=[data, config, sign_key_file])
    if scheduler is not None and engine != "dask":
        raise ParameterError("--scheduler is for --engine dask: add --engine dask, or drop --scheduler")
    if engine == "dask":
        from .dask import require_dask

        require_dask()
    key = signing_key(sign_key_file)
    settings = read_config(config) if config else {}
    names = list(detectors) or ([settings["detector"]] if "detector" in settings else [])
    if not names:
        raise ParameterError("choose a detector with --detector NAME (`adscore plugins` lists them)")
    merged = {**settings.get("params", {}), **parse_params(params)}
    if len(names) > 1 or combine or normalize or weights:
        name, detector = _build_ensemble(names, merged, combine, normalize, weights, seed, device,
                                         contamination, verbose)
    else:
        if verbose:
            merged.setdefault("verbose", True)
        name, detector = build_detector(names[0], merged, seed, device, contamination)
    if engine == "dask" and name != "ensemble":
        raise ParameterError("--engine dask fits the members of an ensemble in parallel: give several "
                             "--detector options with --combine, or drop --engine dask")
    sampled = None
    if sample is None:
        table = select_training_table(read_frame(data), columns, exclude, id_columns)
        X, feature_names = table.X, table.feature_names
        echo_err(f"fitting {name} on {X.shape[0]} rows x {X.shape[1]} features ...")
    else:
        from .streaming import sample_file

        X, feature_names, sampled = sample_file(data, sample, seed, columns, exclude, id_columns, verbose)
        echo_err(f"fitting {name} on a random sample of {sampled['rows']} of {sampled['of']} rows x "
                 f"{X.shape[1]} features (seed {sampled['seed']}) ...")
    if engine == "dask":
        from .dask import joblib_on_dask

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


def _build_ensemble(names, params, combine, normalize, weights, seed, device, contamination, verbose):
    """An Ensemble from `fit` options; params are prefixed with their detector's name (or `ensemble.`)."""
    from .registry import get_registry

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


@cli.command()
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
    """
    from . import streaming
    from .outputs import check_output_path

    inputs = [data, model, sign_key_file]
    if engine == "dask":
        import glob

        inputs += glob.glob(data)
    check_output_path(output, inputs=inputs)
    fmt = _output_format(output, fmt)
    if scheduler is not None and engine != "dask":
        raise ParameterError("--scheduler is for --engine dask: add --engine dask, or drop --scheduler")
    if engine == "dask":
        from .dask import require_dask

        require_dask()
    detector = load_model(model, sign_key_file)
    features = _model_features(detector)
    if engine == "dask":
        from .dask import scored_files

        with scored_files(detector, data, features, id_columns, scheduler, note=echo_err) as scored:
            streaming.write_results(scored, output, fmt, detector, top, streaming.progress_for(None, verbose))
        return
    with streaming.open_source(data) as source:
        ids = streaming.scoring_columns(source.columns, features, id_columns, note=echo_err)
        batches = streaming.prefetch(streaming.iter_batches(source, features, ids, batch_rows))
        scored = streaming.score_batches(detector, batches, note=echo_err)
        streaming.write_results(scored, output, fmt, detector, top, streaming.progress_for(source, verbose))


def _model_features(detector):
    names = getattr(detector, "feature_names_in_", None)
    if names is None:
        raise AdscoreError("the model has no feature names; fit it with `adscore fit`")
    return [str(n) for n in names]


def _output_format(output, fmt=None) -> str:
    """The table format for ``output``: ``fmt`` if given, else from the file extension, else CSV."""
    if fmt is None:
        suffix = str(output).lower().rsplit(".", 1)[-1] if output != "-" else ""
        fmt = {"json": "json", "parquet": "parquet", "pq": "parquet"}.get(suffix, "csv")
    if fmt == "parquet" and output == "-":
        raise ParameterError("Parquet output needs a file: use -o FILE.parquet")
    return fmt


def write_stdout(payload: bytes) -> None:
    try:
        sys.stdout.buffer.write(payload)
        sys.stdout.flush()
    except OSError as exc:
        raise AdscoreError(f"cannot write to standard output: {exc.strerror or exc}") from None


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(as_json):
    """List installed plugins and the detectors they provide."""
    from .registry import get_registry

    registry = get_registry()
    detectors = registry.detectors
    rows = []
    for spec in detectors.values():
        info = registry.plugins.get(spec.plugin)
        rows.append({
            "detector": spec.name,
            "aliases": list(spec.aliases),
            "plugin": spec.plugin,
            "distribution": info.distribution if info else "",
            "version": info.version if info else "",
            "summary": spec.summary,
            "class": f"{spec.cls.__module__}.{spec.cls.__qualname__}",
        })
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for plugin_name, info in sorted(registry.plugins.items()):
        source = f"{info.distribution} {info.version}".strip()
        click.echo(f"{plugin_name}" + (f"  ({source})" if source else ""))
        for row in rows:
            if row["plugin"] == plugin_name:
                alias = f" [{', '.join(row['aliases'])}]" if row["aliases"] else ""
                click.echo(f"  {row['detector']:<14}{alias}  {row['summary']}")


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the full metadata as JSON.")
@sign_key_option
def info(model, as_json, sign_key_file):
    """Show what a model file holds (detector, parameters, features, threshold, versions).

    The file's integrity is checked first, and its signature when a key is set
    (--sign-key-file or $ADSCORE_SIGNING_KEY); nothing in it is run or imported.
    """
    from .persistence import load_detector, read_metadata

    key = signing_key(sign_key_file)
    meta = read_metadata(model, signing_key=key)
    load_detector(model, signing_key=key)  # every check a load makes: info never vouches for a bad file
    if as_json:
        click.echo(json.dumps(meta, indent=2, sort_keys=True))
        return
    features = meta.get("feature_names") or []
    click.echo(f"detector:   {meta['detector']}")
    click.echo(f"threshold:  {meta['threshold']:.6g}")
    click.echo(f"features:   {len(features)} ({', '.join(features[:8])}{' ...' if len(features) > 8 else ''})")
    click.echo("versions:   " + ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items()))
    if meta.get("signature_verified"):
        signature = "signed, verified with the configured key"
    elif meta.get("signed"):
        signature = "signed, not verified (no key set: --sign-key-file or $ADSCORE_SIGNING_KEY)"
    else:
        signature = "unsigned"
    click.echo(f"signature:  {signature}")
    click.echo(f"sha256:     {meta.get('content_sha256', '')} (detects damage, not deliberate changes)")
    click.echo("parameters:")
    for key, value in sorted(meta.get("params", {}).items()):
        if isinstance(value, dict) and set(value) == {"__tuple__"}:
            value = tuple(value["__tuple__"])
        click.echo(f"  {key} = {value!r}")


EXAMPLE_FILE = "breast_cancer.csv"


def example_bytes() -> bytes:
    return resources.files("pyod_ae_ext").joinpath("data", EXAMPLE_FILE).read_bytes()


@cli.command()
@click.option("-o", "--output", default="-", show_default=True, help="Where to write the CSV; - for stdout.")
def example(output):
    """Write the embedded example data set (CSV).

    369 breast-tissue samples from scikit-learn's copy of the Wisconsin diagnostic
    data: every benign case plus 12 malignant ones (label = 1), 30 numeric features,
    an `id` and a `label` column.
    """
    from .outputs import check_output_path, write_output

    check_output_path(output)
    payload = example_bytes()
    if output == "-":
        write_stdout(payload)
    else:
        write_output(output, payload)
        echo_err(f"wrote {output}")


@cli.command()
@click.option("--detector", "-d", default="toll", show_default=True, help="Detector to demonstrate.")
@click.option("--top", default=10, show_default=True, help="How many top anomalies to show.")
def demo(detector, top):
    """Fit a detector on the embedded example and show the top anomalies.

    Equivalent to `adscore example`, `adscore fit` and `adscore score --top` in one go,
    with the ROC-AUC against the example's labels.
    """
    import io

    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from .data import select_training_table

    frame = pd.read_csv(io.BytesIO(example_bytes()))
    table = select_training_table(frame, id_columns=["id"], label_column="label")
    name, model = build_detector(detector, {}, seed=0)
    echo_err(f"fitting {name} on the embedded example ({table.X.shape[0]} rows x {table.X.shape[1]} "
             f"features, {int(table.labels.sum())} labelled anomalies) ...")
    started = time.perf_counter()
    fit_detector(name, model, table.X)
    seconds = time.perf_counter() - started
    scores = model.decision_scores_
    order = np.argsort(-scores, kind="stable")[:top]
    shown = pd.DataFrame({"id": table.ids["id"].to_numpy()[order], "score": scores[order],
                          "flagged": model.labels_[order], "true_label": table.labels[order]})
    click.echo(f"top {len(order)} anomalies by {name} score (fit {seconds:.2f}s):")
    click.echo(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    hits = int(table.labels[order].sum())
    click.echo(f"{hits} of the top {len(order)} are labelled anomalies; "
               f"ROC-AUC {roc_auc_score(table.labels, scores):.3f}")


# --------------------------------------------------------------------------
# entry point


def _format_warning(message, category, filename, lineno, line=None):
    return f"warning: {message}\n"


def main(argv=None):
    """Console-script entry point."""
    warnings.formatwarning = _format_warning
    return cli.main(args=argv, prog_name="adscore")


from . import cli_benchmark  # noqa: E402,F401  (registers benchmark)


from . import cli_analysis  # noqa: E402,F401  (registers explain/threshold/evaluate)
