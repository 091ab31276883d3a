"""Shared test helpers (imported as `helpers`; tests/ is on sys.path under pytest)."""
from pyod_ae_ext.registry import get_registry

# Applied where a detector accepts them, so every registered detector is fast in tests; one
# network per detector (members are tested in test_members.py, with defaults in the CLI tests).
FAST_PARAMS = {"epochs": 4, "random_state": 0, "n_members": 1}


def fast_detector(name, **params):
    spec = get_registry().resolve(name)
    accepted = spec.parameters()
    merged = {k: v for k, v in FAST_PARAMS.items() if k in accepted}
    merged.update(params)
    return spec.cls(**merged)


def assert_clean_error(result, *fragments):
    """A CliRunner result that is one ``Error:`` line on stderr, exit status 2, no traceback."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
