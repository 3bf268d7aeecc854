"""Count XLA compilations (and their time) through `jax.monitoring` events."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Generator
from typing import Any

import jax.monitoring

_EVENT = "/jax/core/compile/backend_compile_duration"
_lock = threading.Lock()
_active: list[CompileLog] = []
_registered = False


@dataclasses.dataclass
class CompileLog:
    """Compilations observed while the log was open (see `count_compiles`).

    Attributes:
      count: XLA compilations (executables built; a program found in JAX's or lrjax's caches is
        not one).
      seconds: their total duration.

    Example:
      >>> import jax
      >>> from lrjax.engine import count_compiles
      >>> with count_compiles() as log:
      ...     _ = jax.jit(lambda x: x + 1)(1.0)
      >>> log.count
      1
    """

    count: int = 0
    seconds: float = 0.0


def _listener(event: str, duration_secs: float, **kwargs: Any) -> None:
    if event == _EVENT:
        with _lock:
            for log in _active:
                log.count += 1
                log.seconds += duration_secs


@contextlib.contextmanager
def count_compiles() -> Generator[CompileLog, None, None]:
    """Context manager yielding a `CompileLog` of the XLA compilations inside it, through
    `jax.monitoring`'s backend-compile events (of every thread: XLA compiles in worker threads).

    Returns:
      A context manager; the `CompileLog` it yields counts until the block ends.

    Example:
      >>> import optax, lrjax
      >>> from lrjax.engine import count_compiles
      >>> pop = lrjax.Population(lrjax.datasets.linear_regression(), lambda hp: optax.sgd(hp["learning_rate"]),
      ...                        {"learning_rate": [0.1, 0.2]})
      >>> _ = pop.advance(30)
      >>> with count_compiles() as log:                      # other lengths, other members: no recompilation
      ...     _ = pop.advance(7)
      ...     pop.set_configs(0, {"learning_rate": 0.05})
      ...     _ = pop.advance(50)
      >>> log.count
      0
    """
    global _registered
    with _lock:
        if not _registered:
            jax.monitoring.register_event_duration_secs_listener(_listener)
            _registered = True
        log = CompileLog()
        _active.append(log)
    try:
        yield log
    finally:
        with _lock:
            _active.remove(log)
