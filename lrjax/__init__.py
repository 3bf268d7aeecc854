"""lrjax: choose and schedule learning rates (and other optimizer hyperparameters) in JAX."""

from lrjax import schedules
from lrjax.plateau import ReduceOnPlateauState, reduce_on_plateau

__version__ = "0.1.0"

__all__ = ["ReduceOnPlateauState", "reduce_on_plateau", "schedules", "__version__"]
