"""The sweep call, the forced-device subprocess and the small MLP the engine tests share (the
other fixtures are in tests/conftest.py)."""

import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

import lrjax


def run(task, optimizer, configs, **kwargs):
    kwargs.setdefault("progress", False)
    return lrjax.sweep(task, optimizer, configs, **kwargs)


def run_on_devices(script: str, devices: int, done: str) -> None:
    """Run ``script`` in a fresh Python with ``devices`` forced CPU devices; it must print ``done``."""
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert done in proc.stdout


@pytest.fixture(params=["rewrites on", "rewrites off"])
def rewrites(request, monkeypatch):
    """Run the test with the engine's jaxpr rewrites on and with ``LRJAX_REWRITES=0``."""
    monkeypatch.setenv("LRJAX_REWRITES", "1" if request.param == "rewrites on" else "0")
    return request.param


@pytest.fixture(scope="session")
def members():
    """Four members' parameters (stacked) of a 12-16-5 MLP, and a batch all of them read."""
    rng = np.random.default_rng(1)
    params = {
        "w1": jnp.asarray(rng.standard_normal((4, 12, 16)) * 0.3, jnp.float32),
        "b1": jnp.zeros((4, 16)),
        "w2": jnp.asarray(rng.standard_normal((4, 16, 5)) * 0.3, jnp.float32),
    }
    x = jnp.asarray(rng.standard_normal((32, 12)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 5, 32))
    return params, x, y
