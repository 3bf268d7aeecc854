"""XLA compile options the engine asks for, passed only where the backend knows them.

The engine's programs compile with a few XLA:CPU options (`lrjax.engine.operations` says what each
one buys). XLA renames and drops options between releases, and an unknown option makes the
whole compilation fail (jaxlib 0.12: ``INVALID_ARGUMENT: No such compile option:
'xla_cpu_use_fusion_emitters'``). So the backend is asked once per process and platform which
of them it accepts, by compiling a one-operation program with them; the engine passes only
those, and a warning says once which ones it goes without (except `RETIRED` ones, which a newer
XLA dropped because their choice became its only way). A missing option costs compile or run
time, never correctness: each only chooses among equivalent ways to compile the program.
"""

from __future__ import annotations

import importlib.metadata
import threading
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import SingleDeviceSharding

from lrjax.engine.rewrite import warn_once

__all__ = ["supported"]

# Options a newer XLA retired because what they chose became its only way: going without them
# is expected there and costs nothing, so no warning.
RETIRED = {"xla_cpu_use_fusion_emitters"}  # jaxlib 0.12: the new fusion emitters are the only ones
_known: dict[tuple[str, str, str], bool] = {}  # (platform, option, value) -> accepted
_lock = threading.Lock()


def _accepts(device: Any, options: Mapping[str, Any]) -> bool:  # a jax.Device
    """Whether a one-operation program compiles on ``device``'s backend with ``options``."""
    x = jax.ShapeDtypeStruct((), np.float32, sharding=SingleDeviceSharding(device))
    try:
        jax.jit(lambda x: x + 1, compiler_options=dict(options)).lower(x).compile()
    except Exception:  # XLA's error for an unknown option or value (JaxRuntimeError: INVALID_ARGUMENT)
        return False
    return True


def supported(options: Mapping[str, Any], device: Any) -> dict[str, Any]:  # a jax.Device
    """The entries of ``options`` that ``device``'s backend accepts (asked once per process,
    platform and value); a `RuntimeWarning` names the others, once each, unless `RETIRED`.

    Args:
      options: XLA compile options, name -> value, as ``jax.jit(compiler_options=...)`` takes.
      device: a device of the backend the program compiles for.

    Returns:
      The accepted entries, in the order given.

    Example:
      >>> import jax
      >>> from lrjax.engine.options import supported
      >>> supported({"xla_backend_optimization_level": 1}, jax.devices("cpu")[0])
      {'xla_backend_optimization_level': 1}
    """
    platform = device.platform
    keys = {name: (platform, name, repr(value)) for name, value in options.items()}
    with _lock:
        unknown = {name: value for name, value in options.items() if keys[name] not in _known}
        if unknown:
            if _accepts(device, unknown):  # the usual case: one small compile for all of them
                _known.update((keys[name], True) for name in unknown)
            else:
                _known.update((keys[name], _accepts(device, {name: value})) for name, value in unknown.items())
    dropped = [name for name in options if not _known[keys[name]] and name not in RETIRED]
    if dropped:
        warn_once(
            f"options {platform} {dropped}",
            f"lrjax: XLA on {platform} (jaxlib {importlib.metadata.version('jaxlib')}) does not accept the compile options "
            f"{dropped}; the engine compiles without them: the same results, possibly slower compiles or steps.",
        )
    return {name: value for name, value in options.items() if _known[keys[name]]}
