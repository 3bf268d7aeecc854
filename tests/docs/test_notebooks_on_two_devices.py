"""The notebooks whose outputs are committed show what a fresh run gives on two CPU devices too
(``--xla_force_host_platform_device_count=2``), within the tolerance of tests/test_notebooks.py:
a reader's laptop split into two devices gets the committed numbers."""

import pytest

from tests.test_notebooks import COMMITTED, against_a_fresh_run, versions


@pytest.mark.parametrize("path", COMMITTED, ids=[p.name for p in COMMITTED])
def test_committed_outputs_are_a_fresh_run_on_two_devices(path, monkeypatch, tmp_path):
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("MPLBACKEND", raising=False)
    assert against_a_fresh_run(path) == [], f"committed outputs against a fresh run on 2 devices, {versions()}"
