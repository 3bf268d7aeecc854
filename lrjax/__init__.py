"""lrjax: choose and schedule learning rates (and other optimizer hyperparameters) in JAX."""

from lrjax import datasets, schedules, search
from lrjax.plateau import ReduceOnPlateauState, reduce_on_plateau
from lrjax.population import Population
from lrjax.sweep import SweepResult, sweep
from lrjax.task import Task

__version__ = "0.1.0"

__all__ = [
    "Population",
    "ReduceOnPlateauState",
    "SweepResult",
    "Task",
    "__version__",
    "datasets",
    "reduce_on_plateau",
    "schedules",
    "search",
    "sweep",
]
