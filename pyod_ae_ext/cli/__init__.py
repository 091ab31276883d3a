"""The ``adscore`` command line.

One module per command group (:mod:`.fit`, :mod:`.score`, :mod:`.inspect`,
:mod:`.analysis`, :mod:`.benchmark`, :mod:`.demo`); :mod:`.builtin` attaches them to
the :data:`cli` group through the ``register_commands`` hook that third-party plugins
implement too (see :mod:`pyod_ae_ext.hookspecs`).
"""
from __future__ import annotations

import warnings

import click

from .. import __version__
from ..errors import AdscoreError
from ._common import echo_err

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

BUILTIN_COMMANDS_PLUGIN = "adscore-builtin-commands"


class AdscoreGroup(click.Group):
    """A click group that turns user errors into one line and exit status 2.

    Commands, built-in and from plugins alike, come from the ``register_commands``
    hook and are added the first time the group lists or looks up its commands.
    """

    _plugin_commands_loaded = False

    def _load_plugin_commands(self):
        if not self._plugin_commands_loaded:
            type(self)._plugin_commands_loaded = True
            from ..registry import get_registry
            from . import builtin

            manager = get_registry().plugin_manager
            if not manager.is_registered(builtin):
                manager.register(builtin, name=BUILTIN_COMMANDS_PLUGIN)
            manager.hook.register_commands(cli=self)

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
@click.version_option(__version__, "-V", "--version", prog_name="adscore")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx, debug):
    """Fit, score and inspect anomaly detectors on tabular data.

    \b
    A first session:
      adscore example -o example.csv                       # a small labelled data set
      adscore fit --detector toll --id-column id --label-column label example.csv -o toll.adscore
      adscore score -m toll.adscore example.csv --top 10   # ids and scores, CSV on stdout
      adscore evaluate -m toll.adscore example.csv         # the model remembers id and label
      adscore plugins                                      # every detector you can --detector
      adscore params toll                                  # its parameters and what they mean

    Data are CSV files with a header row, or Parquet; `-` reads standard input.
    Models are single files of JSON and tensors that never run code when loaded.
    Shell completion: eval "$(_ADSCORE_COMPLETE=bash_source adscore)" (or zsh_source).
    """
    ctx.meta["adscore.debug"] = debug


# --------------------------------------------------------------------------
# entry point


def _format_warning(message, category, filename, lineno, line=None):
    return f"warning: {message}\n"


def main(argv=None):
    """Console-script entry point."""
    warnings.formatwarning = _format_warning
    return cli.main(args=argv, prog_name="adscore")
