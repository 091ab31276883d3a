"""The plugin system: third-party distributions, broken plugins, name clashes."""
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pyod_ae_ext import hookimpl
from pyod_ae_ext.errors import DuplicateDetectorError
from pyod_ae_ext.plugins.autoencoder import AutoEncoder
from pyod_ae_ext.registry import Registry

PLUGIN_DIST = Path(__file__).parent / "plugin_dist"


def adscore(*args, pythonpath, cwd):
    """Run the installed `adscore` in a child process with extra site directories."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, pythonpath))}
    return subprocess.run([sys.executable, "-c", "from pyod_ae_ext.cli import main; main()", *args],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    """pip-install the example plugin distribution into a private target directory."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(PLUGIN_DIST)],
                   check=True, capture_output=True, timeout=300)
    assert list(target.glob("adscore_example_plugin-0.3.0.dist-info"))
    return target


def test_third_party_plugin_is_listed_fits_and_scores(installed_plugin, tmp_path):
    listing = adscore("plugins", pythonpath=[installed_plugin], cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert "example  (adscore-example-plugin 0.3.0)" in listing.stdout
    assert "mahalanobis" in listing.stdout and "toll" in listing.stdout

    rng = np.random.RandomState(0)
    data = pd.DataFrame(rng.normal(size=(100, 3)), columns=["a", "b", "c"])
    data.to_csv(tmp_path / "data.csv", index=False)
    fitted = adscore("fit", "-d", "mahalanobis", "data.csv", "-o", "m.adscore",
                     pythonpath=[installed_plugin], cwd=tmp_path)
    assert fitted.returncode == 0, fitted.stderr
    scored = adscore("score", "-m", "m.adscore", "data.csv", pythonpath=[installed_plugin], cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr
    scores = pd.read_csv(pd.io.common.StringIO(scored.stdout))
    assert list(scores.columns) == ["anomaly_score", "is_anomaly", "anomaly_probability"] and len(scores) == 100

    hello = adscore("example-hello", pythonpath=[installed_plugin], cwd=tmp_path)
    assert hello.stdout.strip() == "hello from adscore-example-plugin"

    # a plugin's engine family: its own parameters and the engine's, with the engine's docstring
    params = adscore("params", "shrinking-noise-ae", "--json", pythonpath=[installed_plugin], cwd=tmp_path)
    assert params.returncode == 0, params.stderr
    described = {p["name"]: p for p in json.loads(params.stdout)["parameters"]}
    assert described["epochs"]["description"] == "Passes over the training data."


def test_a_third_party_autoencoder_family_passes_the_contract_kit(installed_plugin):
    """The example family uses only the engine's public hooks; the public kit checks it."""
    code = ("from adscore_example_plugin import ShrinkingNoiseAE\n"
            "from pyod_ae_ext.testing import check_detector\n"
            "detector = ShrinkingNoiseAE(epochs=10, random_state=0)\n"
            "check_detector(detector)\n"
            "print('contract ok', detector.fit(__import__('numpy').ones((20, 3))).noise_)\n")
    env = {**os.environ, "PYTHONPATH": str(installed_plugin)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["contract", "ok", "0.125"]  # 0.5 halved after epochs 5 and 10


def test_broken_plugin_is_a_warning_and_the_rest_keep_working(tmp_path):
    dist_info = tmp_path / "site" / "broken_plugin-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[adscore]\nbroken = broken_plugin_module_that_does_not_exist\n")
    result = adscore("plugins", pythonpath=[tmp_path / "site"], cwd=tmp_path)
    assert result.returncode == 0
    assert "plugin 'broken' (distribution broken-plugin) failed to import" in result.stderr
    assert "Traceback" not in result.stderr
    assert "toll" in result.stdout and "iforest" in result.stdout


class _Claims:
    def __init__(self, name, alias=()):
        self.name, self.alias = name, alias

    @hookimpl
    def register_detectors(self, register):
        register(self.name, AutoEncoder, "test", aliases=self.alias)


def test_two_plugins_claiming_one_name_is_an_error_naming_both():
    registry = Registry(load_entry_points=False)
    registry.register_plugin(_Claims("twin"), "first-plugin")
    registry.register_plugin(_Claims("other", alias=("twin",)), "second-plugin")
    with pytest.raises(DuplicateDetectorError, match="'twin'.*'first-plugin' and 'second-plugin'"):
        registry.detectors


def test_registration_is_validated():
    registry = Registry(load_entry_points=False)
    registry.register_plugin(_Claims("Bad Name"), "p")
    with pytest.raises(ValueError, match="lower-case"):
        registry.detectors


def test_builtins_come_through_the_entry_point_group():
    from importlib.metadata import entry_points

    groups = {ep.value for ep in entry_points(group="adscore")}
    assert {"pyod_ae_ext.builtin_plugins:toll", "pyod_ae_ext.builtin_plugins:autoencoder",
            "pyod_ae_ext.plugins.pyod_baselines"} <= groups


FAMILY_MODULES = {family: f"pyod_ae_ext.plugins.{family}"
                  for family in ("autoencoder", "toll", "rdae", "vae", "vrae", "ksparse", "deep_ocsvm", "deep_svdd")}
FAMILY_MODULES["ensemble"] = "pyod_ae_ext.ensemble"


@pytest.mark.parametrize("family", FAMILY_MODULES)
def test_each_builtin_family_is_registered_once_by_path_to_its_own_module(family):
    from pyod.models.base import BaseDetector

    from pyod_ae_ext import builtin_plugins

    registry = Registry(load_entry_points=False)
    registry.register_plugin(getattr(builtin_plugins, family), family)
    specs = registry.detectors
    assert specs
    for name, spec in specs.items():
        module, _, class_name = spec.path.partition(":")
        assert module == FAMILY_MODULES[family], name
        cls = getattr(importlib.import_module(module), class_name)
        assert issubclass(cls, BaseDetector) and spec.cls is cls
    # the family's module registers nothing of its own: builtin_plugins is the one place
    assert not hasattr(importlib.import_module(FAMILY_MODULES[family]), "register_detectors")


def test_listing_detectors_imports_no_detector_dependencies():
    code = ("import sys; from pyod_ae_ext.registry import get_registry; names = list(get_registry().detectors); "
            "print(len(names), sorted(m for m in ('torch', 'pyod', 'pandas', 'sklearn') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    count, imported = result.stdout.split(" ", 1)
    assert int(count) >= 20 and imported.strip() == "[]"


def test_wheel_ships_the_plugins_package(tmp_path):
    """plugins/ is mapped to pyod_ae_ext.plugins by package-dir: check a real wheel install."""
    repo = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "-w", str(tmp_path / "dist"), str(repo)], check=True, capture_output=True,
                   timeout=300)
    wheel = next((tmp_path / "dist").glob("pyod_ae_ext-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target",
                    str(tmp_path / "site"), str(wheel)], check=True, capture_output=True, timeout=300)
    probe = ("import pyod_ae_ext, pyod_ae_ext.plugins.toll as toll; from pyod_ae_ext.cli.demo import example_bytes; "
             "print(pyod_ae_ext.__file__); print(toll.__file__); print(len(example_bytes()))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(tmp_path / "site")}, timeout=300)
    assert result.returncode == 0, result.stderr
    package, plugin, example_size = result.stdout.split()
    assert package.startswith(str(tmp_path / "site")) and plugin.startswith(str(tmp_path / "site"))
    assert int(example_size) > 10_000


class _LazyBroken:
    @hookimpl
    def register_detectors(self, register):
        register("ghost", "no_such_module_for_adscore:Ghost", "registered by a path that does not import")


def test_a_lazy_path_that_does_not_import_is_a_clear_error_when_built():
    from pyod_ae_ext.errors import AdscoreError

    registry = Registry(load_entry_points=False)
    registry.register_plugin(_LazyBroken(), "haunted")
    assert "ghost" in registry.detectors  # listing imports nothing
    with pytest.raises(AdscoreError, match="'ghost' of plugin 'haunted' cannot be imported"):
        registry.make("ghost")
