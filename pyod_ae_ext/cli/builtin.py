"""The built-in ``adscore`` commands, added through the ``register_commands`` hook."""
from ..hookspecs import hookimpl


@hookimpl
def register_commands(cli):
    from . import analysis, benchmark, demo, fit, inspect, report, score

    for command in (fit.fit, score.score, inspect.plugins, inspect.info, analysis.explain,
                    analysis.threshold, analysis.evaluate, report.report, benchmark.benchmark, demo.example,
                    demo.demo):
        cli.add_command(command)
