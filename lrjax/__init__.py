"""lrjax: choose and schedule learning rates (and other optimizer hyperparameters) in JAX.

The public API is re-exported here; implementation modules are private (``lrjax._sweep``,
``lrjax._population``, ...). ``lrjax.datasets`` (Flax models) and ``lrjax.plot`` (matplotlib)
are imported on first use, so ``import lrjax`` and ``import lrjax.schedules`` import neither.
"""

import importlib
import importlib.metadata
from typing import TYPE_CHECKING, Any

from lrjax import schedules, search
from lrjax._batch_size_sweep import BatchSizeResult, batch_size_sweep, fit_critical_batch_size
from lrjax._compilation_cache import enable_compilation_cache
from lrjax._finder import FinderResult, Verification, find_lr
from lrjax._noise_scale import NoiseScale, gradient_noise_scale
from lrjax._plateau import ReduceOnPlateauState, reduce_on_plateau
from lrjax._population import Population
from lrjax._result import SweepResult
from lrjax._sweep import sweep
from lrjax._task import SupervisedOptions, Task

try:
    __version__ = importlib.metadata.version("lrjax")
except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

_LAZY = ("datasets", "plot")
if TYPE_CHECKING:  # for type checkers; at run time `__getattr__` imports them
    from lrjax import datasets, plot


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return importlib.import_module(f"lrjax.{name}")
    raise AttributeError(f"module 'lrjax' has no attribute {name!r}")


__all__ = [
    "BatchSizeResult",
    "FinderResult",
    "NoiseScale",
    "Population",
    "ReduceOnPlateauState",
    "SupervisedOptions",
    "SweepResult",
    "Task",
    "Verification",
    "__version__",
    "batch_size_sweep",
    "datasets",
    "enable_compilation_cache",
    "find_lr",
    "fit_critical_batch_size",
    "gradient_noise_scale",
    "plot",
    "reduce_on_plateau",
    "schedules",
    "search",
    "sweep",
]
