"""lrjax.schedules: learning-rate schedules as pure, sweepable functions of the step count.

Every schedule is a frozen dataclass registered as a pytree and an `optax.Schedule`. Numeric
parameters are leaves (they can be traced and batched under `jax.vmap`); modes are static.
``schedule(t)`` is the value for the update after ``t`` updates (Optax's ``count``), which is
the learning rate PyTorch reports after ``t`` calls of ``scheduler.step()``.
"""

from lrjax.schedules._anneal import cosine_decay, linear, polynomial
from lrjax.schedules._base import Schedule, is_schedule
from lrjax.schedules._combine import (
    from_epoch_fn,
    join,
    multiply,
    scale_for_batch_size,
)
from lrjax.schedules._cyclic import cyclic, one_cycle
from lrjax.schedules._decay import (
    constant,
    exponential_decay,
    inverse_time_decay,
    multistep_decay,
    piecewise_constant,
    step_decay,
)
from lrjax.schedules._restarts import cosine_restarts
from lrjax.schedules._warmup import inverse_sqrt, warmup, warmup_cosine_decay, warmup_stable_decay

__all__ = [
    "Schedule",
    "constant",
    "cosine_decay",
    "cosine_restarts",
    "cyclic",
    "exponential_decay",
    "from_epoch_fn",
    "inverse_sqrt",
    "inverse_time_decay",
    "is_schedule",
    "join",
    "linear",
    "multiply",
    "multistep_decay",
    "one_cycle",
    "piecewise_constant",
    "polynomial",
    "scale_for_batch_size",
    "step_decay",
    "warmup",
    "warmup_cosine_decay",
    "warmup_stable_decay",
]
