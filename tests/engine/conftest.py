"""The sweep call and the forced-device subprocess the engine tests share (fixtures are in
tests/conftest.py)."""

import os
import subprocess
import sys

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
