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
    """Compilations observed while the log was open."""

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
    """Context manager yielding a `CompileLog` of the XLA compilations inside it."""
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
