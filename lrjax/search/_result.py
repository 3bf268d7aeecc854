"""`SearchResult`: what a search policy recorded, one row per trial per record."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from lrjax._result import SweepResult, readable

__all__ = ["SearchResult"]


@dataclasses.dataclass(repr=False)
class SearchResult:
    """The record of a search: one row per trial per record (round, rung or generation).

    Attributes:
      method: ``"bayesian"``, ``"successive_halving"``, ``"hyperband"`` or ``"pbt"``.
      records: the rows, as dicts (``history`` is them as a pandas table). Every row has
        ``trial`` (its id), the stage (``round``, ``rung`` or ``generation``), ``steps`` (the
        trial's updates so far), ``member`` (its slot in the population), one column per
        hyperparameter, the metric, ``diverged``; halving adds ``promoted`` (and hyperband
        ``bracket``), pbt ``parent`` (the trial copied from, or −1) and ``explore``.
      metric, mode: what was optimized.
      stage: the name of the stage column.
      info: the arguments, seconds, and ``member_steps`` / ``active_member_steps``: slot-steps
        the program ran and those spent on trials still training (their ratio is
        ``info["utilization"]``).
      configs: trial id -> its hyperparameters as the optimizer saw them (schedules included).
      study: the Optuna study (``bayesian``), else None.
      curves: every evaluation of every live trial (``trial``, ``member``, ``steps``, the metric,
        ``diverged``): the decision points and, with ``eval_every``, the evaluations between;
        `learning_curves` is them as a pandas table.

    Example:
      >>> from lrjax.search import SearchResult
      >>> r = SearchResult("pbt", [{"trial": 0, "generation": 1, "steps": 10, "lr": 0.1, "loss": 0.5,
      ...                           "diverged": False}], "loss", "min", "generation", {}, {0: {"lr": 0.1}})
      >>> r.best()["lr"], r.best()["loss"]
      (0.1, 0.5)
    """

    method: str
    records: list[dict[str, Any]]
    metric: str
    mode: str
    stage: str
    info: dict[str, Any]
    configs: dict[int, dict[str, Any]]
    study: Any = None
    curves: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @classmethod
    def from_sweep(
        cls, result: SweepResult, *, metric: str = "loss", mode: str | None = None, method: str = "random"
    ) -> SearchResult:
        """A `lrjax.SweepResult` (e.g. of `lrjax.search.random` configurations) as a search:
        one trial per configuration with one record, its final ``metric`` averaged over seeds
        (diverged if any seed diverged), so that every policy's result reads alike.

        Args:
          result: the sweep's result.
          metric, mode: the evaluation metric and its direction (default: its known one).
          method: the name to record (``"random"``, ``"grid"``, ...).

        Returns:
          A `SearchResult` with stage ``round`` (always 1).

        Example:
          >>> import optax, lrjax
          >>> sweep = lrjax.sweep(lrjax.datasets.linear_regression(), lambda hp: optax.sgd(hp["learning_rate"]),
          ...                     {"learning_rate": [0.01, 0.1]}, steps=50, seeds=2, progress=False)
          >>> lrjax.search.SearchResult.from_sweep(sweep).best()["learning_rate"]
          0.1
        """
        direction = result.direction(metric, mode)
        groups = result.configurations()
        finals = result.final(metric)
        diverged = [bool(result.diverged[m].any() or not np.isfinite(finals[m]).all()) for m in groups]
        values = [np.nan if d else finals[m].astype(np.float64).mean() for m, d in zip(groups, diverged, strict=True)]
        names = [k for k in result.configs if k != "seed"]
        records, configs = [], {}
        for i, value in enumerate(values):
            hp = {k: readable(np.asarray(result.configs[k])[groups[i][:1]])[0].item() for k in names}
            configs[i] = hp
            records.append(
                {
                    "trial": i,
                    "round": 1,
                    "steps": int(result.train_loss.shape[1]),
                    "member": int(groups[i][0]) // int(result.info["seeds"]),  # the slot of its first member
                    **hp,
                    metric: float(value),
                    "diverged": bool(diverged[i]),
                }
            )
        member_steps = int(result.train_loss.size)
        info = {
            **result.info,
            "trials": len(values),
            "member_steps": member_steps,
            "active_member_steps": member_steps,
            "utilization": 1.0,
        }
        return cls(method, records, metric, direction, "round", info, configs)

    @property
    def history(self) -> Any:
        """The records as a pandas table, in the order they were made."""
        import pandas as pd

        return pd.DataFrame.from_records(self.records)

    @property
    def learning_curves(self) -> Any:
        """``curves`` as a pandas table: one row per trial per evaluation."""
        import pandas as pd

        return pd.DataFrame.from_records(self.curves)

    def to_pandas(self) -> Any:
        """`history` (one row per trial per record)."""
        return self.history

    def _finals(self) -> list[dict[str, Any]]:
        """Each trial's last record, among the trials that trained longest (the comparable ones)."""
        last: dict[int, dict[str, Any]] = {}
        for row in self.records:
            last[row["trial"]] = row
        longest = max((row["steps"] for row in last.values()), default=0)
        return [row for row in last.values() if row["steps"] == longest]

    def finals(self) -> Any:
        """Each trial's last record among the trials trained longest (those `best` compares), as
        a pandas table, best first (diverged last)."""
        import pandas as pd

        table = pd.DataFrame.from_records(self._finals())
        return table.sort_values(self.metric, ascending=self.mode == "min", na_position="last", kind="stable")

    def best(self) -> dict[str, Any]:
        """The trial with the best ``metric`` at its last record, among the trials that trained
        the most steps (so a trial stopped at a low rung is not compared with a finished one);
        diverged trials rank last.

        Returns:
          The record: hyperparameters, the metric, ``trial``, ``steps``, ...
        """
        rows = [r for r in self._finals() if not r["diverged"] and np.isfinite(r[self.metric])]
        if not rows:
            raise ValueError("every trial diverged; there is no best")
        pick = min if self.mode == "min" else max
        return dict(pick(rows, key=lambda r: r[self.metric]))

    def plot(self) -> Any:
        """The metric against trial (running best drawn), per hyperparameter, and for pbt the
        population's hyperparameters over generations; see `lrjax.plot.search`."""
        from lrjax import plot

        return plot.search(self)

    def __repr__(self) -> str:
        trials = len({r["trial"] for r in self.records})
        try:
            best = self.best()
            shown = f"best {self.metric}={best[self.metric]:.4g} (trial {best['trial']})"
        except ValueError:
            shown = "every trial diverged"
        return (
            f"SearchResult(method={self.method!r}, trials={trials}, records={len(self.records)}, {shown}, "
            f"utilization={self.info.get('utilization', float('nan')):.3f})"
        )
