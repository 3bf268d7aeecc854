"""Running a test's Python script in a process of its own, on CPU, as a user's script runs."""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_script(script: str, args, cwd, devices: int = 1, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -c script *args`` in ``cwd`` on ``devices`` forced CPU devices (``DEVICES`` in
    its environment), with lrjax importable from this checkout; its output captured."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", DEVICES=str(devices), PYTHONPATH=str(ROOT))
    if devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )
