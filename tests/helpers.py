"""Shared test helpers (imported as `helpers`; tests/ is on sys.path under pytest)."""
from pyod_ae_ext.registry import get_registry

# Applied where a detector accepts them, so every registered detector is fast in tests.
FAST_PARAMS = {"epochs": 4, "random_state": 0}


def fast_detector(name, **params):
    spec = get_registry().resolve(name)
    accepted = spec.parameters()
    merged = {k: v for k, v in FAST_PARAMS.items() if k in accepted}
    merged.update(params)
    return spec.cls(**merged)
