"""Hook specifications of the ``adscore`` plugin system.

A plugin is a module (or object) that implements some of these hooks with the
:data:`pyod_ae_ext.hookimpl` marker and is announced in its distribution's
``pyproject.toml`` under the ``adscore`` entry-point group::

    [project.entry-points.adscore]
    my_detectors = "my_package.adscore_plugin"

The detectors shipped with pyod-ae-ext are registered exactly the same way.
"""
import pluggy

PROJECT_NAME = "adscore"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_detectors(register):
    """Register anomaly detectors.

    Call ``register(name, cls, summary, aliases=())`` once per detector:

    name : str
        Lower-case name used on the command line (``adscore fit --detector name``)
        and by :func:`pyod_ae_ext.make_detector`.
    cls : type or str
        A subclass of :class:`pyod.models.base.BaseDetector`, constructible with
        keyword arguments only (scikit-learn conventions); or its ``"module:Class"``
        path, imported only when the detector is first built. A path keeps
        ``adscore --help`` and ``adscore plugins`` fast when the class pulls in heavy
        dependencies: put the hook in a light module, the class in another::

            @hookimpl
            def register_detectors(register):
                register("my-ae", "my_package.models:MyAE", "My autoencoder")
    summary : str
        One line shown by ``adscore plugins``.
    aliases : iterable of str, optional
        Other names for the same detector.

    Two plugins registering the same name or alias is an error naming both.
    """


@hookspec
def register_commands(cli):
    """Add commands to the ``adscore`` command line.

    ``cli`` is the top-level :class:`click.Group`; call ``cli.add_command(...)``
    or use ``@cli.command()`` to attach new sub-commands. The built-in commands are
    added through this hook too (:mod:`pyod_ae_ext.cli.builtin`), the first time the
    group lists or looks up its commands.
    """
