"""Which of a shared Optuna study's running trials still have a worker.

Several processes, on one machine or several, may run `lrjax.search.bayesian` on one study
(an Optuna RDB storage such as ``sqlite:///study.db`` or a PostgreSQL URL), as Optuna users
scale a search out. A trial is RUNNING from ``ask`` until its worker tells its result; a worker
that dies leaves its trials RUNNING for ever. So each worker marks the trials it asks with who
it is (``user_attrs["lrjax_worker"]``: host, process id and a token of its own) and, while it
trains them, beats a heartbeat (``user_attrs["lrjax_heartbeat"]``, the time of the last beat)
every ``heartbeat_interval`` seconds on a thread of its own. Another worker takes a RUNNING
trial for abandoned (`stale`) when its worker is a process of the same host that no longer
exists, or when its last beat (or, before the first, its start) is older than the grace
period. Optuna's own heartbeat (``RDBStorage(heartbeat_interval=, grace_period=,
failed_trial_callback=RetryFailedTrialCallback())``) follows the same rule for
``study.optimize``; the ask-and-tell interface has no heartbeat of its own, and this one needs no
particular storage.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

__all__ = ["HEARTBEAT", "WORKER", "Heartbeat", "stale", "this_worker"]

WORKER = "lrjax_worker"
HEARTBEAT = "lrjax_heartbeat"
_TOKEN = uuid.uuid4().hex[:8]


def this_worker() -> str:
    """This process as a worker: ``host:pid:token`` (the token tells apart two processes that
    had the same id)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_TOKEN}"


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on the local host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def stale(trial: Any, now: float, grace_period: float, host: str | None = None) -> bool:
    """Whether the RUNNING ``trial`` (an ``optuna.trial.FrozenTrial``) has lost its worker.

    Args:
      trial: a running trial of the study.
      now: the time (``time.time()``).
      grace_period: seconds without a heartbeat after which a worker counts as gone.
      host: the local host's name (default ``socket.gethostname()``).

    Returns:
      True if its worker ran on this host and its process is gone, or if its last heartbeat
      (before the first, the trial's start) is more than ``grace_period`` seconds old.

    Example:
      >>> import datetime, optuna
      >>> from lrjax.search._workers import stale
      >>> start = datetime.datetime.fromtimestamp(1000.0)
      >>> trial = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING,
      ...     user_attrs={"lrjax_worker": "other-host:123:ab12cd34", "lrjax_heartbeat": 1050.0})
      >>> stale(trial, now=1100.0, grace_period=120.0), stale(trial, now=1200.0, grace_period=120.0)
      (False, True)
    """
    worker = trial.user_attrs.get(WORKER)
    if worker is not None:
        worker_host, pid, _ = str(worker).rsplit(":", 2)
        if worker_host == (host or socket.gethostname()) and not _alive(int(pid)):
            return True
    last = trial.user_attrs.get(HEARTBEAT)
    if last is None:
        last = trial.datetime_start.timestamp() if trial.datetime_start is not None else now
    return now - float(last) > grace_period


class Heartbeat:
    """Beat the heartbeat of ``trials`` (``optuna.trial.Trial``s this process asked) every
    ``interval`` seconds, on a daemon thread, until `stop`.

    Args:
      trials: the trials being trained.
      interval: seconds between beats.
    """

    def __init__(self, trials: Iterable[Any], interval: float):
        self._trials = list(trials)
        self._interval = interval
        self._stopped = threading.Event()
        self._beat()
        self._thread = threading.Thread(target=self._run, name="lrjax-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        now = time.time()
        for trial in self._trials:
            trial.set_user_attr(HEARTBEAT, now)

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self._beat()
            except Exception:  # e.g. the database busy: a missed beat, the next one may pass
                continue

    def stop(self) -> None:
        """Stop beating (before the trials are told: a told trial takes no attributes)."""
        self._stopped.set()
        self._thread.join()
