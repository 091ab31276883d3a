"""Plugin discovery, the detector registry, and the one factory that builds detectors.

Plugins are found through the ``adscore`` entry-point group (see
:mod:`pyod_ae_ext.hookspecs`). A plugin that fails to import is reported as a
warning naming it and skipped; the other plugins keep working.

A plugin may register a detector by its class or, lazily, by a ``"module:Class"``
path: then listing detectors (``adscore plugins``, ``--help``) imports nothing of the
detector's own dependencies, and the class is imported the first time it is built.

:func:`build_detector` is the only place that turns a detector name (registered, an
alias, or a PyOD class path such as ``pyod.models.knn.KNN``) and parameters into a
detector; the command line, :mod:`pyod_ae_ext.ensemble` and
:mod:`pyod_ae_ext.benchmarking` all use it.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
import re
import warnings
from dataclasses import dataclass, field
from importlib.metadata import entry_points

import pluggy

from . import hookspecs
from .errors import AdscoreError, DuplicateDetectorError, ParameterError, UnknownDetectorError

# Required constructor arguments that build_detector fills from the data (PyOD's DeepSVDD).
N_FEATURE_ARGS = ("n_features", "feature_size", "n_features_in", "input_dim")
_CLASS_PATH = re.compile(r"^pyod(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_LAZY_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class PluginLoadWarning(UserWarning):
    """A plugin announced in the ``adscore`` entry-point group could not be imported."""


@dataclass(frozen=True)
class DetectorSpec:
    """What a plugin registered for one detector.

    ``target`` is the class itself or a ``"module:Class"`` path imported on first use
    of :attr:`cls`.
    """

    name: str
    target: object
    summary: str
    aliases: tuple = ()
    plugin: str = ""
    _loaded: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def path(self) -> str:
        """``"module:Class"`` of the detector class, without importing it."""
        if isinstance(self.target, str):
            return self.target
        return f"{self.target.__module__}:{self.target.__qualname__}"

    @property
    def cls(self) -> type:
        """The detector class (imported now if it was registered by path)."""
        if "cls" not in self._loaded:
            cls = self.target
            if isinstance(cls, str):
                try:
                    cls = _import_path(cls, self)
                except ImportError as exc:  # a plugin's broken path is the user's to fix, not a traceback
                    raise UnknownDetectorError(f"detector {self.name!r} of plugin {self.plugin!r} cannot be "
                                               f"imported: {exc}; reinstall or update that plugin") from None
            _check_detector_class(cls, f"plugin {self.plugin!r}: detector {self.name!r}")
            self._loaded["cls"] = cls
        return self._loaded["cls"]

    def parameters(self) -> dict:
        """Constructor parameters and their defaults."""
        return constructor_parameters(self.cls)


@dataclass
class PluginInfo:
    """One loaded plugin and where it comes from."""

    name: str
    distribution: str = ""
    version: str = ""
    detectors: list = field(default_factory=list)


class Registry:
    """Loads plugins and answers which detectors exist."""

    def __init__(self, load_entry_points: bool = True):
        self.plugin_manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.plugin_manager.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self._detectors: dict[str, DetectorSpec] | None = None
        if load_entry_points:
            self._load_entry_points()

    def _load_entry_points(self):
        for entry_point in entry_points(group=hookspecs.PROJECT_NAME):
            distribution = getattr(entry_point, "dist", None)
            dist_name = distribution.metadata["Name"] if distribution else ""
            try:
                plugin = entry_point.load()
            except Exception as exc:  # a broken third-party plugin must not break the others
                where = f" (distribution {dist_name})" if dist_name else ""
                warnings.warn(
                    f"adscore plugin {entry_point.name!r}{where} failed to import and is "
                    f"skipped: {type(exc).__name__}: {exc}",
                    PluginLoadWarning,
                    stacklevel=2,
                )
                continue
            version = distribution.version if distribution else ""
            self.register_plugin(plugin, entry_point.name, dist_name, version)

    def register_plugin(self, plugin, name: str, distribution: str = "", version: str = ""):
        """Register a plugin object (usually a module) under ``name``."""
        if self.plugin_manager.get_plugin(name) is plugin:
            return
        self.plugin_manager.register(plugin, name=name)
        self.plugins[name] = PluginInfo(name, distribution, version)
        self._detectors = None

    # -- detectors ---------------------------------------------------------

    @property
    def detectors(self) -> dict[str, DetectorSpec]:
        """Canonical detector name -> spec."""
        if self._detectors is None:
            self._detectors = self._collect_detectors()
        return self._detectors

    def _collect_detectors(self) -> dict[str, DetectorSpec]:
        specs: dict[str, DetectorSpec] = {}
        owner_of_name: dict[str, str] = {}  # name or alias -> plugin
        for info in self.plugins.values():
            info.detectors.clear()
        hook = self.plugin_manager.hook.register_detectors
        for impl in hook.get_hookimpls():
            plugin_name = impl.plugin_name

            def register(name, cls, summary, aliases=(), _plugin=plugin_name):
                spec = _make_spec(name, cls, summary, aliases, _plugin)
                for key in (spec.name, *spec.aliases):
                    if key in owner_of_name:
                        raise DuplicateDetectorError(
                            f"detector name {key!r} is registered by two plugins: "
                            f"{owner_of_name[key]!r} and {_plugin!r}; uninstall one of them"
                        )
                    owner_of_name[key] = _plugin
                specs[spec.name] = spec
                if _plugin in self.plugins:
                    self.plugins[_plugin].detectors.append(spec.name)

            impl.function(register=register)
        return dict(sorted(specs.items()))

    def resolve(self, name: str) -> DetectorSpec:
        """The spec for a detector name or alias (case-insensitive)."""
        if not isinstance(name, str):
            raise UnknownDetectorError(f"detector name must be a string, got {name!r}")
        key = name.strip().lower()
        detectors = self.detectors
        if key in detectors:
            return detectors[key]
        for spec in detectors.values():
            if key in spec.aliases:
                return spec
        raise UnknownDetectorError(
            f"unknown detector {name!r}.{_did_you_mean(key, self.names())} Available: "
            f"{', '.join(sorted(detectors))} (`adscore plugins` lists them; PyOD classes work by path, "
            "e.g. pyod.models.knn.KNN)"
        )

    def names(self) -> list:
        """Every detector name and alias."""
        return sorted(self.detectors) + sorted(a for s in self.detectors.values() for a in s.aliases)

    def make(self, name: str, **params):
        """Construct the registered detector ``name`` with ``params``, checking the names."""
        spec = self.resolve(name)
        return construct(spec.cls, spec.name, params)

    def name_of(self, detector) -> str | None:
        """Registered name of a detector instance's class, or None."""
        return self.name_of_class(type(detector))

    def name_of_class(self, cls) -> str | None:
        """Registered name of a detector class, or None (imports only specs with the same path)."""
        path = f"{cls.__module__}:{cls.__qualname__}"
        for spec in self.detectors.values():
            if (spec.target is cls) or (spec.path == path and spec.cls is cls):
                return spec.name
        return None


def _make_spec(name, cls, summary, aliases, plugin) -> DetectorSpec:
    if not isinstance(name, str) or not name or name != name.strip().lower():
        raise ValueError(f"plugin {plugin!r}: detector names must be non-empty lower-case strings, got {name!r}")
    if isinstance(cls, str):
        if not _LAZY_PATH.match(cls):
            raise ValueError(f"plugin {plugin!r}: detector {name!r} must be a class or a 'module:Class' "
                             f"path, got {cls!r}")
    else:
        _check_detector_class(cls, f"plugin {plugin!r}: detector {name!r}")
    if isinstance(aliases, str):
        aliases = (aliases,)
    return DetectorSpec(name, cls, str(summary).strip().splitlines()[0] if summary else "", tuple(aliases), plugin)


def _check_detector_class(cls, what: str) -> None:
    from pyod.models.base import BaseDetector

    if not (isinstance(cls, type) and issubclass(cls, BaseDetector)):
        raise TypeError(f"{what} must be a pyod BaseDetector subclass, got {cls!r}")


def _import_path(path: str, spec: DetectorSpec) -> type:
    module_name, _, qualname = path.partition(":")
    module = importlib.import_module(module_name)
    target = module
    for part in qualname.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise ImportError(f"plugin {spec.plugin!r}: detector {spec.name!r}: {module_name} has no {qualname}")
    return target


def _did_you_mean(key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), n=3)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"


# --------------------------------------------------------------------------
# the factory


def constructor_parameters(cls) -> dict:
    """Constructor parameter name -> default (``inspect.Parameter.empty`` when required)."""
    return {name: p.default for name, p in inspect.signature(cls).parameters.items()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def accepts_any_keyword(cls) -> bool:
    return any(p.kind == p.VAR_KEYWORD for p in inspect.signature(cls).parameters.values())


def is_class_path(name: str) -> bool:
    """Whether ``name`` names a PyOD class (``pyod.models.knn.KNN`` or ``pyod.models.knn:KNN``)."""
    return ":" in name or name.strip().startswith("pyod.")


def import_pyod_class(path: str) -> type:
    """The PyOD detector class at ``path``; only modules under ``pyod`` are imported."""
    from pyod.models.base import BaseDetector

    module_name, sep, class_name = path.partition(":")
    if not sep:  # dotted form pyod.models.iforest.IForest
        module_name, _, class_name = path.rpartition(".")
    if not _CLASS_PATH.match(module_name) or not class_name.isidentifier():
        raise ParameterError(f"{path!r} is not a PyOD class path: use MODULE:CLASS or MODULE.CLASS with a "
                             "module under pyod, e.g. pyod.models.auto_encoder:AutoEncoder")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ParameterError(f"cannot import {module_name} for detector {path!r}: {exc}") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ParameterError(f"{module_name} has no class {class_name!r} (detector {path!r})."
                             f"{_did_you_mean(class_name, [n for n in dir(module) if n[:1].isupper()])}")
    if not (isinstance(cls, type) and issubclass(cls, BaseDetector)):
        raise ParameterError(f"{path!r} is not a PyOD detector class (not a BaseDetector subclass)")
    return cls


@dataclass(frozen=True)
class DetectorClass:
    """A detector class found by name: ``label`` for messages, ``registered`` name or None."""

    label: str
    cls: type
    registered: str | None


def find_detector(name: str) -> DetectorClass:
    """The class for a registered name/alias, a PyOD class path, or a detector class.

    A class path to a registered class (``pyod.models.knn.KNN``) is that registered
    detector, so models of it can be saved; other PyOD classes have ``registered=None``.
    """
    if isinstance(name, type):
        _check_detector_class(name, f"detector class {name.__qualname__}")
        return DetectorClass(name.__name__, name, get_registry().name_of_class(name))
    if not isinstance(name, str) or not name.strip():
        raise ParameterError(f"detector name must be a non-empty string, got {name!r}")
    name = name.strip()
    if is_class_path(name):
        cls = import_pyod_class(name)
        return DetectorClass(name, cls, get_registry().name_of_class(cls))
    spec = get_registry().resolve(name)
    return DetectorClass(spec.name, spec.cls, spec.name)


def check_parameter_names(cls, label: str, params) -> None:
    """A :class:`ParameterError` naming unknown parameters and the nearest valid ones."""
    accepted = constructor_parameters(cls)
    # deprecated names the class still accepts (and warns about), e.g. the VAE's `score`
    renamed = getattr(cls, "renamed_parameters", None) or {}
    unknown = sorted(set(params) - set(accepted) - set(renamed))
    if not unknown or accepts_any_keyword(cls):
        return
    close = sorted({c for key in unknown for c in difflib.get_close_matches(key, list(accepted), n=2)})
    hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
    raise ParameterError(f"unknown parameter(s) {', '.join(map(repr, unknown))} for detector {label!r}{hint}; "
                         f"valid parameters: {', '.join(sorted(accepted))} (`adscore params {label}` explains them)")


def construct(cls, label: str, params: dict):
    """``cls(**params)`` with names checked and PyOD's own constructor errors as :class:`ParameterError`."""
    check_parameter_names(cls, label, params)
    try:
        return cls(**params)
    except AdscoreError:
        raise
    except (ValueError, TypeError) as exc:  # PyOD checks some parameters in __init__
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ParameterError(f"invalid parameter for detector {label!r}: {message}") from None


def build_detector(name: str, params: dict | None = None, defaults: dict | None = None,
                   n_features: int | None = None, check: bool = True):
    """The one way to build a detector from a name and parameters.

    Parameters
    ----------
    name : str or type
        A registered name or alias, a PyOD class path (``pyod.models.knn.KNN``), or a
        detector class.
    params : dict, optional
        Parameters the user gave: each must be accepted (unknown ones are an error that
        suggests the nearest names).
    defaults : dict, optional
        Settings applied only where the detector accepts them and ``params`` does not
        set them (``random_state``, ``contamination``, ``verbose``, ...).
    n_features : int, optional
        Fills a required feature-count argument (PyOD's DeepSVDD ``n_features``).
    check : bool, default True
        Call the detector's ``check_params()`` (where it has one) before returning.

    Returns
    -------
    detector : an unfitted PyOD ``BaseDetector``
    """
    found = find_detector(name)
    params = dict(params or {})
    check_parameter_names(found.cls, found.label, params)
    accepted = constructor_parameters(found.cls)
    for key, value in (defaults or {}).items():
        if key in accepted and key not in params and value is not None:
            params[key] = value
    for key, default in accepted.items():
        if default is inspect.Parameter.empty and key not in params:
            if key in N_FEATURE_ARGS and n_features is not None:
                params[key] = int(n_features)
            else:
                raise ParameterError(f"detector {found.label!r} needs the parameter {key!r}; "
                                     f"give it with --param {key}=VALUE")
    detector = construct(found.cls, found.label, params)
    if check and hasattr(detector, "check_params"):
        detector.check_params()
    return detector


_registry: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loading the installed plugins on first use."""
    global _registry
    if _registry is None:
        _registry = Registry()
    return _registry


def reset_registry() -> None:
    """Forget loaded plugins so the next :func:`get_registry` rescans the entry points."""
    global _registry
    _registry = None
