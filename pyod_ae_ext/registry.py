"""Plugin discovery and the detector registry.

Plugins are found through the ``adscore`` entry-point group (see
:mod:`pyod_ae_ext.hookspecs`). A plugin that fails to import is reported as a
warning naming it and skipped; the other plugins keep working.
"""
from __future__ import annotations

import difflib
import inspect
import warnings
from dataclasses import dataclass, field
from importlib.metadata import entry_points

import pluggy
from pyod.models.base import BaseDetector

from . import hookspecs
from .errors import AdscoreError, DuplicateDetectorError, ParameterError, UnknownDetectorError


class PluginLoadWarning(UserWarning):
    """A plugin announced in the ``adscore`` entry-point group could not be imported."""


@dataclass(frozen=True)
class DetectorSpec:
    """What a plugin registered for one detector."""

    name: str
    cls: type
    summary: str
    aliases: tuple = ()
    plugin: str = ""

    def parameters(self) -> dict:
        """Constructor parameters and their defaults."""
        return {
            name: param.default
            for name, param in inspect.signature(self.cls).parameters.items()
            if param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
        }


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
        known = sorted(detectors) + sorted(a for s in detectors.values() for a in s.aliases)
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownDetectorError(
            f"unknown detector {name!r}.{hint} Available: {', '.join(sorted(detectors))} "
            "(`adscore plugins` lists them with their plugins)"
        )

    def make(self, name: str, **params) -> BaseDetector:
        """Construct the detector ``name`` with ``params``, checking the names."""
        spec = self.resolve(name)
        allowed = spec.parameters()
        # deprecated names the class still accepts (and warns about), e.g. the VAE's `score`
        renamed = getattr(spec.cls, "renamed_parameters", {})
        unknown = sorted(set(params) - set(allowed) - set(renamed))
        if unknown:
            raise ParameterError(
                f"unknown parameter(s) {', '.join(map(repr, unknown))} for detector "
                f"{spec.name!r}; valid parameters: {', '.join(sorted(allowed))}"
            )
        try:
            return spec.cls(**params)
        except AdscoreError:
            raise
        except (ValueError, TypeError) as exc:  # PyOD checks some parameters in __init__
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ParameterError(f"invalid parameter for detector {spec.name!r}: {message}") from None

    def name_of(self, detector) -> str | None:
        """Registered name of a detector instance's class, or None."""
        for spec in self.detectors.values():
            if type(detector) is spec.cls:
                return spec.name
        return None


def _make_spec(name, cls, summary, aliases, plugin) -> DetectorSpec:
    if not isinstance(name, str) or not name or name != name.strip().lower():
        raise ValueError(f"plugin {plugin!r}: detector names must be non-empty lower-case strings, got {name!r}")
    if not (isinstance(cls, type) and issubclass(cls, BaseDetector)):
        raise TypeError(f"plugin {plugin!r}: detector {name!r} must be a pyod BaseDetector subclass, got {cls!r}")
    if isinstance(aliases, str):
        aliases = (aliases,)
    return DetectorSpec(name, cls, str(summary).strip().splitlines()[0] if summary else "", tuple(aliases), plugin)


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
